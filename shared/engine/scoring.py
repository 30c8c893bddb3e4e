"""score(plan, table, carry): a block of rows in; its probabilities, risk levels, anomaly scores
and flags, reasons and riskiest rows out. A pure function of the fitted plan, the block and
its carry (what pass 1 learnt of the block's rows from the whole file), so that any worker
holding the plan scores any block the same."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shared.engine import roles as R
from shared.engine.anomaly import SCORE_BLOCK
from shared.engine.calibration import shifted
from shared.engine.csvio import to_float
from shared.engine.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    SHARE_PREFIX,
    SINCE_PREFIX,
    assemble,
    row_features,
)
from shared.engine.fileindex import ID_SHARE_ROLES, Carry, share_key
from shared.engine.plan import FittedPlan, Layout
from shared.engine.reasons import Phrase, join
from shared.engine.summary import PROBABILITY_DECIMALS, RISK_LEVELS, RISKIEST_ROWS, RiskyRow
from shared.engine.timeparse import apply_format
from shared.engine.timing import Timer
from shared.engine.weighting import FALLBACK_PRIOR, pooled

# Left out of anomaly detection: running counts since the file's first row (they grow with a
# row's position) and the way an amount is written (docs/decisions.md).
ANOMALY_LEFT_OUT = {"cust_n_prior", "term_n_prior", "amount_is_round", "amount_cents"}
ANOMALY_FEATURES = [i for i, name in enumerate(FEATURES) if name not in ANOMALY_LEFT_OUT]


@dataclass(frozen=True, eq=False)
class Scored:
    """One block's results, row for row (`keep`: rows with a usable amount)."""

    first_row: int
    p: np.ndarray
    levels: np.ndarray  # index into RISK_LEVELS
    scores: np.ndarray
    flags: np.ndarray
    keep: np.ndarray
    reasons: np.ndarray | None
    riskiest: list[RiskyRow]


def score(
    plan: FittedPlan, table: pa.Table, carry: Carry, pool: Executor, timer: Timer | None = None
) -> Scored:
    """Score one block of the file (its text columns and its carry)."""
    timer = timer or Timer()
    with timer("features"):
        x, ax = inputs(plan.layout, table, carry, plan.detector is not None)
    p, scores, flags = probabilities(plan, x, ax, carry.first_row, pool, timer)
    levels = plan.thresholds.levels(p)
    keep = ~carry.bad
    reasons: np.ndarray | None = None
    riskiest: list[RiskyRow] = []
    if plan.options.reasons:
        with timer("reasons"):
            reasons, riskiest = _reasons(plan, table, carry, (x, ax), p, levels, flags)
    return Scored(carry.first_row, p, levels, scores, flags, keep, reasons, riskiest)


