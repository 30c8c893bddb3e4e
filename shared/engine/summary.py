"""What a job reports beside its predictions: the counts, the riskiest rows, how it scored
(`methods_used`) and what the analyst should know (warnings), as typed objects built from the
plan and the blocks' tallies."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from shared.engine import roles as R
from shared.engine.adapt import NEGATIVE_SHARE, POSITIVE_SHARE
from shared.engine.blend import rate_band
from shared.engine.plan import FittedPlan
from shared.engine.weighting import FALLBACK_PRIOR, explain_team

RISK_LEVELS = ("low", "medium", "high")
HISTOGRAM_BINS = 10  # fraud_probability counts in [0, 0.1), [0.1, 0.2) ... [0.9, 1]
RISKIEST_ROWS = 50  # the summary's table of the riskiest rows
PROBABILITY_DECIMALS = 8  # at 6, rows below 0.0001 tied by the thousand
LOW_SIMILARITY = 0.5  # below it, the summary warns that the best match is poor


@dataclass(frozen=True)
class RiskyRow:
    """One row of the summary's table of the riskiest rows."""

    row_number: int
    id: str | None
    customer: str | None
    amount: float | None
    time: str | None
    fraud_probability: float
    risk_level: str
    is_anomaly: bool
    reasons: str


@dataclass
class Tallies:
    """Counts over the scored blocks, added block by block."""

    levels: list[int] = field(default_factory=lambda: [0, 0, 0])
    anomalies: int = 0
    sums: list[float] = field(default_factory=list)  # each block's sum of probabilities
    bins: list[int] = field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    riskiest: list[RiskyRow] = field(default_factory=list)

    @property
    def p_sum(self) -> float:
        """The probabilities' sum, exactly rounded: the same however the blocks were grouped."""
        return math.fsum(self.sums)

    def add(
        self, p: np.ndarray, levels: np.ndarray, flags: np.ndarray, riskiest: list[RiskyRow]
    ) -> None:
        """A block's scored rows (those with a usable amount) and its riskiest candidates."""
        for level, count in enumerate(np.bincount(levels, minlength=3).tolist()):
            self.levels[level] += count
        self.anomalies += int(flags.sum())
        self.sums.append(float(p.sum()))
        counts = np.histogram(p, bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
        self.bins = [a + int(b) for a, b in zip(self.bins, counts, strict=True)]
        self._keep_riskiest(riskiest)

    def merge(self, other: Tallies) -> None:
        """Add another part's tallies (parts merged in file order)."""
        self.levels = [a + b for a, b in zip(self.levels, other.levels, strict=True)]
        self.anomalies += other.anomalies
        self.sums.extend(other.sums)
        self.bins = [a + b for a, b in zip(self.bins, other.bins, strict=True)]
        self._keep_riskiest(other.riskiest)

    def _keep_riskiest(self, rows: list[RiskyRow]) -> None:
        self.riskiest.extend(rows)
        self.riskiest.sort(key=lambda r: (-r.fraud_probability, r.row_number))
        del self.riskiest[RISKIEST_ROWS:]

    def state(self) -> dict[str, Any]:
        """As JSON."""
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Tallies:
        riskiest = [RiskyRow(**row) for row in state.pop("riskiest")]
        return cls(**state, riskiest=riskiest)


class _Shown(BaseModel):
    """Part of what a job shows: fixed fields, no others."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Stats(_Shown):
    """A scored job's `stats`, as the API's OpenAPI document describes them."""

    total_transactions: int
    high_risk: int
    medium_risk: int
    low_risk: int
    anomalies_detected: int
    rows_failed: int
    probability_histogram: list[int]  # fraud_probability counts in [0, 0.1) ... [0.9, 1]
    expected_frauds: float
    estimated_fraud_rate: float
    fraud_rate_band: list[float]
    fraud_rate_level: Literal["estimated", "team labels", "stated"]
    riskiest_rows: list[RiskyRow] | None = None  # with reasons on


class RiskThresholds(_Shown):
    medium: float
    high: float
    alert_rate: float | None
    min_high_share: float
    high_from: str  # "threshold", "alert budget" or "riskiest share"
    min_medium_share: float
    medium_from: str


class BlendUse(_Shown):
    """How the reference ensemble and the file's own evidence were weighed, and why."""

    reference_weight: float
    anomaly_weight: float
    reason: str
    file_model: bool
    file_model_reason: str | None = None


class ColumnUse(_Shown):
    reference_models: list[str]
    anomaly_only: list[str]
    ignored: list[str]


class ModelUse(_Shown):
    name: str
    similarity: float
    weight: float


class MatchDetail(_Shown):
    """How one chosen reference model matched the file."""

    name: str
    similarity: float
    schema_coverage: float
    role_overlap: float
    distribution_similarity: float
    validation_quality: float
    weight: float
    column_mapping: dict[str, str]
    model_inputs_missing: list[str]


class TeamUse(_Shown):
    """The team's own model: whether it leads the ranking or only sets the level, and why."""

    name: str
    coverage: float
    team_weight: float
    evidence_weight: float
    validation: dict[str, float]
    leads_ranking: bool
    reason: str


class BaseRate(_Shown):
    reference: float
    estimated: float


class MethodsUsed(_Shown):
    """A scored job's `methods_used`: how it was scored, as the OpenAPI document describes it."""

    risk_thresholds: RiskThresholds
    blend: BlendUse | None
    warnings: list[str]
    columns: ColumnUse
    ensemble: str
    top_k_models: int
    models: list[ModelUse]
    anomaly_detection: Literal["isolation_forest", "off"]
    anomaly_inputs_without_rare_values: list[str]
    calibration: str
    best_model: str | None
    similarity_score: float
    roles: dict[str, str]
    input_columns: list[str]
    timestamp_columns: list[str] | None = None  # a date split over columns
    base_rate: BaseRate
    matching: list[MatchDetail]
    team_model: TeamUse | None
    stage_seconds: dict[str, float] | None = None  # added by the service: time per stage


# Keys shown only when they say something.
OPTIONAL_KEYS = {"timestamp_columns", "stage_seconds"}


@dataclass(frozen=True)
class Summary:
    """The job's `stats` and `methods_used`."""

    stats: dict[str, Any]
    methods_used: dict[str, Any]


def summarise(
    plan: FittedPlan, tallies: Tallies, rows: int, failed: int, negative: int, unread: int = 0
) -> Summary:
    """The summary of a file of `rows` rows, `failed` of them not scored, `negative` of them
    with a negative amount, `unread` with a time that could not be read."""
    return Summary(_stats(plan, tallies, rows, failed), _methods(plan, negative, unread, rows))


def _stats(plan: FittedPlan, tallies: Tallies, rows: int, failed: int) -> dict[str, Any]:
    estimate = tallies.p_sum / max(1, rows - failed)
    blend = plan.blend
    band = (
        rate_band(estimate, blend.reference_rate, blend.weight)
        if blend is not None
        else rate_band(estimate, estimate, 1.0)
    )
    low, medium, high = tallies.levels
    stats = Stats(
        total_transactions=rows,
        high_risk=high,
        medium_risk=medium,
        low_risk=low,
        anomalies_detected=tallies.anomalies,
        rows_failed=failed,
        probability_histogram=list(tallies.bins),
        expected_frauds=round(tallies.p_sum, 2),
        estimated_fraud_rate=round(estimate, 6),
        fraud_rate_band=[round(v, 6) for v in band],
        fraud_rate_level=plan.level_from,  # type: ignore[arg-type]
        riskiest_rows=list(tallies.riskiest) if plan.options.reasons else None,
    )
    return stats.model_dump(
        mode="json", exclude={"riskiest_rows"} if not plan.options.reasons else None
    )


def warnings(plan: FittedPlan, negative: int, unread: int = 0, rows: int = 0) -> list[str]:
    """What the analyst should know before trusting the numbers."""
    roles, extra, matches = plan.layout.roles, plan.layout.extra, plan.matches
    model_columns = [c for r, c in roles.columns.items() if r != R.LABEL]
    out = []
    if plan.blend is not None and matches and len(extra.used) > len(model_columns):
        total = len(model_columns) + len(extra.used)
        out.append(
            f"No reference model uses {len(extra.used)} of the file's {total} usable columns; "
            f"scores lean on anomaly detection (reference weight {plan.blend.weight:.2f})."
        )
    if not matches:
        why = "this file has no amount column" if R.AMOUNT not in roles else "none fits"
        out.append(
            f"No reference model is used ({why}): rows are ranked by the file's own evidence "
            "(anomaly detection and a model of the file), and probabilities stay near the "
            f"assumed base rate of {FALLBACK_PRIOR:.0%}."
        )
    elif matches[0].similarity < LOW_SIMILARITY:
        out.append(
            f"The closest reference model matches this file poorly (similarity "
            f"{matches[0].similarity:.2f}); treat probabilities as a ranking."
        )
    if unread:
        column = roles.get(R.TIMESTAMP)
        out.append(
            f"{unread} rows ({unread / max(rows, 1):.1%}) have a time in {column!r} that is not "
            "in the format of the others, so it was not read: their time-based features are "
            "missing; write every time the same way."
        )
    if plan.layout.fmt.fallback:
        out.append(
            "The file is not UTF-8 throughout (a byte past its first 256 KiB is not), so it was "
            "read as Latin-1: accented text may show differently; save it as UTF-8 to be sure."
        )
    if negative:
        out.append(
            f"{negative} rows have a negative amount (refunds or reversals?); they are scored "
            "as given."
        )
    return out


def _calibration(plan: FittedPlan) -> str:
    kinds = sorted({b.calibrator.kind for b in plan.bundles})
    text = f"per-model {'/'.join(kinds)}"
    if plan.blend is not None:
        text += " + blended rank mapped to the ensemble's distribution"
    return text


def _methods(plan: FittedPlan, negative: int, unread: int, rows: int) -> dict[str, Any]:
    opts, roles, extra, matches = plan.options, plan.layout.roles, plan.layout.extra, plan.matches
    best = matches[0] if matches else None
    weights, thresholds = plan.weights, plan.thresholds
    blend = None
    if plan.blend is not None:
        explained = weights.explain(plan.file_model is not None, POSITIVE_SHARE, NEGATIVE_SHARE)
        blend = BlendUse(**explained)
    estimated = plan.blend.prior if plan.blend is not None else plan.base_rate
    screened = plan.detector.screened_out.tolist() if plan.detector is not None else []
    methods = MethodsUsed(
        risk_thresholds=RiskThresholds(
            medium=round(thresholds.medium, 6),
            high=round(thresholds.high, 6),
            alert_rate=opts.alert_rate,
            min_high_share=opts.min_high_share,
            high_from=thresholds.high_from,
            min_medium_share=opts.min_medium_share,
            medium_from=thresholds.medium_from,
        ),
        blend=blend,
        warnings=warnings(plan, negative, unread, rows),
        columns=ColumnUse(
            reference_models=sorted(c for r, c in roles.columns.items() if r != R.LABEL),
            anomaly_only=extra.used,
            ignored=extra.ignored,
        ),
        ensemble=f"weighted_average ({opts.pooling} pooling)",
        top_k_models=len(matches),
        models=[
            ModelUse(name=m.name, similarity=round(m.similarity, 4), weight=round(w, 4))
            for m, w in zip(matches, weights.models, strict=True)
        ],
        anomaly_detection="isolation_forest" if opts.anomaly else "off",
        anomaly_inputs_without_rare_values=[plan.anomaly_names[i] for i in screened],
        calibration=_calibration(plan),
        best_model=best.name if best else None,
        similarity_score=round(best.similarity, 4) if best else 0.0,
        roles=dict(roles.columns),
        input_columns=list(plan.layout.fmt.columns),
        timestamp_columns=list(roles.date_parts) or None,
        base_rate=BaseRate(reference=round(plan.base_rate, 6), estimated=round(estimated, 6)),
        matching=[
            MatchDetail(**m.explain(w)) for m, w in zip(matches, weights.models, strict=True)
        ],
        team_model=TeamUse(**explain_team(plan.team)) if plan.team is not None else None,
    )
    return shown(methods)


def shown(methods: MethodsUsed) -> dict[str, Any]:
    """`methods_used` as a job stores and shows it: optional keys only where they are set."""
    out = methods.model_dump(mode="json")
    for key in OPTIONAL_KEYS:
        if out.get(key) is None:
            out.pop(key, None)
    if out["blend"] is not None and out["blend"]["file_model_reason"] is None:
        del out["blend"]["file_model_reason"]
    return out
