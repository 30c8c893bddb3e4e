"""fit: from a uniform sample of the file and its matched models to the frozen FittedPlan
(weights, anomaly detector, blend, file model, risk thresholds)."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa

from shared.engine.adapt import FileModel
from shared.engine.anomaly import AnomalyDetector
from shared.engine.blend import Blend
from shared.engine.bundle import ModelBundle
from shared.engine.calibration import level_shift, shifted
from shared.engine.fileindex import Carry
from shared.engine.matching import Match
from shared.engine.options import ScoreOptions
from shared.engine.plan import FittedPlan, Layout, Thresholds
from shared.engine.reasons import Explainer
from shared.engine.scoring import (
    anomaly_names,
    ensemble_contributions,
    is_share,
    probabilities,
)
from shared.engine.team import TeamLead, input_names
from shared.engine.timing import Timer
from shared.engine.weighting import weigh

RISKY_ROWS = 50  # at least this many of the sample's riskiest rows set the usual contributions


@dataclass(frozen=True, eq=False)
class Sample:
    """A seeded uniform sample of the file's rows (sorted row numbers), with their carry and
    their inputs (the reference features; the anomaly inputs, where anomaly detection runs)."""

    table: pa.Table
    rows: np.ndarray
    carry: Carry
    x: np.ndarray
    ax: np.ndarray | None


@dataclass(frozen=True, eq=False)
class Matched:
    """The reference models chosen for the file, best first, and their loaded bundles."""

    matches: tuple[Match, ...] = ()
    bundles: tuple[ModelBundle, ...] = ()
    team: ModelBundle | None = None  # the team's own model, where one fits the file
    team_coverage: float = 0.0


def fit(
    layout: Layout,
    sample: Sample,
    matched: Matched,
    options: ScoreOptions,
    executor: Executor,
    timer: Timer,
) -> FittedPlan:
    """The plan that scores every row of the file, fitted on its sample."""
    weights = weigh(list(matched.matches), layout.roles, layout.extra, options.reference_trust)
    rates = [float(b.metadata["metrics"]["fraud_rate"]) for b in matched.bundles]
    base_rate = float(sum(w * r for w, r in zip(weights.models, rates, strict=True)))
    thresholds = Thresholds(options.medium_threshold, options.high_threshold)
    plan = FittedPlan(
        layout, options, matched.matches, matched.bundles, weights, base_rate, thresholds=thresholds
    )
    x, ax = sample.x, sample.ax
    final: np.ndarray | None = None  # the final probabilities on the sample
    if ax is not None:
        names = anomaly_names(set(sample.carry.per_row), sample.carry.t is not None, layout)
        with timer("anomaly"):
            shares = np.array([is_share(n) for n in names], bool)
            detector = AnomalyDetector(threads=options.threads).fit(ax, shares)
        plan = replace(plan, anomaly_names=tuple(names), detector=detector)
        if options.blend:
            plan, final = _fit_blend(plan, x, ax, sample.rows, executor, timer)
    thresholds_from_sample = (
        options.alert_rate or options.min_high_share or options.min_medium_share
    )
    stated = options.expected_fraud_rate is not None or options.default_fraud_rate is not None
    leveled = matched.team is not None or stated
    if final is None and (thresholds_from_sample or options.reasons or leveled):
        final = probabilities(plan, x, ax, 0, executor, timer)[0]
    if leveled:
        assert final is not None
        with timer("team_model"):
            plan, final = _fit_level(plan, matched, sample, final)
    if thresholds_from_sample:
        assert final is not None
        plan = replace(plan, thresholds=risk_thresholds(final, options))
    if options.reasons:
        assert final is not None
        with timer("reasons"):
            plan = _fit_reasons(plan, sample, final)
    return plan


def _fit_level(
    plan: FittedPlan, matched: Matched, sample: Sample, final: np.ndarray
) -> tuple[FittedPlan, np.ndarray]:
    """The plan led by the team's model where one matched (its probabilities set the level),
    and shifted to the stated fraud rate where the job gives one (or the owner's default does,
    and no team model leads); the sample's probabilities."""
    if matched.team is not None and sample.ax is not None:
        names = input_names(plan.anomaly_names, plan.layout.roles)
        team = TeamLead.fit(matched.team, matched.team_coverage, names, final)
        plan = replace(plan, team=team, level_from="team labels")
        final = team(sample.ax, final)
    rate = plan.options.expected_fraud_rate
    if rate is None and plan.team is None:
        rate = plan.options.default_fraud_rate
    if rate is not None:
        shift = level_shift(final, rate)
        plan = replace(plan, level_shift=shift, level_from="stated")
        final = shifted(final, shift)
    return plan, final


