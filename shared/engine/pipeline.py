"""The scoring pipeline: one unlabeled CSV in, a predictions CSV (and an errors CSV) out.

    profile -> index (pass 1) -> sample -> match -> fit -> score (pass 2) -> summarise

`profile` reads the roles and formats from the file's first rows; pass 1 streams the file
once, spools its chunks to a local Arrow file and writes beside it the per-row arrays that
need the whole file (entity history, value shares: exact across chunk boundaries whatever the
row order); the matched models and the fitted plan come from a seeded uniform sample of the
whole file (so the output does not depend on the chunk size); pass 2 scores the spooled
chunks, two at a time, with `scoring.score` and appends them in order. docs/pipeline.md
describes each stage and what memory they take.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.engine import roles as R
from shared.engine.columns import ExtraColumns, extra_columns
from shared.engine.csvio import (
    CsvFormat,
    NotUtf8,
    head,
    iter_chunks,
    neutralise,
    safe_name,
    sniff,
    to_pandas_text,
)
from shared.engine.fileindex import MAX_AMOUNT, FileIndex, IndexBuilder, spooled
from shared.engine.fitting import Matched, Sample, fit
from shared.engine.matching import match_models, sample_quantiles
from shared.engine.options import ScoreOptions
from shared.engine.plan import FittedPlan, Layout, ModelSource
from shared.engine.roles import RoleMap, infer_roles
from shared.engine.scoring import Scored, anomaly_names, inputs, score
from shared.engine.summary import PROBABILITY_DECIMALS, RISK_LEVELS, Tallies, summarise
from shared.engine.team import best_team, input_names, is_team
from shared.engine.timeparse import TimeFormat, detect_format
from shared.engine.timing import Timer
from shared.errors import InputError

__all__ = ["Cancelled", "ModelSource", "Pipeline", "Prepared", "ScoreOptions", "ScoreResult"]

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
ID_ROLES = (R.TX_ID, R.CUSTOMER, R.TERMINAL)
OUTPUT_COLUMNS = ("fraud_probability", "risk_level", "anomaly_score", "is_anomaly", "reasons")
# A file is scored when it measures something: an amount, a time or another number. Without an
# amount no reference model applies (they all learnt from one) and the file's own evidence
# ranks the rows; ids and categories alone (a list of names) are refused.
MEASURED_ROLES = {R.AMOUNT, R.TIMESTAMP, R.DISTANCE, R.BALANCE_BEFORE, R.BALANCE_AFTER}
BLOCKS_IN_FLIGHT = 2  # chunks scored at once: one featurised while the pool scores the other


class Cancelled(Exception):
    """The caller asked to stop (checked at chunk boundaries)."""


@dataclass
class ScoreResult:
    stats: dict[str, Any]
    methods_used: dict[str, Any]
    timings: dict[str, float]
    plan: FittedPlan | None = None

    def summary(self) -> dict[str, Any]:
        return {"stats": self.stats, "methods_used": self.methods_used}


@dataclass(frozen=True, eq=False)
class Prepared:
    """A file ready for pass 2: its fitted plan, pass 1's arrays and the spooled chunks."""

    plan: FittedPlan
    index: FileIndex
    spool: Path


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
        self.time = Timer()

    def run(
        self,
        input_path: Path,
        output_path: Path,
        errors_path: Path | None = None,
        plan: FittedPlan | None = None,
    ) -> ScoreResult:
        """Score input_path into output_path (written whole, then renamed into place); with a
        `plan` fitted on this file before, score it with that plan."""
        # Named with the process id: a worker's start-up sweep removes a killed one's spools.
        with tempfile.TemporaryDirectory(prefix=f"fraudscore-p{os.getpid()}-") as folder:
            prepared = self.prepare(Path(input_path), Path(folder), plan)
            with ThreadPoolExecutor(max_workers=self.options.threads) as pool:
                tallies = self.score(
                    prepared.plan, prepared.spool, prepared.index, Path(output_path), pool
                )
            return self.result(prepared, tallies, errors_path)

    def prepare(self, input_path: Path, folder: Path, plan: FittedPlan | None = None) -> Prepared:
        """Profile, pass 1 (its chunks spooled into `folder`) and the fitted plan (or `plan`,
        fitted on this file before): everything but pass 2."""
        fmt = sniff(input_path)
        spool = folder / "chunks.arrow"
        try:
            layout, index = self.read(fmt, spool, plan)
        except NotUtf8:  # a late byte is not UTF-8: the whole file as Latin-1, said so
            layout, index = self.read(fmt.as_latin1(), spool, plan)
        if plan is None:
            with ThreadPoolExecutor(max_workers=self.options.threads) as pool:
                plan = self.fit(layout, spool, index, pool)
        return Prepared(plan, index, spool)

    def result(self, prepared: Prepared, tallies: Tallies, errors_path: Path | None) -> ScoreResult:
        """The errors file and the job's summary, once every block is scored."""
        plan, index = prepared.plan, prepared.index
        failed = write_errors(index, plan.layout.roles, errors_path)
        summary = summarise(plan, tallies, index.rows, failed, index.negative, index.unread_times)
        self.record_usage(plan)
        return ScoreResult(summary.stats, summary.methods_used, dict(self.time.seconds), plan)

    def record_usage(self, plan: FittedPlan) -> None:
        """Count a use of each model the plan scores with (reference models, the team's)."""
        used = [m.name for m in plan.matches] + ([plan.team.bundle.name] if plan.team else [])
        self.source.record_usage(used)

    # --- stages ------------------------------------------------------------------------------

    def read(
        self, fmt: CsvFormat, spool: Path, plan: FittedPlan | None
    ) -> tuple[Layout, FileIndex]:
        """Profile (or the plan's layout) and pass 1."""
        layout = self.profile(fmt) if plan is None else replace(plan.layout, fmt=fmt)
        self.progress("reading", 0, 0)
        return layout, self.index(layout, spool)

    def profile(self, fmt: CsvFormat, label: str | None = None, labeled: bool = False) -> Layout:
        """Roles, time format and the other usable columns, from the file's first rows. A
        labeled file's label column (`label`, or the one its name reveals) is read by the
        passes for the caller, never as an input."""
        with self.time("read"):
            first = head(fmt, self.options.sample_rows)
        if first.num_rows == 0:
            raise InputError(_no_rows(fmt.path.name))
        with self.time("features"):
            frame = to_pandas_text(first)
            roles = infer_roles(frame, label=label)
            time_format = _time_format(frame, roles)
            extra = ExtraColumns([], [], [])
            if self.options.anomaly:
                extra = extra_columns(frame, roles)
        if R.AMOUNT not in roles:
            _empty_amount(frame)
        if not (set(roles.columns) & MEASURED_ROLES or extra.numeric):
            raise InputError(
                "no amount-like column found, nor any other column of numbers or times: "
                "expected a column of transaction amounts (e.g. amount, montant, importe, "
                "TransactionAmt, txn_amt); found: " + ", ".join(fmt.columns)
            )
        id_columns = [roles.columns[r] for r in ID_ROLES if r in roles]
        out_columns = list(fmt.columns) if self.options.keep_columns else id_columns
        needed = {c for r, c in roles.columns.items() if r != R.LABEL or labeled}
        needed |= set(roles.date_parts)
        needed |= set(out_columns) | set(extra.used)
        columns = sorted(needed, key=fmt.columns.index)
        return Layout(fmt, roles, time_format, extra, columns, out_columns)

    def index(self, layout: Layout, spool: Path) -> FileIndex:
        """Pass 1: per-row arrays for the whole file, kept beside the spool. The text chunks go
        to an Arrow spool file on local disk, so pass 2 reads them back instead of parsing the
        CSV again."""
        folder = spool.with_name(spool.stem + "-index")
        builder = IndexBuilder(layout.roles, layout.time_format, layout.extra.text, folder)
        chunks = iter_chunks(layout.fmt, self.options.chunk_rows, layout.columns)
        schema = pa.schema([(c, pa.string()) for c in layout.columns])
        with pa.OSFile(str(spool), "wb") as sink, pa.ipc.new_file(sink, schema) as spooler:
            for table in self._timed(chunks):
                with self.time("read"):
                    spooler.write_batch(table.combine_chunks().to_batches()[0])
                with self.time("features"):
                    builder.add(table)
                self.progress("reading", builder.rows, 0)
        with self.time("features"):
            index = builder.finish()
        if index.rows == 0:
            raise InputError(_no_rows(layout.fmt.path.name))
        return index

    def fit(self, layout: Layout, spool: Path, index: FileIndex, pool: Executor) -> FittedPlan:
        """Sample, match and fit: the plan that scores every row."""
        self.progress("matching", 0, index.rows)
        sample = self.sample(layout, spool, index)
        with self.time("matching"):
            matched = self.match(layout, sample)
        self.progress("anomaly", 0, index.rows)
        return fit(layout, sample, matched, self.options, pool, self.time)

    def sample(self, layout: Layout, spool: Path, index: FileIndex) -> Sample:
        """A uniform random sample of the whole file's rows (read back from the spool), so that
        what is fitted on it holds for a time-ordered file's last rows as for its first."""
        n = min(self.options.sample_rows, index.rows)
        rng = np.random.default_rng(self.options.seed)
        rows = np.sort(rng.choice(index.rows, n, replace=False))
        parts, offset = [], 0
        with self.time("read"):
            for table in spooled(spool):
                lo, hi = np.searchsorted(rows, [offset, offset + table.num_rows])
                if hi > lo:
                    parts.append(table.take(pa.array(rows[lo:hi] - offset)))
                offset += table.num_rows
        table, carry = pa.concat_tables(parts), index.carry(rows)
        with self.time("features"):
            x, ax = inputs(layout, table, carry, self.options.anomaly)
        return Sample(table, rows, carry, x, ax)

    def match(self, layout: Layout, sample: Sample) -> Matched:
        """The top-k reference models that can read this file, and their bundles."""
        opts, roles = self.options, layout.roles
        scored = {r: c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}
        infos = self.source.models()
        references = [info for info in infos if not is_team(info)]
        ranked = match_models(references, scored, sample_quantiles(sample.x))
        # Every reference model learnt from amounts: without them, the file's own evidence.
        usable = [m for m in ranked if m.coverage > 0 and R.AMOUNT in roles]
        if opts.only_model:
            usable = [m for m in usable if m.name == opts.only_model]
            if not usable:
                raise InputError(
                    f"reference model {opts.only_model!r} does not exist or "
                    "cannot use this file's columns"
                )
        chosen = usable[: opts.top_k]
        team = None
        if sample.ax is not None:
            names = anomaly_names(set(sample.carry.per_row), sample.carry.t is not None, layout)
            columns = set(layout.fmt.columns)
            team = best_team(infos, set(input_names(names, roles)), columns)
        if not chosen and not (opts.anomaly and opts.blend):
            need = "" if R.AMOUNT in roles else ", all of which need an amount column"
            recognised = ", ".join(f"{c} as {r}" for r, c in scored.items())
            raise InputError(
                f"no reference model can use this file's columns{need} (recognised: {recognised})"
            )
        bundles = tuple(self.source.load(m.name) for m in chosen)
        if team is None:
            return Matched(tuple(chosen), bundles)
        return Matched(tuple(chosen), bundles, self.source.load(team[0].name), team[1])

    def score(
        self, plan: FittedPlan, spool: Path, index: FileIndex, output_path: Path, pool: Executor
    ) -> Tallies:
        """Pass 2: score the spooled chunks (two at a time, so one is featurised while the pool
        scores the other) and append each to the output in order; progress counts rows done."""
        tallies = Tallies()
        tmp = output_path.with_name(output_path.name + ".part")
        writer: _Writer = _Writer(tmp)
        try:
            with ThreadPoolExecutor(BLOCKS_IN_FLIGHT, thread_name_prefix="block") as blocks:
                pending: deque[tuple[pa.Table, Future[Scored]]] = deque()
                offset = 0
                for table in self._timed(spooled(spool)):
                    carry = index.carry(slice(offset, offset + table.num_rows))
                    pending.append(
                        (table, blocks.submit(score, plan, table, carry, pool, self.time))
                    )
                    offset += table.num_rows
                    if len(pending) == BLOCKS_IN_FLIGHT:
                        self._write(plan, *pending.popleft(), writer, tallies)
                        self.progress("scoring", writer.rows, index.rows)
                while pending:
                    self._write(plan, *pending.popleft(), writer, tallies)
                    self.progress("scoring", writer.rows, index.rows)
            self.progress("writing", offset, index.rows)
            with self.time("write"):
                writer.close(plan)
                os.replace(tmp, output_path)
        finally:
            writer.abort()
        return tallies

    # --- helpers -----------------------------------------------------------------------------

    def _timed(self, chunks: Iterator[pa.Table]) -> Iterator[pa.Table]:
        """The chunks, their reading timed, the caller's cancel checked before each."""
        while True:
            with self.time("read"):
                table = next(chunks, None)
            if table is None:
                return
            if self.cancelled():
                raise Cancelled("cancelled")
            yield table

    def _write(
        self,
        plan: FittedPlan,
        table: pa.Table,
        future: Future[Scored],
        writer: _Writer,
        tallies: Tallies,
    ) -> None:
        scored = future.result()
        with self.time("write"):
            writer.write(output_table(plan, table, scored), table.num_rows)
            keep = scored.keep
            tallies.add(scored.p[keep], scored.levels[keep], scored.flags[keep], scored.riskiest)


