"""The scoring pipeline: one unlabeled CSV in, a predictions CSV (and an errors CSV) out.

    read -> profile -> match (top-k) -> align -> ensemble -> anomaly -> calibration -> risk

Memory is the chunk size plus ~100 bytes per row. Pass 1 streams the file once, builds per-row
arrays for the whole file (amount, time, per-entity history, category shares: exact across
chunk boundaries whatever the row order) and spools the text chunks to a local Arrow file.
Pass 2 reads the spool back, featurises chunk k+1 while a thread pool scores chunk k, and
appends each to the output. Roles and the timestamp format come from the first `sample_rows`
rows; matching, the anomaly detector, the blend and the base-rate estimate from a seeded uniform
sample of `sample_rows` rows of the whole file, so the output does not depend on the chunk size.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shared.engine import roles as R
from shared.engine.adapt import NEGATIVE_SHARE, POSITIVE_SHARE, FileModel
from shared.engine.anomaly import AnomalyDetector
from shared.engine.blend import (
    ANOMALY_HEDGE,
    FALLBACK_PRIOR,
    REFERENCE_TRUST,
    Blender,
    ExtraColumns,
    extra_columns,
    rate_band,
    reference_confidence,
)
from shared.engine.bundle import ModelBundle
from shared.engine.calibration import estimate_prior, logit, shift_prior
from shared.engine.csvio import (
    CsvFormat,
    head,
    iter_chunks,
    neutralise,
    safe_name,
    sniff,
    to_float,
    to_pandas_text,
)
from shared.engine.features import (
    CATEGORICAL_FEATURES,
    FEATURES,
    SHARE_PREFIX,
    assemble,
    entity_features,
    row_features,
)
from shared.engine.matching import (
    Match,
    ModelInfo,
    ensemble_weights,
    match_models,
    sample_quantiles,
)
from shared.engine.reasons import from_contributions, join, unusual
from shared.engine.roles import RoleMap, infer_roles
from shared.engine.timeparse import TimeFormat, apply_format, detect_format, read_clock
from shared.errors import InputError

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
P = ParamSpec("P")
T = TypeVar("T")
ID_ROLES = (R.TX_ID, R.CUSTOMER, R.TERMINAL)
BLOCK_ROWS = 16_384
HISTOGRAM_BINS = 10  # fraud_probability counts in [0, 0.1), [0.1, 0.2) ... [0.9, 1]
RISK_LEVELS = pa.array(["low", "medium", "high"])
OUTPUT_COLUMNS = ("fraud_probability", "risk_level", "anomaly_score", "is_anomaly", "reasons")
RISKIEST_ROWS = 50  # the summary's table of the riskiest rows
# At 6 decimals, rows below 0.0001 kept two digits and tied by the thousand (ranking lost).
PROBABILITY_DECIMALS = 8
MIN_HIGH_SHARE = 0.001  # see ScoreOptions.min_high_share (RISK_MIN_HIGH_SHARE in settings)
MIN_MEDIUM_SHARE = 0.01  # see ScoreOptions.min_medium_share (RISK_MIN_MEDIUM_SHARE)
MAX_AMOUNT = 1e15  # larger amounts are data errors: not scored, listed in the errors file
# Anomaly detection leaves out running counts since the file's first row (they grow with a
# row's position, not with anything odd about it) and the way an amount is written (its cents,
# whether it is round): an IsolationForest picks inputs at random, so inputs that say nothing
# dilute the ones that do. Leaving the latter out raised the real files' mean ROC-AUC over
# seeds 0-3 from 0.902 to 0.910 of supervised (card_transdata 0.794 -> 0.823, the others
# within +-0.005) and the left-out families' from 1.003 to 1.006.
ANOMALY_LEFT_OUT = {"cust_n_prior", "term_n_prior", "amount_is_round", "amount_cents"}
ANOMALY_FEATURES = [i for i, name in enumerate(FEATURES) if name not in ANOMALY_LEFT_OUT]
ID_SHARE_ROLES = (R.CUSTOMER, R.TERMINAL)
# A file is scored when it measures something: an amount, a time or another number. Without an
# amount no reference model applies (they all learnt from one) and the file's own evidence
# ranks the rows; ids and categories alone (a list of names) are refused.
MEASURED_ROLES = {R.AMOUNT, R.TIMESTAMP, R.DISTANCE, R.BALANCE_BEFORE, R.BALANCE_AFTER}
LOW_SIMILARITY = 0.5  # below it, the summary warns that the best match is poor
# The stages whose busy seconds a run reports (besides one "model:NAME" entry per model).
TIMED_STAGES = (
    "read",
    "features",
    "matching",
    "anomaly",
    "file_model",
    "calibration",
    "reasons",
    "write",
)


class Cancelled(Exception):
    """The caller asked to stop (checked at chunk boundaries)."""


class ModelSource(Protocol):
    """Where reference models come from: the registry and the model store."""

    def models(self) -> list[ModelInfo]: ...

    def load(self, name: str) -> ModelBundle: ...

    def record_usage(self, names: list[str]) -> None: ...


@dataclass
class ScoreOptions:
    top_k: int = 3
    keep_columns: bool = False
    chunk_rows: int = 100_000
    sample_rows: int = 20_000
    high_threshold: float = 0.5
    medium_threshold: float = 0.1
    anomaly: bool = True
    prior_shift: bool = False  # measured: EM base-rate shifts made ECE worse (see README)
    calibrate: bool = True  # False: raw model probabilities (for measuring calibration)
    # Weighted mean of the models' log-odds ("logit") or probabilities ("linear"); measured on
    # held-out data, log-odds pooling ranked and calibrated better (README, Quality).
    pooling: str = "logit"
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    only_model: str | None = None  # score with this reference model alone (by name)
    # Blend the ensemble with the file's own anomaly ranking, weighted by how much of the file
    # the reference models see (see shared/engine/blend.py); False: the ensemble alone.
    blend: bool = True
    # Then rank by a model of the file itself, trained on the blend's confident ends
    # (shared/engine/adapt.py); on the real files it raised mean ROC-AUC (README).
    adapt: bool = True
    # Alert budget: the riskiest share of rows is `high` (a threshold from the uniform sample).
    alert_rate: float | None = None
    # Without an alert budget, at least this riskiest share of rows is `high` when fewer reach
    # high_threshold: on a file whose rate is above the assumed 1% no row may reach 0.5, and
    # an analyst would get no list at all (half of the real files, and the anonymized ones).
    min_high_share: float = MIN_HIGH_SHARE
    # And at least this riskiest share is `medium` or above when fewer reach medium_threshold:
    # on card_transdata (8.6% fraud) no row had been `medium`, and 383 of the 476 rows the
    # anomaly detector flagged (47% of those 383 fraud) were `low`.
    min_medium_share: float = MIN_MEDIUM_SHARE
    reference_trust: float = REFERENCE_TRUST
    # A `reasons` column: why each row above `low` (or flagged) is risky, in words.
    reasons: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.calibrate:
            self.prior_shift = False
        if self.pooling not in ("logit", "linear"):
            raise InputError("pooling must be 'logit' or 'linear'")
        if not 0 <= self.medium_threshold <= self.high_threshold <= 1:
            raise InputError("risk thresholds must satisfy 0 <= medium <= high <= 1")
        if self.alert_rate is not None and not 0 < self.alert_rate <= 0.5:
            raise InputError("alert_rate must be in (0, 0.5]")
        if not 0 <= self.min_high_share <= 0.5:
            raise InputError("min_high_share must be in [0, 0.5]")
        if not 0 <= self.min_medium_share <= 0.5:
            raise InputError("min_medium_share must be in [0, 0.5]")
        if self.top_k < 1 or self.chunk_rows < 1 or self.sample_rows < 1:
            raise InputError("top_k, chunk_rows and sample_rows must be positive")


@dataclass
class ScoreResult:
    stats: dict[str, Any]
    methods_used: dict[str, Any]
    timings: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {"stats": self.stats, "methods_used": self.methods_used}


class _Timer:
    """Seconds per stage; stages run on pool threads add their busy time (so they may overlap)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            with self._lock:
                self.seconds[stage] += time.perf_counter() - started

    def timed(self, stage: str, fn: Callable[P, T]) -> Callable[P, T]:
        def run(*args: P.args, **kwargs: P.kwargs) -> T:
            with self(stage):
                return fn(*args, **kwargs)

        return run