def inputs(
    layout: Layout, table: pa.Table, carry: Carry, anomaly: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference models' features of some rows and, with anomaly detection, what the
    detector and the file model see: those features and the file's other usable columns
    (numbers as they are, categories as each value's share of the whole file)."""
    roles, n = layout.roles, table.num_rows

    def number(role: str) -> np.ndarray | None:
        return to_float(table[roles.get(role)])[0] if role in roles else None

    distance, before, after = (number(r) for r in (R.DISTANCE, R.BALANCE_BEFORE, R.BALANCE_AFTER))
    parts = row_features(n, carry.amount, carry.t, distance, before, after)
    parts.update(carry.per_row)
    x = assemble(parts, n, set(roles.columns))
    if not anomaly:
        return x, None
    extra = layout.extra
    entities = [
        carry.per_row[share_key(r)][:, None]
        for r in ID_SHARE_ROLES
        if share_key(r) in carry.per_row
    ]
    if not extra.used and not entities:
        return x, x[:, ANOMALY_FEATURES]
    columns = [x[:, ANOMALY_FEATURES].astype(np.float64), *entities]
    columns += [to_float(table[c])[0][:, None] for c in extra.numeric]
    columns += [carry.per_row[share_key(c)][:, None] for c in extra.text]
    if carry.t is not None:  # how long after each other date (sign-up) the row came
        columns += [_log_gap(carry.t - apply_format(table[c], f)) for c, f in extra.dates.items()]
    return x, np.hstack(columns)


def anomaly_names(per_row: set[str], timed: bool, layout: Layout) -> list[str]:
    """The names of the anomaly inputs, in `inputs`' order."""
    extra = layout.extra
    names = [FEATURES[i] for i in ANOMALY_FEATURES]
    names += [share_key(r) for r in ID_SHARE_ROLES if share_key(r) in per_row]
    names += extra.numeric + [share_key(c) for c in extra.text]
    return names + ([f"{SINCE_PREFIX}{c}" for c in extra.dates] if timed else [])


def is_share(name: str) -> bool:
    """Is this anomaly input a value's share of the file (a category's, a card's, a device's)?"""
    return name in CATEGORICAL_FEATURES.values() or name.startswith(SHARE_PREFIX)


def probabilities(
    plan: FittedPlan,
    x: np.ndarray,
    ax: np.ndarray | None,
    first_row: int,
    executor: Executor,
    timer: Timer,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, anomaly score, anomaly flag) per row: the label-free probability, then the
    team model's where one leads, at the plan's level."""
    p, scores, flags = label_free(plan, x, ax, first_row, executor, timer)
    if plan.team is not None and ax is not None:
        with timer("team_model"):
            p = plan.team(ax, p)
    if plan.level_shift:
        p = shifted(p, plan.level_shift)
    return p, scores, flags


def label_free(
    plan: FittedPlan,
    x: np.ndarray,
    ax: np.ndarray | None,
    first_row: int,
    executor: Executor,
    timer: Timer,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(probability, anomaly score, anomaly flag) per row, in blocks on `executor`. Once a
    file model is fitted it ranks the rows with the anomaly detector (it learnt the ensemble's
    part from the sample), so the reference models are not run on them again."""
    n, detector, blend = len(x), plan.detector, plan.blend
    starts = range(0, n, SCORE_BLOCK)
    if n == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0, bool)
    if ax is None or detector is None:
        return ensemble(plan, x, executor, timer), np.zeros(n), np.zeros(n, bool)
    if plan.file_model is not None and blend is not None:
        own = [
            executor.submit(_own, plan, ax[i : i + SCORE_BLOCK], first_row + i, timer)
            for i in starts
        ]
        parts = [f.result() for f in own]
        scores = np.concatenate([s for s, _ in parts])
        with timer("calibration"):
            p = blend.from_hedged(np.concatenate([h for _, h in parts]))
        return p, scores, detector.flags(scores)
    score = timer.timed("anomaly", detector.score)
    futures = [executor.submit(score, ax[i : i + SCORE_BLOCK]) for i in starts]
    p = ensemble(plan, x, executor, timer)
    scores = np.concatenate([f.result() for f in futures])
    if blend is not None:
        with timer("calibration"):
            p = blend(p, scores)
    return p, scores, detector.flags(scores)


def ensemble(plan: FittedPlan, x: np.ndarray, executor: Executor, timer: Timer) -> np.ndarray:
    """The reference models' calibrated probabilities, pooled by weight (without any, the
    fallback rate: the blend then ranks by the file's own evidence)."""
    if not plan.bundles:
        return np.full(len(x), FALLBACK_PRIOR)
    blocks = [x[i : i + SCORE_BLOCK] for i in range(0, len(x), SCORE_BLOCK)]
    futures: list[list[Future[np.ndarray]]] = [
        [executor.submit(timer.timed(f"model:{b.name}", b.predict_raw), block) for block in blocks]
        for b in plan.bundles
    ]
    calibrated = []
    for bundle, parts in zip(plan.bundles, futures, strict=True):
        raw = np.concatenate([f.result() for f in parts]) if parts else np.zeros(0)
        with timer("calibration"):
            calibrated.append(bundle.calibrator(raw) if plan.options.calibrate else raw)
    with timer("calibration"):
        return pooled(calibrated, plan.weights.models, plan.options.pooling == "logit")


def _own(
    plan: FittedPlan, ax: np.ndarray, first_row: int, timer: Timer
) -> tuple[np.ndarray, np.ndarray]:
    """A block's anomaly scores and hedged ranks, once a file model ranks the rows."""
    assert plan.detector is not None and plan.file_model is not None and plan.blend is not None
    with timer("anomaly"):
        scores = plan.detector.score(ax)
    with timer("file_model"):
        own = plan.file_model.predict(ax, first_row)
    with timer("calibration"):
        return scores, plan.blend.hedged(own, scores)


def _reasons(
    plan: FittedPlan,
    table: pa.Table,
    carry: Carry,
    matrices: tuple[np.ndarray, np.ndarray | None],
    p: np.ndarray,
    levels: np.ndarray,
    flags: np.ndarray,
) -> tuple[np.ndarray, list[RiskyRow]]:
    """The reasons cell of each row (rows at `medium` or above, or flagged; empty for the
    others), and the block's riskiest rows for the summary's table."""
    x, ax = matrices
    keep = ~carry.bad
    explain = keep & ((p >= plan.thresholds.medium) | flags)
    candidates = np.flatnonzero(keep)
    if len(candidates) > RISKIEST_ROWS:
        candidates = candidates[np.argpartition(-p[candidates], RISKIEST_ROWS - 1)[:RISKIEST_ROWS]]
    wanted = explain.copy()
    wanted[candidates] = True  # the table explains its rows, `low` ones too
    rows = np.flatnonzero(wanted)
    cells = np.full(len(p), "", dtype=object)
    cells[rows] = explain_rows(plan, x[rows], None if ax is None else ax[rows], flags[rows])
    riskiest = [
        _risky_row(
            plan, table, carry, int(i), float(p[i]), int(levels[i]), bool(flags[i]), cells[i]
        )
        for i in candidates
    ]
    cells[~explain] = ""
    return cells, riskiest


def ensemble_contributions(plan: FittedPlan, x: np.ndarray) -> np.ndarray:
    """Each feature's contribution to the reference models' raw log-odds, weighted as the
    ensemble weighs them (the bias last)."""
    weighted = zip(plan.weights.models, plan.bundles, strict=True)
    return np.asarray(sum(w * b.contributions(x) for w, b in weighted))


def explain_rows(
    plan: FittedPlan, x: np.ndarray, ax: np.ndarray | None, flags: np.ndarray
) -> list[str]:
    """Reasons for some rows: the facts of the model that ranked them (the file model, else
    the reference models weighted), and for flagged rows the anomaly's strangest input."""
    if len(x) == 0:
        return []
    model: list[list[Phrase]] = [[] for _ in range(len(x))]
    if plan.team is not None and ax is not None and plan.file_reasons is not None:
        model = plan.file_reasons.phrases(plan.team.contributions(ax), ax)
    elif plan.file_model is not None and ax is not None and plan.file_reasons is not None:
        model = plan.file_reasons.phrases(plan.file_model.contributions(ax), ax)
    elif plan.bundles and plan.model_reasons is not None:
        model = plan.model_reasons.phrases(ensemble_contributions(plan, x), x)
    anomaly: list[Phrase | None] | None = None
    reasons = plan.file_reasons
    if ax is not None and plan.detector is not None and reasons is not None and flags.any():
        flagged = np.flatnonzero(flags)
        strange = reasons.unusual(plan.detector.deviation(ax[flagged]), ax[flagged])
        anomaly = [None] * len(x)
        for i, phrase in zip(flagged, strange, strict=True):
            anomaly[i] = phrase
    return join(model, anomaly)


def _risky_row(
    plan: FittedPlan,
    table: pa.Table,
    carry: Carry,
    i: int,
    p: float,
    level: int,
    flagged: bool,
    reasons: str,
) -> RiskyRow:
    roles = plan.layout.roles

    def text(role: str) -> str | None:
        if role == R.TIMESTAMP and roles.date_parts:
            return " ".join(str(table[c][i].as_py()) for c in roles.date_parts)
        return str(table[roles.get(role)][i].as_py()) if role in roles else None

    amount = float(carry.amount[i])
    return RiskyRow(
        row_number=carry.first_row + i + 1,
        id=text(R.TX_ID),
        customer=text(R.CUSTOMER),
        amount=amount if np.isfinite(amount) else None,  # JSON has no NaN
        time=text(R.TIMESTAMP),
        fraud_probability=round(p, PROBABILITY_DECIMALS),
        risk_level=RISK_LEVELS[level],
        is_anomaly=flagged,
        reasons=reasons,
    )


def _log_gap(seconds: np.ndarray) -> np.ndarray:
    """A signed log of a time gap, as a column: a second and a minute after sign-up differ as
    much as a day and two months do."""
    return (np.sign(seconds) * np.log1p(np.abs(seconds)))[:, None]
