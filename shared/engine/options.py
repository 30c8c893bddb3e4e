"""The options a caller may set on a scoring job: one schema for the API, its OpenAPI
document, the CLI and the pipeline."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared.errors import InputError

Share = Annotated[float, Field(ge=0, le=1)]


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

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

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
        if (self.medium_threshold or 0.0) > high:
            raise ValueError("medium_threshold must not exceed high_threshold")
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