class _Writer:
    """The predictions CSV, written chunk by chunk to a temporary path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.writer: pacsv.CSVWriter | None = None
        self.rows = 0  # input rows done (written, or listed as errors)

    def write(self, table: pa.Table, rows: int) -> None:
        if self.writer is None:
            self.writer = pacsv.CSVWriter(str(self.path), table.schema)
        self.writer.write_table(table)
        self.rows += rows

    def close(self, plan: FittedPlan) -> None:
        """Finish the file (a header alone for a file with no rows)."""
        if self.writer is None:
            columns = {c: pa.array([], pa.string()) for c in plan.layout.out_columns}
            self.write(output_table(plan, pa.table(columns), nothing_scored(plan)), 0)
        assert self.writer is not None
        self.writer.close()
        self.writer = None

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.path.unlink(missing_ok=True)


def output_table(plan: FittedPlan, table: pa.Table, scored: Scored) -> pa.Table:
    """A block's rows of the predictions file: row number, the copied columns, the scores."""
    levels = pa.array(scored.levels.astype(np.int8), pa.int8())
    risk = pa.DictionaryArray.from_arrays(levels, pa.array(RISK_LEVELS))
    first = scored.first_row + 1
    data: dict[str, Any] = {"row_number": pa.array(np.arange(first, first + len(scored.p)))}
    for column in plan.layout.out_columns:  # the user's cells, made safe to open in a spreadsheet
        name = safe_name(column if column not in data else f"input_{column}")
        data[name] = neutralise(table[column])
    data.update(
        {
            "fraud_probability": pa.array(np.round(scored.p, PROBABILITY_DECIMALS)),
            "risk_level": risk,
            "anomaly_score": pa.array(np.round(scored.scores, 4)),
            "is_anomaly": pa.array(scored.flags.astype(np.int8)),
        }
    )
    if scored.reasons is not None:  # they quote column names, which may start with "="
        data["reasons"] = neutralise(pa.array(scored.reasons, pa.string()))
    out = pa.table(data)
    return out.filter(pa.array(scored.keep)) if not scored.keep.all() else out