@dataclass(frozen=True)
class _Plan:
    """What profiling decided: format, roles, time format, and the columns the passes read."""

    fmt: CsvFormat
    roles: RoleMap
    time_format: TimeFormat | None
    extra: ExtraColumns
    columns: list[str]  # read by both passes, in file order
    out_columns: list[str]  # copied to the output


@dataclass
class _FileIndex:
    """What pass 1 learns about the whole file."""

    rows: int
    amount: np.ndarray
    bad_amount: np.ndarray
    t: np.ndarray | None
    per_row: dict[str, np.ndarray]  # entity history and category shares, float32


class Pipeline:
    """Scores one file; `run` is the whole job."""

    def __init__(
        self,
        source: ModelSource,
        options: ScoreOptions | None = None,
        progress: Progress | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.source = source
        self.options = options or ScoreOptions()
        self.progress = progress or (lambda stage, done, total: None)
        self.cancelled = cancelled or (lambda: False)
        self.time = _Timer()
        self.thresholds = (self.options.medium_threshold, self.options.high_threshold)
        self.high_from = self.medium_from = "threshold"
        self.riskiest: list[dict[str, Any]] = []

    # --- pass 1 ------------------------------------------------------------------------------

    def _profile(self, fmt: CsvFormat) -> tuple[RoleMap, TimeFormat | None, pa.Table]:
        with self.time("read"):
            sample = head(fmt, self.options.sample_rows)
        if sample.num_rows == 0:
            raise InputError(_no_rows(fmt.path.name))
        with self.time("features"):
            frame = to_pandas_text(sample)
            roles = infer_roles(frame)
            time_format = None
            if roles.date_parts:
                time_format = TimeFormat("parts", parts=roles.date_parts)
            elif R.TIMESTAMP in roles:
                column = roles.columns[R.TIMESTAMP]
                time_format = detect_format(frame[column], R.tokens_of(column))
        return roles, time_format, sample

    def _columns(
        self, fmt: CsvFormat, roles: RoleMap, extra: ExtraColumns
    ) -> tuple[list[str], list[str]]:
        """(columns copied to the output, columns the passes read), in file order."""
        id_columns = [roles.columns[r] for r in ID_ROLES if r in roles]
        out_columns = list(fmt.columns) if self.options.keep_columns else id_columns
        role_columns = {c for r, c in roles.columns.items() if r != R.LABEL}
        role_columns |= set(roles.date_parts)
        needed = set(out_columns) | role_columns | set(extra.used)
        return out_columns, sorted(needed, key=fmt.columns.index)

    def _index(self, plan: _Plan, spool: Path) -> _FileIndex:
        """Pass 1: per-row arrays for the whole file. The text chunks go to an Arrow spool file
        on local disk, so pass 2 reads them back instead of parsing the CSV again."""
        builder = _IndexBuilder(plan.roles, plan.time_format, plan.extra.text)
        columns = plan.columns
        chunks = iter_chunks(plan.fmt, self.options.chunk_rows, columns)
        schema = pa.schema([(c, pa.string()) for c in columns])
        with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_file(sink, schema) as spooler:
            while True:
                with self.time("read"):
                    table = next(chunks, None)
                if table is None:
                    break
                self._check_cancel()
                with self.time("read"):
                    spooler.write_batch(table.combine_chunks().to_batches()[0])
                with self.time("features"):
                    builder.add(table)
                self.progress("reading", builder.rows, 0)
        with self.time("features"):
            return builder.finish()

    # --- per-chunk features ------------------------------------------------------------------

    def _matrix(
        self, table: pa.Table, rows: slice | np.ndarray, roles: RoleMap, index: _FileIndex
    ) -> np.ndarray:
        """Features of some rows (a chunk, or the sample): their own numbers plus their part
        of the file-level arrays."""
        n = table.num_rows

        def number(role: str) -> np.ndarray | None:
            return to_float(table[roles.get(role)])[0] if role in roles else None

        t = index.t[rows] if index.t is not None else None
        parts = row_features(
            n,
            index.amount[rows],
            t,
            number(R.DISTANCE),
            number(R.BALANCE_BEFORE),
            number(R.BALANCE_AFTER),
        )
        parts.update({name: values[rows] for name, values in index.per_row.items()})
        return assemble(parts, n, set(roles.columns))

    def _anomaly_matrix(
        self,
        table: pa.Table,
        rows: slice | np.ndarray,
        x: np.ndarray,
        extra: ExtraColumns,
        index: _FileIndex,
    ) -> np.ndarray:
        """What anomaly detection sees: the role features and the file's other usable columns
        (numbers as they are, categories as each value's share of the whole file)."""
        x = x[:, ANOMALY_FEATURES]
        entities = [
            index.per_row[_share_key(r)][rows][:, None]
            for r in ID_SHARE_ROLES
            if _share_key(r) in index.per_row
        ]
        if not extra.used and not entities:
            return x
        columns = [x.astype(np.float64), *entities]
        columns += [to_float(table[c])[0][:, None] for c in extra.numeric]
        columns += [index.per_row[_share_key(c)][rows][:, None] for c in extra.text]
        if index.t is not None:  # how long after each other date (sign-up) the row came
            t = index.t[rows]
            columns += [_log_gap(t - apply_format(table[c], f)) for c, f in extra.dates.items()]
        return np.hstack(columns)

    def _fit_blend(
        self,
        scorer: _Scorer,
        sample_x: np.ndarray,
        sample_ax: np.ndarray,
        sample_rows: np.ndarray,
        weight: float,
    ) -> np.ndarray:
        """Fit the blend (and the file model) on the sample; its final probabilities."""
        p_e, a, _ = scorer.collect(scorer.submit(sample_x, sample_ax), len(sample_x))
        with self.time("calibration"):
            blender = scorer.blender = Blender(weight, float(np.mean(p_e))).fit(p_e, a)
            sample_p = blender(p_e, a)
        if not (self.options.adapt and FileModel.usable(len(sample_x))):
            return sample_p
        with self.time("file_model"):
            model = FileModel(self.options.threads, self.options.seed)
            scorer.file_model = model.fit(sample_rows, sample_ax, sample_p)
            blender.adapt(model.oof, a)
        return blender.adapted(model.oof, a)

    def _uniform_sample(self, spool: Path, rows: int) -> tuple[pa.Table, np.ndarray]:
        """A uniform random sample of the whole file's rows (read back from the spool), so that
        what is fitted on it holds for a time-ordered file's last rows as for its first."""
        n = min(self.options.sample_rows, rows)
        rng = np.random.default_rng(self.options.seed)
        idx = np.sort(rng.choice(rows, n, replace=False))
        parts, offset = [], 0
        for table in _spooled(spool):
            lo, hi = np.searchsorted(idx, [offset, offset + table.num_rows])
            if hi > lo:
                parts.append(table.take(pa.array(idx[lo:hi] - offset)))
            offset += table.num_rows
        return pa.concat_tables(parts), idx

    # --- the job -----------------------------------------------------------------------------

    def run(
        self, input_path: Path, output_path: Path, errors_path: Path | None = None
    ) -> ScoreResult:
        """Score input_path into output_path (written whole, then renamed into place)."""
        fmt = sniff(Path(input_path))
        roles, time_format, sample = self._profile(fmt)
        self.progress("reading", 0, 0)
        extra = ExtraColumns([], [], [])
        if self.options.anomaly:
            with self.time("features"):
                extra = extra_columns(to_pandas_text(sample), roles)
        if not (set(roles.columns) & MEASURED_ROLES or extra.numeric):
            raise InputError(
                "no amount-like column found, nor any other column of numbers or times: "
                "expected a column of transaction amounts (e.g. amount, montant, importe, "
                "TransactionAmt, txn_amt); found: " + ", ".join(fmt.columns)
            )
        out_columns, columns = self._columns(fmt, roles, extra)
        plan = _Plan(fmt, roles, time_format, extra, columns, out_columns)
        # Named with the process id: a worker's start-up sweep removes a killed one's spools.
        spool_dir = tempfile.TemporaryDirectory(prefix=f"fraudscore-p{os.getpid()}-")
        spool = Path(spool_dir.name) / "chunks.arrow"
        try:
            return self._run(plan, spool, Path(output_path), errors_path)
        finally:
            spool_dir.cleanup()

    def _run(
        self, plan: _Plan, spool: Path, output_path: Path, errors_path: Path | None
    ) -> ScoreResult:
        opts = self.options
        self.thresholds = (opts.medium_threshold, opts.high_threshold)
        self.high_from = "threshold"  # or "alert budget", "riskiest share" (min_high_share)
        self.medium_from = "threshold"  # or "riskiest share" (min_medium_share)
        self.riskiest = []
        fmt, roles, extra, out_columns = plan.fmt, plan.roles, plan.extra, plan.out_columns
        index = self._index(plan, spool)
        if index.rows == 0:
            raise InputError(_no_rows(fmt.path.name))

        self.progress("matching", 0, index.rows)
        with self.time("read"):
            sample, sample_rows = self._uniform_sample(spool, index.rows)
        with self.time("features"):
            sample_x = self._matrix(sample, sample_rows, roles, index)
            sample_ax = self._anomaly_matrix(sample, sample_rows, sample_x, extra, index)
        with self.time("matching"):
            upload_roles = _scored_roles(roles)
            ranked = match_models(self.source.models(), upload_roles, sample_quantiles(sample_x))
            # Every reference model learnt from amounts: without them, the file's own evidence.
            usable = [m for m in ranked if m.coverage > 0 and R.AMOUNT in roles]
            if opts.only_model:
                usable = [m for m in usable if m.name == opts.only_model]
                if not usable:
                    raise InputError(
                        f"reference model {opts.only_model!r} does not exist or "
                        "cannot use this file's columns"
                    )
            chosen = ensemble_weights(usable[: opts.top_k])
            if not chosen and not (opts.anomaly and opts.blend):
                need = "" if R.AMOUNT in roles else ", all of which need an amount column"
                raise InputError(
                    f"no reference model can use this file's columns{need} (recognised: "
                    + ", ".join(f"{c} as {r}" for r, c in upload_roles.items())
                    + ")"
                )
            bundles = [self.source.load(m.name) for m in chosen]
        pool = ThreadPoolExecutor(max_workers=opts.threads)
        try:
            train_prior = float(
                sum(
                    m.weight * float(b.metadata["metrics"]["fraud_rate"])
                    for m, b in zip(chosen, bundles, strict=True)
                )
            )
            scorer = _Scorer(opts, self.time, chosen, bundles, AnomalyDetector(), pool)
            scorer.anomaly_names = _anomaly_names(index, extra)
            scorer.train_prior = scorer.prior = train_prior
            if opts.prior_shift and chosen:
                sample_p = scorer.collect(scorer.submit(sample_x, None), len(sample_x))[0]
                with self.time("calibration"):
                    scorer.prior = estimate_prior(sample_p, train_prior)
            weight = (
                reference_confidence(chosen[0].similarity, roles, extra, opts.reference_trust)
                if chosen
                else 0.0
            )
            final_sample: np.ndarray | None = None  # final probabilities on the sample
            if opts.anomaly:
                self.progress("anomaly", 0, index.rows)
                with self.time("anomaly"):
                    shares = [_is_share(name) for name in scorer.anomaly_names]
                    scorer.detector.fit(sample_ax, np.array(shares, bool))
                if opts.blend:
                    final_sample = self._fit_blend(scorer, sample_x, sample_ax, sample_rows, weight)
            if opts.alert_rate or opts.min_high_share or opts.min_medium_share:
                if final_sample is None:
                    futures = scorer.submit(sample_x, sample_ax if opts.anomaly else None)
                    final_sample = scorer.collect(futures, len(sample_x))[0]
                self._risk_shares(final_sample)
            counts = self._score_pass(spool, out_columns, extra, roles, index, scorer, output_path)
        finally:
            pool.shutdown()
        prior = scorer.prior
        failed = self._write_errors(index, roles, errors_path)
        estimate = float(counts["p_sum"]) / max(1, index.rows - failed)
        blender = scorer.blender
        band = (
            rate_band(estimate, blender.reference_rate, blender.weight)
            if blender is not None
            else rate_band(estimate, estimate, 1.0)
        )
        self.source.record_usage([m.name for m in chosen])
        stats = {
            "total_transactions": index.rows,
            "high_risk": counts["high"],
            "medium_risk": counts["medium"],
            "low_risk": counts["low"],
            "anomalies_detected": counts["anomalies"],
            "rows_failed": failed,
            "probability_histogram": [counts[f"bin{i}"] for i in range(HISTOGRAM_BINS)],
            "expected_frauds": round(float(counts["p_sum"]), 2),
            "estimated_fraud_rate": round(estimate, 6),
            "fraud_rate_band": [round(v, 6) for v in band],
        }
        if opts.reasons:
            stats["riskiest_rows"] = self.riskiest
        methods = self._methods(chosen, bundles, roles, train_prior, prior, scorer, extra)
        negative = int(np.sum(index.amount[~index.bad_amount] < 0))
        if negative:
            methods["warnings"].append(
                f"{negative} rows have a negative amount (refunds or reversals?); they are "
                "scored as given"
            )
        return ScoreResult(stats, methods, dict(self.time.seconds))

    def _risk_shares(self, sample_p: np.ndarray) -> None:
        """Thresholds from the sample's final probabilities: the alert budget's, or the riskiest
        shares that are at least `high` and at least `medium` when fewer rows reach them."""
        opts = self.options
        share = opts.alert_rate or opts.min_high_share
        if share:
            budget = _budget(sample_p, share, self.thresholds)
            if opts.alert_rate is not None:
                self.thresholds, self.high_from = budget, "alert budget"
            elif budget[1] < self.thresholds[1]:  # fewer rows than that reach the threshold
                self.thresholds, self.high_from = budget, "riskiest share"
        if opts.min_medium_share:
            medium = float(np.quantile(sample_p, 1 - opts.min_medium_share))
            if medium < self.thresholds[0]:  # fewer rows than that reach medium
                self.thresholds = (min(medium, self.thresholds[1]), self.thresholds[1])
                self.medium_from = "riskiest share"

    def _score_pass(
        self,
        spool: Path,
        out_columns: list[str],
        extra: ExtraColumns,
        roles: RoleMap,
        index: _FileIndex,
        scorer: _Scorer,
        output_path: Path,
    ) -> Counter[str]:
        """Pass 2: featurise chunk k+1 while the pool scores chunk k; append each in order."""
        opts = self.options
        tmp = output_path.with_name(output_path.name + ".part")
        counts: Counter[str] = Counter()
        offset = 0
        writer = None
        submitted: tuple[pa.Table, int, Any, np.ndarray, np.ndarray | None] | None = None
        try:
            chunks = _spooled(spool)
            pending: tuple[pa.Table, int, Any, np.ndarray, np.ndarray | None] | None = None
            while True:
                with self.time("read"):
                    table = next(chunks, None)
                if table is not None:
                    self._check_cancel()
                    self.progress("scoring", offset, index.rows)
                    rows = slice(offset, offset + table.num_rows)
                    with self.time("features"):
                        x = self._matrix(table, rows, roles, index)
                        ax = (
                            self._anomaly_matrix(table, rows, x, extra, index)
                            if opts.anomaly
                            else None
                        )
                    submitted = (table, offset, scorer.submit(x, ax, offset), x, ax)
                    offset += table.num_rows
                if pending is not None:
                    done_table, done_offset, futures, done_x, done_ax = pending
                    p, scores, flags = scorer.collect(futures, done_table.num_rows)
                    keep = ~index.bad_amount[done_offset : done_offset + len(p)]
                    reasons = None
                    if opts.reasons:
                        with self.time("reasons"):
                            reasons = self._reasons(
                                scorer,
                                done_table,
                                done_offset,
                                done_x,
                                done_ax,
                                p,
                                flags,
                                keep,
                                roles,
                                index,
                            )
                    with self.time("write"):
                        out = self._output_table(
                            done_table, out_columns, done_offset, p, scores, flags, keep, reasons
                        )
                        if writer is None:
                            writer = pacsv.CSVWriter(str(tmp), out.schema)
                        writer.write_table(out)
                        levels = out["risk_level"].combine_chunks().indices.to_numpy()
                        tally = np.bincount(levels, minlength=3)
                        counts.update(
                            {
                                "low": int(tally[0]),
                                "medium": int(tally[1]),
                                "high": int(tally[2]),
                                "anomalies": int(flags[keep].sum()),
                            }
                        )
                        counts["p_sum"] += float(p[keep].sum())  # type: ignore[assignment]
                        bins = np.histogram(p[keep], bins=HISTOGRAM_BINS, range=(0.0, 1.0))[0]
                        counts.update({f"bin{i}": int(c) for i, c in enumerate(bins)})
                pending = submitted if table is not None else None
                if table is None:
                    break
            self.progress("writing", offset, index.rows)
            with self.time("write"):
                if writer is None:
                    empty = self._output_table(
                        pa.table({c: pa.array([], pa.string()) for c in out_columns}),
                        out_columns,
                        0,
                        np.array([]),
                        np.array([]),
                        np.array([], bool),
                        np.array([], bool),
                        np.array([], dtype=object) if opts.reasons else None,
                    )
                    writer = pacsv.CSVWriter(str(tmp), empty.schema)
                writer.close()
                writer = None
                os.replace(tmp, output_path)
        finally:
            if writer is not None:
                writer.close()
            tmp.unlink(missing_ok=True)
        return counts

    def _output_table(
        self,
        table: pa.Table,
        out_columns: list[str],
        offset: int,
        p: np.ndarray,
        scores: np.ndarray,
        flags: np.ndarray,
        keep: np.ndarray,
        reasons: np.ndarray | None = None,
    ) -> pa.Table:
        risk = pa.DictionaryArray.from_arrays(pa.array(self._levels(p), pa.int8()), RISK_LEVELS)
        rows = np.arange(offset + 1, offset + len(p) + 1, dtype=np.int64)
        data: dict[str, Any] = {"row_number": pa.array(rows)}
        for column in out_columns:  # the user's cells, made safe to open in a spreadsheet
            name = safe_name(column if column not in data else f"input_{column}")
            data[name] = neutralise(table[column])
        data.update(
            {
                "fraud_probability": pa.array(np.round(p, PROBABILITY_DECIMALS)),
                "risk_level": risk,
                "anomaly_score": pa.array(np.round(scores, 4)),
                "is_anomaly": pa.array(flags.astype(np.int8)),
            }
        )
        if reasons is not None:  # they quote column names, which may start with "="
            data["reasons"] = neutralise(pa.array(reasons, pa.string()))
        out = pa.table(data)
        return out.filter(pa.array(keep)) if not keep.all() else out

    def _levels(self, p: np.ndarray) -> np.ndarray:
        """Each probability's index in RISK_LEVELS (low, medium, high)."""
        medium, high = self.thresholds
        return (p >= medium).astype(np.int8) + (p >= high)

    def _reasons(
        self,
        scorer: _Scorer,
        table: pa.Table,
        offset: int,
        x: np.ndarray,
        ax: np.ndarray | None,
        p: np.ndarray,
        flags: np.ndarray,
        keep: np.ndarray,
        roles: RoleMap,
        index: _FileIndex,
    ) -> np.ndarray:
        """The reasons cell of each row of a chunk (rows at `medium` or above, or flagged; empty
        for the others), and the chunk's riskiest rows offered to the summary's table."""
        medium, _ = self.thresholds
        explain = keep & ((p >= medium) | flags)
        candidates = np.flatnonzero(keep)
        if len(candidates) > RISKIEST_ROWS:
            top = np.argpartition(-p[candidates], RISKIEST_ROWS - 1)[:RISKIEST_ROWS]
            candidates = candidates[top]
        wanted = explain.copy()
        wanted[candidates] = True  # the table explains its rows, `low` ones too
        rows = np.flatnonzero(wanted)
        cells = np.full(len(p), "", dtype=object)
        cells[rows] = scorer.explain(x[rows], None if ax is None else ax[rows], flags[rows])
        self._offer_riskiest(table, offset, candidates, p, flags, cells, roles, index)
        cells[~explain] = ""
        return cells

    def _offer_riskiest(
        self,
        table: pa.Table,
        offset: int,
        rows: np.ndarray,
        p: np.ndarray,
        flags: np.ndarray,
        cells: np.ndarray,
        roles: RoleMap,
        index: _FileIndex,
    ) -> None:
        levels = self._levels(p[rows])

        def text(role: str, i: int) -> str | None:
            if role == R.TIMESTAMP and roles.date_parts:
                return " ".join(str(table[c][int(i)].as_py()) for c in roles.date_parts)
            return str(table[roles.get(role)][int(i)].as_py()) if role in roles else None

        for i, level in zip(rows, levels, strict=True):
            self.riskiest.append(
                {
                    "row_number": offset + int(i) + 1,
                    "id": text(R.TX_ID, i),
                    "customer": text(R.CUSTOMER, i),
                    "amount": _finite_or_none(index.amount[offset + i]),
                    "time": text(R.TIMESTAMP, i),
                    "fraud_probability": round(float(p[i]), PROBABILITY_DECIMALS),
                    "risk_level": RISK_LEVELS[int(level)].as_py(),
                    "is_anomaly": bool(flags[i]),
                    "reasons": cells[i],
                }
            )
        self.riskiest.sort(key=lambda r: (-r["fraud_probability"], r["row_number"]))
        del self.riskiest[RISKIEST_ROWS:]

    def _write_errors(self, index: _FileIndex, roles: RoleMap, path: Path | None) -> int:
        bad = np.flatnonzero(index.bad_amount)
        if path is not None:
            frame = pd.DataFrame(
                {
                    "row_number": bad + 1,
                    "column": safe_name(str(roles.get(R.AMOUNT))),
                    "reason": np.select(
                        [np.isnan(index.amount[bad]), np.isinf(index.amount[bad])],
                        ["missing or unreadable amount", "amount is not a finite number"],
                        f"amount beyond +-{MAX_AMOUNT:.0e}",
                    ),
                }
            )
            tmp = Path(path).with_name(Path(path).name + ".part")
            pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp)
            os.replace(tmp, path)
        return len(bad)

    def _methods(
        self,
        chosen: list[Match],
        bundles: list[ModelBundle],
        roles: RoleMap,
        train_prior: float,
        prior: float,
        scorer: _Scorer,
        extra: ExtraColumns,
    ) -> dict[str, Any]:
        kinds = sorted({b.calibrator.kind for b in bundles})
        calibration = f"per-model {'/'.join(kinds)}"
        if self.options.prior_shift:
            calibration += " + base-rate adjustment (EM prior estimate)"
        blender = scorer.blender
        model_columns = sorted(c for r, c in roles.columns.items() if r != R.LABEL)
        warnings = []
        if blender is not None:
            calibration += " + blended rank mapped to the ensemble's distribution"
            prior = blender.prior
            if chosen and len(extra.used) > len(model_columns):
                total = len(model_columns) + len(extra.used)
                warnings.append(
                    f"no reference model uses {len(extra.used)} of the file's {total} usable "
                    f"columns; scores lean on anomaly detection "
                    f"(reference weight {blender.weight:.2f})"
                )
        if not chosen:
            why = "this file has no amount column" if R.AMOUNT not in roles else "none fits"
            warnings.append(
                f"no reference model is used ({why}): rows are ranked by the file's own "
                "evidence (anomaly detection and a model of the file), and probabilities stay "
                f"near the assumed base rate of {FALLBACK_PRIOR:.0%}"
            )
        elif chosen[0].similarity < LOW_SIMILARITY:
            warnings.append(
                f"the closest reference model matches this file poorly (similarity "
                f"{chosen[0].similarity:.2f}); treat probabilities as a ranking"
            )
        blend = None
        if blender is not None:
            blend = {
                "reference_weight": round(blender.weight, 4),
                "anomaly_weight": round(1 - blender.weight, 4),
                "reason": "weight = best similarity x share of the file's usable columns that "
                "the reference models see",
                "file_model": scorer.file_model is not None,
            }
            if scorer.file_model is not None:
                blend["file_model_reason"] = (
                    "rows ranked by an XGBoost model of this file, trained on the blend's top "
                    f"{POSITIVE_SHARE:.0%} and bottom {NEGATIVE_SHARE:.0%} of the sample "
                    f"({1 - ANOMALY_HEDGE:.0%} of the rank; the anomaly rank the rest)"
                )
        medium, high = self.thresholds
        return {
            "risk_thresholds": {
                "medium": round(medium, 6),
                "high": round(high, 6),
                "alert_rate": self.options.alert_rate,
                "min_high_share": self.options.min_high_share,
                "high_from": self.high_from,
                "min_medium_share": self.options.min_medium_share,
                "medium_from": self.medium_from,
            },
            "blend": blend,
            "warnings": warnings,
            "columns": {
                "reference_models": model_columns,
                "anomaly_only": extra.used,
                "ignored": extra.ignored,
            },
            "ensemble": f"weighted_average ({self.options.pooling} pooling)",
            "top_k_models": len(chosen),
            "models": [
                {"name": m.name, "similarity": round(m.similarity, 4), "weight": round(m.weight, 4)}
                for m in chosen
            ],
            "anomaly_detection": "isolation_forest" if self.options.anomaly else "off",
            "anomaly_inputs_without_rare_values": [
                scorer.anomaly_names[i] for i in scorer.detector.screened_out
            ],
            "calibration": calibration,
            "best_model": chosen[0].name if chosen else None,
            "similarity_score": round(chosen[0].similarity, 4) if chosen else 0.0,
            "roles": {r: c for r, c in roles.columns.items()},
            **({"timestamp_columns": list(roles.date_parts)} if roles.date_parts else {}),
            "base_rate": {"reference": round(train_prior, 6), "estimated": round(prior, 6)},
            "matching": [m.explain() for m in chosen],
        }

    def _check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled("cancelled")