def _fit_reasons(plan: FittedPlan, sample: Sample, final: np.ndarray) -> FittedPlan:
    """The explainers of the reference features and of the anomaly inputs, fitted on the
    sample and its riskiest rows (those at `medium` or above, at least RISKY_ROWS of them)."""
    risky = np.flatnonzero(final >= plan.thresholds.medium)
    if len(risky) < RISKY_ROWS:
        risky = np.argsort(-final, kind="stable")[:RISKY_ROWS]
    roles = plan.layout.roles
    model_reasons = file_reasons = None
    if plan.bundles:
        names = list(plan.bundles[0].features)
        contributions = ensemble_contributions(plan, sample.x[risky])
        model_reasons = Explainer.fit(names, sample.x, contributions, roles.columns)
    if sample.ax is not None:
        names = list(plan.anomaly_names)
        own = None
        if plan.team is not None:
            own = plan.team.contributions(sample.ax[risky])
        elif plan.file_model is not None:
            own = plan.file_model.contributions(sample.ax[risky])
        file_reasons = Explainer.fit(names, sample.ax, own, roles.columns)
    return replace(plan, model_reasons=model_reasons, file_reasons=file_reasons)


def _fit_blend(
    plan: FittedPlan,
    x: np.ndarray,
    ax: np.ndarray,
    rows: np.ndarray,
    executor: Executor,
    timer: Timer,
) -> tuple[FittedPlan, np.ndarray]:
    """The plan with its blend (and file model) fitted on the sample, and the sample's final
    probabilities."""
    ensemble, anomaly, _ = probabilities(plan, x, ax, 0, executor, timer)
    with timer("calibration"):
        blend = Blend.fit(plan.weights.reference, float(np.mean(ensemble)), ensemble, anomaly)
        sample_p = blend(ensemble, anomaly)
    opts = plan.options
    if not (opts.adapt and FileModel.usable(len(x))):
        return replace(plan, blend=blend), sample_p
    with timer("file_model"):
        model = FileModel.fit(rows, ax, sample_p, opts.threads, opts.seed)
        blend = blend.with_file_model(model.oof, anomaly)
    return replace(plan, blend=blend, file_model=model), blend.adapted(model.oof, anomaly)


def risk_thresholds(sample_p: np.ndarray, opts: ScoreOptions) -> Thresholds:
    """Thresholds from the sample's final probabilities: the alert budget's, or the riskiest
    shares that are at least `high` and at least `medium` when fewer rows reach them."""
    medium, high = opts.medium_threshold, opts.high_threshold
    high_from = medium_from = "threshold"
    share = opts.alert_rate or opts.min_high_share
    if share:
        budget = float(np.quantile(sample_p, 1 - share))
        if opts.alert_rate is not None:
            medium, high, high_from = min(medium, budget), budget, "alert budget"
        elif budget < high:  # fewer rows than that reach the threshold
            medium, high, high_from = min(medium, budget), budget, "riskiest share"
    if opts.min_medium_share:
        quantile = float(np.quantile(sample_p, 1 - opts.min_medium_share))
        if quantile < medium:  # fewer rows than that reach medium
            medium, medium_from = min(quantile, high), "riskiest share"
    return Thresholds(medium, high, high_from, medium_from)