def write_errors(index: FileIndex, roles: RoleMap, path: Path | None) -> int:
    """The errors file (rows not scored, and why); how many rows it lists."""
    bad, amount = index.failed()
    if path is not None:
        frame = pd.DataFrame(
            {
                "row_number": bad + 1,
                "column": safe_name(str(roles.get(R.AMOUNT))),
                "reason": np.select(
                    [np.isnan(amount), np.isinf(amount)],
                    ["missing or unreadable amount", "amount is not a finite number"],
                    f"amount beyond +-{MAX_AMOUNT:.0e}",
                ),
            }
        )
        tmp = Path(path).with_name(Path(path).name + ".part")
        pacsv.write_csv(pa.Table.from_pandas(frame, preserve_index=False), tmp)
        os.replace(tmp, path)
    return len(bad)


def nothing_scored(plan: FittedPlan) -> Scored:
    """The scores of no rows (for a file with a header alone)."""
    empty = np.array([])
    reasons = np.array([], dtype=object) if plan.options.reasons else None
    none = np.array([], bool)
    return Scored(0, empty, np.array([], np.int8), empty, none, none, reasons, [])


def _time_format(frame: pd.DataFrame, roles: RoleMap) -> TimeFormat | None:
    if roles.date_parts:
        return TimeFormat("parts", parts=roles.date_parts)
    if R.TIMESTAMP in roles:
        column = roles.columns[R.TIMESTAMP]
        return detect_format(frame[column], R.tokens_of(column))
    return None


def _empty_amount(frame: pd.DataFrame) -> None:
    """InputError when a column named like the amount is empty in every row read: scored
    without it, the file would be ranked on other columns without a word."""
    for column in frame.columns:
        if R.name_score(R.tokens_of(str(column)), R.AMOUNT) < R.MIN_SCORE:
            continue
        if frame[column].fillna("").astype(str).str.strip().eq("").all():
            raise InputError(
                f"the amount column {column!r} is empty in all of the first {len(frame)} rows: "
                "fill it in (rows without an amount are listed as errors), or rename the column "
                "if it holds something else"
            )


def _no_rows(name: str) -> str:
    return (
        f"{name} has a header but no rows: send a CSV file with a header line, then one "
        "transaction per line"
    )
