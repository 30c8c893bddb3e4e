"""The scoring pipeline: one unlabeled CSV in, a predictions CSV (and an errors CSV) out.

    read -> profile -> match (top-k) -> align -> ensemble -> anomaly -> calibration -> risk

Two streaming passes keep memory bounded by the chunk size plus ~80 bytes per row: pass 1
reads the role columns (ids, time, amount, categories) to build per-entity history over the
whole file, so features are exact across chunk boundaries whatever the row order; pass 2
reads chunks of the file again, scores them and appends to the output. Roles, the timestamp
format, the anomaly detector and the base-rate estimate all come from the first
`sample_rows` rows, so the output does not depend on the chunk size.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shared import roles as R
from shared.anomaly import AnomalyDetector
from shared.artifacts import ModelBundle
from shared.calibration import estimate_prior, shift_prior
from shared.csvio import CsvFormat, InputError, head, iter_chunks, sniff, to_float, to_pandas_text
from shared.features import CATEGORICAL_FEATURES, assemble, entity_features, row_features
from shared.matching import Match, ModelInfo, ensemble_weights, match_models, sample_quantiles
from shared.roles import RoleMap, infer_roles
from shared.timeparse import TimeFormat, apply_format, detect_format

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
ID_ROLES = (R.TX_ID, R.CUSTOMER, R.TERMINAL)
BLOCK_ROWS = 16_384
OUTPUT_COLUMNS = ("fraud_probability", "risk_level", "anomaly_score", "is_anomaly")


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

    def __post_init__(self) -> None:
        if not self.calibrate:
            self.prior_shift = False
        if self.pooling not in ("logit", "linear"):
            raise ValueError("pooling must be 'logit' or 'linear'")
        if not 0 <= self.medium_threshold <= self.high_threshold <= 1:
            raise ValueError("risk thresholds must satisfy 0 <= medium <= high <= 1")
        if self.top_k < 1 or self.chunk_rows < 1 or self.sample_rows < 1:
            raise ValueError("top_k, chunk_rows and sample_rows must be positive")


@dataclass
class ScoreResult:
    stats: dict[str, int]
    methods_used: dict[str, Any]
    timings: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {"stats": self.stats, "methods_used": self.methods_used}


class _Timer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[stage] += time.perf_counter() - started


@dataclass
class _FileIndex:
    """What pass 1 learns about the whole file."""

    rows: int
    amount: np.ndarray
    bad_amount: np.ndarray
    entity: dict[str, np.ndarray]
    shares: dict[str, dict[str, float]]


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

    # --- pass 1 ------------------------------------------------------------------------------

    def _profile(self, fmt: CsvFormat) -> tuple[RoleMap, TimeFormat | None, pa.Table]:
        with self.time("read"):
            sample = head(fmt, self.options.sample_rows)
        if sample.num_rows == 0:
            raise InputError(f"{fmt.path.name} has a header but no rows")
        with self.time("features"):
            frame = to_pandas_text(sample)
            roles = infer_roles(frame)
            if R.AMOUNT not in roles:
                raise InputError(
                    "no amount-like column found: expected a column of transaction amounts "
                    "(e.g. amount, montant, importe, TransactionAmt, txn_amt); found: "
                    + ", ".join(fmt.columns)
                )
            time_format = None
            if R.TIMESTAMP in roles:
                column = roles.get(R.TIMESTAMP)
                time_format = detect_format(frame[column], R.tokens_of(column))
        return roles, time_format, sample

    def _index(self, fmt: CsvFormat, roles: RoleMap, time_format: TimeFormat | None) -> _FileIndex:
        wanted = [R.AMOUNT, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, *CATEGORICAL_FEATURES]
        columns = [roles.get(r) for r in wanted if r in roles]
        amounts, bads, times = [], [], []
        ids: dict[str, list[pa.ChunkedArray]] = {R.CUSTOMER: [], R.TERMINAL: []}
        counts: dict[str, Counter[str]] = {role: Counter() for role in CATEGORICAL_FEATURES}
        rows = 0
        chunks = iter_chunks(fmt, self.options.chunk_rows, columns)
        while True:
            with self.time("read"):
                table = next(chunks, None)
            if table is None:
                break
            self._check_cancel()
            with self.time("features"):
                amount, bad = to_float(table[roles.get(R.AMOUNT)])
                amounts.append(amount)
                bads.append(bad | np.isnan(amount))
                if time_format is not None:
                    times.append(apply_format(table[roles.get(R.TIMESTAMP)], time_format))
                for role, parts in ids.items():
                    if role in roles:
                        parts.append(table[roles.get(role)])
                for role, counter in counts.items():
                    if role in roles:
                        tally = pc.value_counts(table[roles.get(role)]).to_pylist()
                        counter.update({item["values"]: item["counts"] for item in tally})
            rows += table.num_rows
            self.progress("reading", rows, 0)
        with self.time("features"):
            amount_all = np.concatenate(amounts) if amounts else np.array([])
            t_all = np.concatenate(times) if times else None
            codes = {role: _codes(parts) for role, parts in ids.items() if parts}
            entity = entity_features(
                codes.get(R.CUSTOMER), codes.get(R.TERMINAL), t_all, amount_all
            )
            entity = {name: values.astype(np.float32) for name, values in entity.items()}
            shares = {
                role: {value: count / rows for value, count in counter.items()}
                for role, counter in counts.items()
                if counter
            }
        return _FileIndex(rows, amount_all, np.concatenate(bads) if bads else np.array([], bool),
                          entity, shares)  # fmt: skip

    # --- per-chunk features ------------------------------------------------------------------

    def _matrix(
        self,
        table: pa.Table,
        offset: int,
        roles: RoleMap,
        time_format: TimeFormat | None,
        index: _FileIndex,
    ) -> np.ndarray:
        n = table.num_rows
        amount = index.amount[offset : offset + n]
        t = None
        if time_format is not None:
            t = apply_format(table[roles.get(R.TIMESTAMP)], time_format)

        def number(role: str) -> np.ndarray | None:
            return to_float(table[roles.get(role)])[0] if role in roles else None

        freqs = {}
        for role, name in CATEGORICAL_FEATURES.items():
            if role in index.shares:
                text = table[roles.get(role)].to_pandas()
                freqs[name] = text.map(index.shares[role]).astype(float).to_numpy()
        parts = row_features(
            n, amount, t, number(R.DISTANCE), number(R.BALANCE_BEFORE), number(R.BALANCE_AFTER),
            freqs,
        )  # fmt: skip
        parts.update({k: v[offset : offset + n] for k, v in index.entity.items()})
        return assemble(parts, n, set(roles.columns))

    # --- the job -----------------------------------------------------------------------------

    def run(
        self, input_path: Path, output_path: Path, errors_path: Path | None = None
    ) -> ScoreResult:
        """Score input_path into output_path (written whole, then renamed into place)."""
        opts = self.options
        fmt = sniff(Path(input_path))
        roles, time_format, sample = self._profile(fmt)
        self.progress("reading", 0, 0)
        index = self._index(fmt, roles, time_format)
        if index.rows == 0:
            raise InputError(f"{fmt.path.name} has a header but no rows")

        self.progress("matching", 0, index.rows)
        sample_n = min(sample.num_rows, index.rows)
        with self.time("features"):
            sample_x = self._matrix(sample.slice(0, sample_n), 0, roles, time_format, index)
        with self.time("matching"):
            upload_roles = {r: c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}
            ranked = match_models(self.source.models(), upload_roles, sample_quantiles(sample_x))
            chosen = ensemble_weights([m for m in ranked if m.coverage > 0][: opts.top_k])
            if not chosen:
                raise InputError(
                    "no reference model can use this file's columns (recognised: "
                    + ", ".join(f"{c} as {r}" for r, c in upload_roles.items()) + ")"
                )  # fmt: skip
            bundles = [self.source.load(m.name) for m in chosen]
        pool = ThreadPoolExecutor(max_workers=opts.threads)
        try:
            with self.time("calibration"):
                train_prior = float(sum(
                    m.weight * float(b.metadata["metrics"]["fraud_rate"])
                    for m, b in zip(chosen, bundles, strict=True)
                ))  # fmt: skip
            sample_p = self._ensemble(sample_x, chosen, bundles, pool)
            with self.time("calibration"):
                prior = estimate_prior(sample_p, train_prior) if opts.prior_shift else train_prior
            detector = AnomalyDetector()
            if opts.anomaly:
                self.progress("anomaly", 0, index.rows)
                with self.time("anomaly"):
                    detector.fit(sample_x)
            counts = self._score_pass(
                fmt, roles, time_format, index, chosen, bundles, detector, train_prior, prior,
                Path(output_path), pool,
            )  # fmt: skip
        finally:
            pool.shutdown()
        failed = self._write_errors(index, roles, errors_path)
        self.source.record_usage([m.name for m in chosen])
        stats = {
            "total_transactions": index.rows,
            "high_risk": counts["high"],
            "medium_risk": counts["medium"],
            "low_risk": counts["low"],
            "anomalies_detected": counts["anomalies"],
            "rows_failed": failed,
        }
        methods = self._methods(chosen, bundles, roles, train_prior, prior)
        return ScoreResult(stats, methods, dict(self.time.seconds))

    def _ensemble(
        self,
        x: np.ndarray,
        chosen: list[Match],
        bundles: list[ModelBundle],
        pool: ThreadPoolExecutor,
    ) -> np.ndarray:
        """Weighted average of the models' calibrated probabilities, blocks on threads."""
        out = np.zeros(len(x))
        logit = self.options.pooling == "logit"
        for match, bundle in zip(chosen, bundles, strict=True):
            blocks = [x[i : i + BLOCK_ROWS] for i in range(0, len(x), BLOCK_ROWS)]
            with self.time(f"model:{match.name}"):
                raw = (
                    np.concatenate(list(pool.map(bundle.predict_raw, blocks)))
                    if blocks
                    else np.array([])
                )
            with self.time("calibration"):
                p = bundle.calibrator(raw) if self.options.calibrate else raw
                out += match.weight * (_logit(p) if logit else p)
        return 1 / (1 + np.exp(-out)) if logit else out

    def _score_pass(
        self,
        fmt: CsvFormat,
        roles: RoleMap,
        time_format: TimeFormat | None,
        index: _FileIndex,
        chosen: list[Match],
        bundles: list[ModelBundle],
        detector: AnomalyDetector,
        train_prior: float,
        prior: float,
        output_path: Path,
        pool: ThreadPoolExecutor,
    ) -> Counter[str]:
        opts = self.options
        id_columns = [roles.get(r) for r in ID_ROLES if r in roles]
        out_columns = list(fmt.columns) if opts.keep_columns else id_columns
        needed = sorted(set(out_columns) | {c for r, c in roles.columns.items() if r != R.LABEL},
                        key=fmt.columns.index)  # fmt: skip
        tmp = output_path.with_name(output_path.name + ".part")
        counts: Counter[str] = Counter()
        offset = 0
        writer = None
        try:
            chunks = iter_chunks(fmt, opts.chunk_rows, needed)
            while True:
                with self.time("read"):
                    table = next(chunks, None)
                if table is None:
                    break
                self._check_cancel()
                self.progress("scoring", offset, index.rows)
                with self.time("features"):
                    x = self._matrix(table, offset, roles, time_format, index)
                p = self._ensemble(x, chosen, bundles, pool)
                with self.time("calibration"):
                    if opts.prior_shift:
                        p = shift_prior(p, train_prior, prior)
                with self.time("anomaly"):
                    scores = detector.score(x, pool) if opts.anomaly else np.zeros(len(x))
                    flags = detector.flags(scores) if opts.anomaly else np.zeros(len(x), bool)
                with self.time("write"):
                    keep = ~index.bad_amount[offset : offset + len(x)]
                    out = self._output_table(table, out_columns, offset, p, scores, flags, keep)
                    if writer is None:
                        writer = pacsv.CSVWriter(str(tmp), out.schema)
                    writer.write_table(out)
                    risk = out["risk_level"].to_numpy(zero_copy_only=False)
                    counts.update({"high": int((risk == "high").sum()),
                                   "medium": int((risk == "medium").sum()),
                                   "low": int((risk == "low").sum()),
                                   "anomalies": int(flags[keep].sum())})  # fmt: skip
                offset += len(x)
            self.progress("writing", offset, index.rows)
            with self.time("write"):
                if writer is None:
                    empty = self._output_table(
                        pa.table({c: pa.array([], pa.string()) for c in needed}), out_columns,
                        0, np.array([]), np.array([]), np.array([], bool), np.array([], bool),
                    )  # fmt: skip
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
    ) -> pa.Table:
        opts = self.options
        risk = np.where(p >= opts.high_threshold, "high",
                        np.where(p >= opts.medium_threshold, "medium", "low"))  # fmt: skip
        rows = np.arange(offset + 1, offset + len(p) + 1, dtype=np.int64)
        data: dict[str, Any] = {"row_number": pa.array(rows)}
        for column in out_columns:
            data[column if column not in data else f"input_{column}"] = table[column]
        data.update({
            "fraud_probability": pa.array(np.round(p, 6)),
            "risk_level": pa.array(risk.astype(str)),
            "anomaly_score": pa.array(np.round(scores, 4)),
            "is_anomaly": pa.array(flags.astype(np.int8)),
        })  # fmt: skip
        out = pa.table(data)
        return out.filter(pa.array(keep)) if not keep.all() else out

    def _write_errors(self, index: _FileIndex, roles: RoleMap, path: Path | None) -> int:
        bad = np.flatnonzero(index.bad_amount)
        if path is not None:
            frame = pd.DataFrame({
                "row_number": bad + 1,
                "column": roles.get(R.AMOUNT),
                "reason": np.where(np.isnan(index.amount[bad]), "missing or unreadable amount",
                                   "unreadable amount"),
            })  # fmt: skip
            tmp = Path(path).with_name(Path(path).name + ".part")
            pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp)
            os.replace(tmp, path)
        return len(bad)

    def _methods(self, chosen: list[Match], bundles: list[ModelBundle], roles: RoleMap,
                 train_prior: float, prior: float) -> dict[str, Any]:  # fmt: skip
        kinds = sorted({b.calibrator.kind for b in bundles})
        calibration = f"per-model {'/'.join(kinds)}"
        if self.options.prior_shift:
            calibration += " + base-rate adjustment (EM prior estimate)"
        return {
            "ensemble": f"weighted_average ({self.options.pooling} pooling)",
            "top_k_models": len(chosen),
            "models": [
                {"name": m.name, "similarity": round(m.similarity, 4), "weight": round(m.weight, 4)}
                for m in chosen
            ],
            "anomaly_detection": "isolation_forest" if self.options.anomaly else "off",
            "calibration": calibration,
            "best_model": chosen[0].name,
            "similarity_score": round(chosen[0].similarity, 4),
            "roles": {r: c for r, c in roles.columns.items()},
            "base_rate": {"reference": round(train_prior, 6), "estimated": round(prior, 6)},
            "matching": [m.explain() for m in chosen],
        }

    def _check_cancel(self) -> None:
        if self.cancelled():
            raise Cancelled("cancelled")


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def _codes(parts: list[pa.ChunkedArray]) -> np.ndarray:
    """Integer codes for an id column over the whole file (equal ids, equal codes)."""
    combined = pa.chunked_array([chunk for part in parts for chunk in part.chunks], pa.string())
    codes, _ = pd.factorize(combined.to_numpy(zero_copy_only=False))
    return codes.astype(np.int64)
