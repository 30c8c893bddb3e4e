"""Options: `JobOptions`, what a caller may set on a job (one schema for the API, its OpenAPI
document and the CLI), and `ScoreOptions`, what the engine runs with (the job's options over
the service's settings)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared import defaults as D
from shared.engine.weighting import REFERENCE_TRUST
from shared.errors import InputError

Share = Annotated[float, Field(ge=0, le=1)]
THRESHOLD_NAMES = ("medium_threshold", "high_threshold")


class JobOptions(BaseModel):
    """Per-job options; unset ones fall back to the service's settings."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    top_k: Annotated[int, Field(ge=1, le=20)] | None = Field(
        default=None, description="how many reference models to average"
    )
    keep_columns: bool = Field(
        default=False, description="copy every input column into the predictions file"
    )
    high_threshold: Share | None = Field(
        default=None,
        description="fraud_probability from which a row is `high` risk (unset: the service's "
        "threshold, with at least its RISK_MIN_HIGH_SHARE of rows `high`)",
    )
    medium_threshold: Share | None = Field(
        default=None,
        description="fraud_probability from which a row is `medium` risk (unset: the service's "
        "threshold, with at least its RISK_MIN_MEDIUM_SHARE of rows `medium` or above)",
    )
    alert_rate: Annotated[float, Field(gt=0, le=0.5)] | None = Field(
        default=None,
        description="alert budget: this share of the file's rows (the riskiest) is `high`, "
        "whatever high_threshold says",
    )
    reasons: bool = Field(
        default=True,
        description="a `reasons` column: why each row above `low` risk (or flagged as an "
        "anomaly) is risky, and a table of the riskiest rows in the job's stats",
    )
    model_name: Annotated[str, Field(max_length=200)] | None = Field(
        default=None, description="score with this one reference model only"
    )
    expected_fraud_rate: Annotated[float, Field(gt=0, lt=0.5)] | None = Field(
        default=None,
        description="the share of fraud the team expects in this file: probabilities are "
        "shifted so that their mean is this rate (unset: the team model's level where one "
        "leads, else the owner's default, else estimated)",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("model_name")
    @classmethod
    def _no_nul(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise ValueError("must not contain a NUL character")
        return value

    @field_validator("keep_columns", mode="before")
    @classmethod
    def _unset_is_false(cls, value: Any) -> Any:
        return False if value in (None, "") else value

    @field_validator("reasons", mode="before")
    @classmethod
    def _unset_is_true(cls, value: Any) -> Any:
        return True if value in (None, "") else value

    @model_validator(mode="after")
    def _ordered(self) -> JobOptions:
        high = 1.0 if self.high_threshold is None else self.high_threshold
        D.check_order(self.medium_threshold or 0.0, high, THRESHOLD_NAMES)
        return self

    def stored(self) -> dict[str, Any]:
        """The options as recorded on a job: only those the caller set."""
        return self.model_dump(exclude_defaults=True)


def parse_options(raw: dict[str, Any]) -> JobOptions:
    """Validated options from a form or JSON body; InputError names the bad one."""
    try:
        return JobOptions.model_validate(raw)
    except ValidationError as exc:
        item = exc.errors()[0]
        if not item["loc"]:
            raise InputError(item["msg"].removeprefix("Value error, ")) from None
        name = str(item["loc"][0])
        raise InputError(f"invalid option {name}={raw.get(name)!r}: {item['msg']}") from None


@dataclass(frozen=True)
class ScoreOptions:
    """How the engine scores one file."""

    top_k: int = D.TOP_K
    keep_columns: bool = False
    chunk_rows: int = D.CHUNK_ROWS
    sample_rows: int = D.SAMPLE_ROWS
    high_threshold: float = D.HIGH_THRESHOLD
    medium_threshold: float = D.MEDIUM_THRESHOLD
    anomaly: bool = True
    calibrate: bool = True  # False: raw model probabilities (for measuring calibration)
    pooling: str = "logit"  # the models' log-odds ("logit") or probabilities ("linear") averaged
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    only_model: str | None = None  # score with this reference model alone (by name)
    blend: bool = True  # blend the ensemble with the file's anomaly rank (False: ensemble alone)
    adapt: bool = True  # then rank by a model of the file itself (shared/engine/adapt.py)
    alert_rate: float | None = None  # this riskiest share of rows is `high`, whatever else
    min_high_share: float = D.MIN_HIGH_SHARE  # see shared/defaults.py
    min_medium_share: float = D.MIN_MEDIUM_SHARE
    reference_trust: float = REFERENCE_TRUST
    reasons: bool = True  # a `reasons` column and the summary's riskiest rows
    expected_fraud_rate: float | None = None  # the stated rate the probabilities' mean is set to
    default_fraud_rate: float | None = None  # the owner's stated rate, where no team model leads
    seed: int = 0

    def __post_init__(self) -> None:
        if self.pooling not in ("logit", "linear"):
            raise InputError("pooling must be 'logit' or 'linear'")
        try:
            D.check_order(self.medium_threshold, self.high_threshold, THRESHOLD_NAMES)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if self.alert_rate is not None and not 0 < self.alert_rate <= 0.5:
            raise InputError("alert_rate must be in (0, 0.5]")
        if not 0 <= self.min_high_share <= 0.5:
            raise InputError("min_high_share must be in [0, 0.5]")
        if not 0 <= self.min_medium_share <= 0.5:
            raise InputError("min_medium_share must be in [0, 0.5]")
        for rate in (self.expected_fraud_rate, self.default_fraud_rate):
            if rate is not None and not 0 < rate < 0.5:
                raise InputError("expected_fraud_rate must be in (0, 0.5)")
        if self.top_k < 1 or self.chunk_rows < 1 or self.sample_rows < 1:
            raise InputError("top_k, chunk_rows and sample_rows must be positive")