@dataclass
class _Scorer:
    """The ensemble, the anomaly detector and the file model over feature matrices, in blocks on
    a thread pool.

    `submit` returns at once, so the caller can read and featurise the next chunk while the
    pool scores this one; `collect` waits and combines.
    """

    options: ScoreOptions
    timer: _Timer
    chosen: list[Match]
    bundles: list[ModelBundle]
    detector: AnomalyDetector
    pool: ThreadPoolExecutor
    train_prior: float = 0.0
    prior: float = 0.0
    blender: Blender | None = None
    file_model: FileModel | None = None
    anomaly_names: list[str] = field(default_factory=list)

    def submit(
        self, x: np.ndarray, anomaly_x: np.ndarray | None, first_row: int = 0
    ) -> tuple[list[list[Future]], list[Future], list[Future]]:
        """Start scoring; once the file model is fitted, it ranks the rows with the anomaly
        detector (it learnt the ensemble's part from the sample), so the reference models are
        not run on them again."""
        scores: list[Future] = []
        if anomaly_x is not None:
            starts = range(0, len(anomaly_x), BLOCK_ROWS)
            if self.file_model is not None:
                own = [
                    self.pool.submit(self._own, anomaly_x[i : i + BLOCK_ROWS], first_row + i)
                    for i in starts
                ]
                return [], [], own
            score = self.timer.timed("anomaly", self.detector.score)
            scores = [self.pool.submit(score, anomaly_x[i : i + BLOCK_ROWS]) for i in starts]
        blocks = [x[i : i + BLOCK_ROWS] for i in range(0, len(x), BLOCK_ROWS)]
        models = [
            [
                self.pool.submit(self.timer.timed(f"model:{m.name}", b.predict_raw), block)
                for block in blocks
            ]
            for m, b in zip(self.chosen, self.bundles, strict=True)
        ]
        return models, scores, []

    def explain(self, x: np.ndarray, ax: np.ndarray | None, flags: np.ndarray) -> list[str]:
        """Reasons for some rows: the contributions of the model that ranked them (the file
        model, else the reference models weighted), and the anomaly's strangest input."""
        if len(x) == 0:
            return []
        if self.file_model is not None and ax is not None:
            model = from_contributions(self.file_model.contributions(ax), ax, self.anomaly_names)
        elif not self.chosen:
            model = [[] for _ in range(len(x))]
        else:
            total = sum(
                m.weight * b.contributions(x)
                for m, b in zip(self.chosen, self.bundles, strict=True)
            )
            model = from_contributions(np.asarray(total), x, list(self.bundles[0].features))
        anomaly: list[str | None] | None = None
        if ax is not None and flags.any():
            flagged = np.flatnonzero(flags)
            strange = unusual(self.detector.deviation(ax[flagged]), ax[flagged], self.anomaly_names)
            anomaly = [None] * len(x)
            for i, phrase in zip(flagged, strange, strict=True):
                anomaly[i] = phrase
        return join(model, anomaly)

    def _own(self, anomaly_x: np.ndarray, first_row: int) -> tuple[np.ndarray, np.ndarray]:
        """A block's anomaly scores and hedged ranks, once a file model ranks the rows (the
        ranks here, on the pool's threads, rather than on the thread that writes)."""
        assert self.file_model is not None and self.blender is not None
        with self.timer("anomaly"):
            scores = self.detector.score(anomaly_x)
        with self.timer("file_model"):
            own = self.file_model.predict(anomaly_x, first_row)
        with self.timer("calibration"):
            return scores, self.blender.hedged(own, scores)

    def collect(
        self, futures: tuple[list[list[Future]], list[Future], list[Future]], n: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(probability, anomaly score, anomaly flag) per row."""
        models, score_futures, own_futures = futures
        if own_futures and self.blender is not None:
            parts = [f.result() for f in own_futures]
            scores = np.concatenate([s for s, _ in parts])
            with self.timer("calibration"):
                p = self.blender.from_hedged(np.concatenate([h for _, h in parts]))
            return p, scores, self.detector.flags(scores)
        p = self._ensemble(models, n)
        if not score_futures:
            return p, np.zeros(n), np.zeros(n, bool)
        scores = np.concatenate([f.result() for f in score_futures])
        if self.blender is not None:
            with self.timer("calibration"):
                p = self.blender(p, scores)
        return p, scores, self.detector.flags(scores)

    def _ensemble(self, models: list[list[Future]], n: int) -> np.ndarray:
        """The reference models' calibrated probabilities, pooled by weight (without any, the
        fallback rate: the blend then ranks by the file's own evidence)."""
        if not self.chosen:
            return np.full(n, FALLBACK_PRIOR)
        pooled_logit = self.options.pooling == "logit"
        out = np.zeros(n)
        for match, bundle, parts in zip(self.chosen, self.bundles, models, strict=True):
            raw = np.concatenate([f.result() for f in parts]) if parts else np.zeros(0)
            with self.timer("calibration"):
                p = bundle.calibrator(raw) if self.options.calibrate else raw
                out += match.weight * (logit(p) if pooled_logit else p)
        with self.timer("calibration"):
            p = 1 / (1 + np.exp(-out)) if pooled_logit else out
            if self.options.prior_shift and self.prior:
                p = shift_prior(p, self.train_prior, self.prior)
        return p


class _IndexBuilder:
    """Collects pass 1's per-row arrays chunk by chunk, then computes file-level features."""

    def __init__(
        self, roles: RoleMap, time_format: TimeFormat | None, shares_of: list[str]
    ) -> None:
        self.roles, self.time_format = roles, time_format
        self.shares: dict[str, list[pa.DictionaryArray]] = {c: [] for c in shares_of}
        self.rows = 0
        self.amounts: list[np.ndarray] = []
        self.bads: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.ids: dict[str, list[pa.ChunkedArray]] = {R.CUSTOMER: [], R.TERMINAL: []}
        self.categories: dict[str, list[pa.DictionaryArray]] = {r: [] for r in CATEGORICAL_FEATURES}

    def add(self, table: pa.Table) -> None:
        roles = self.roles
        if R.AMOUNT in roles:
            amount, bad = to_float(table[roles.get(R.AMOUNT)])
            # Not scored: missing, unreadable, infinite (`inf`, `1e309`) or absurd amounts.
            bad = bad | ~np.isfinite(amount) | (np.abs(amount) > MAX_AMOUNT)
        else:  # a file without amounts is scored on its other columns
            amount, bad = np.full(table.num_rows, np.nan), np.zeros(table.num_rows, bool)
        self.amounts.append(amount)
        self.bads.append(bad)
        if self.time_format is not None:
            self.times.append(read_clock(table, roles.columns[R.TIMESTAMP], self.time_format))
        for role, parts in self.ids.items():
            if role in roles:
                parts.append(table[roles.get(role)])
        for role, parts in self.categories.items():
            if role in roles:
                parts.append(pc.dictionary_encode(table[roles.get(role)].combine_chunks()))
        for column, parts in self.shares.items():
            parts.append(pc.dictionary_encode(table[column].combine_chunks()))
        self.rows += table.num_rows

    def finish(self) -> _FileIndex:
        amount = np.concatenate(self.amounts) if self.amounts else np.array([])
        t = np.concatenate(self.times) if self.times else None
        codes = {role: _codes(parts) for role, parts in self.ids.items() if parts}
        entity = entity_features(codes.get(R.CUSTOMER), codes.get(R.TERMINAL), t, amount)
        per_row = {name: values.astype(np.float32) for name, values in entity.items()}
        for role, role_codes in codes.items():  # how much of the file each card, terminal is
            per_row[_share_key(role)] = (np.bincount(role_codes)[role_codes] / self.rows).astype(
                np.float32
            )
        for role, parts in self.categories.items():
            if parts:
                per_row[CATEGORICAL_FEATURES[role]] = _shares(parts, self.rows)
        for column, parts in self.shares.items():
            per_row[_share_key(column)] = _shares(parts, self.rows)
        bad = np.concatenate(self.bads) if self.bads else np.array([], bool)
        return _FileIndex(self.rows, amount, bad, t, per_row)


def _finite_or_none(value: float) -> float | None:
    """A number for the JSON summary (which has no NaN): None where the file has none."""
    return float(value) if np.isfinite(value) else None


def _scored_roles(roles: RoleMap) -> dict[str, str]:
    """The roles the reference models and anomaly detection read (not the label or row ids)."""
    return {r: c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}


def _no_rows(name: str) -> str:
    return (
        f"{name} has a header but no rows: send a CSV file with a header line, then one "
        "transaction per line"
    )


def _anomaly_names(index: _FileIndex, extra: ExtraColumns) -> list[str]:
    """The names of the anomaly inputs, in `_anomaly_matrix`'s order."""
    names = [FEATURES[i] for i in ANOMALY_FEATURES]
    names += [_share_key(r) for r in ID_SHARE_ROLES if _share_key(r) in index.per_row]
    names += extra.numeric + [_share_key(c) for c in extra.text]
    return names + ([_since_key(c) for c in extra.dates] if index.t is not None else [])


def _budget(
    sample_p: np.ndarray, alert_rate: float, thresholds: tuple[float, float]
) -> tuple[float, float]:
    """(medium, high) thresholds when the riskiest `alert_rate` of rows are to be `high`."""
    high = float(np.quantile(sample_p, 1 - alert_rate))
    return min(thresholds[0], high), high


def _log_gap(seconds: np.ndarray) -> np.ndarray:
    """A signed log of a time gap, as a column: a second and a minute after sign-up differ as
    much as a day and two months do."""
    return (np.sign(seconds) * np.log1p(np.abs(seconds)))[:, None]


def _is_share(name: str) -> bool:
    """Is this anomaly input a value's share of the file (a category's, a card's, a device's)?"""
    return name in CATEGORICAL_FEATURES.values() or name.startswith(SHARE_PREFIX)


def _since_key(column: str) -> str:
    """The anomaly input of an other date column: seconds from it to the row's timestamp."""
    return f"since:{column}"


def _share_key(column: str) -> str:
    """The per-row array of a non-role text column's value shares (never a model feature)."""
    return f"{SHARE_PREFIX}{column}"


def _spooled(path: Path) -> Iterator[pa.Table]:
    """The chunks pass 1 spooled, in order."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        for i in range(reader.num_record_batches):
            yield pa.Table.from_batches([reader.get_batch(i)])


def _shares(parts: list[pa.DictionaryArray], rows: int) -> np.ndarray:
    """Each row's value's share of the whole column; empty values are missing (NaN)."""
    counts: Counter[str] = Counter()
    for part in parts:
        tally = np.bincount(
            part.indices.to_numpy(zero_copy_only=False), minlength=len(part.dictionary)
        )
        counts.update(dict(zip(part.dictionary.to_pylist(), tally.tolist(), strict=True)))
    counts.pop("", None)
    out = []
    for part in parts:
        lookup = np.array(
            [counts.get(v, np.nan) / rows for v in part.dictionary.to_pylist()], dtype=np.float32
        )
        out.append(lookup[part.indices.to_numpy(zero_copy_only=False)])
    return np.concatenate(out)


def _codes(parts: list[pa.ChunkedArray]) -> np.ndarray:
    """Integer codes for an id column over the whole file (equal ids, equal codes)."""
    combined = pa.chunked_array([chunk for part in parts for chunk in part.chunks], pa.string())
    encoded = pc.dictionary_encode(combined.combine_chunks())
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
