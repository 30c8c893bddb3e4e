"""A large file cut into parts for many workers. A part is a run of the file's rows and their
carry (pass 1's arrays for those rows) in one Arrow IPC file, so any worker holding the fitted
plan scores it exactly as one worker scoring the whole file would: the same blocks, the same
entity history. Its predictions are written without a header; the header, then every part in
file order, is the predictions file."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.engine.fileindex import Carry, FileIndex, spooled
from shared.engine.pipeline import Cancelled, nothing_scored, output_table
from shared.engine.plan import FittedPlan
from shared.engine.scoring import score
from shared.engine.summary import Tallies
from shared.engine.timing import Timer

# The carry's columns follow the text columns: amount, bad, time (where the file has one),
# then the per-row arrays under their own names.
FIRST_ROW, TEXT_COLUMNS = b"first_row", b"text_columns"
PER_ROW = "per_row:"


def cut(chunks: Sequence[int], part_rows: int) -> list[int]:
    """The rows of each part: whole chunks (so the blocks scored are the same as in one piece),
    a new part begun once the last holds at least `part_rows`."""
    parts: list[int] = []
    for rows in chunks:
        if not parts or parts[-1] >= part_rows:
            parts.append(0)
        parts[-1] += rows
    return parts


def write_parts(
    spool: Path, index: FileIndex, folder: Path, part_rows: Sequence[int]
) -> Iterator[Path]:
    """Each part's file, written from the spooled chunks (`part_rows` from `cut`) and given
    out as soon as it is complete."""
    chunks = spooled(spool)
    offset = 0
    for part, rows in enumerate(part_rows):
        path = folder / f"part-{part:05d}.arrow"
        meta = {FIRST_ROW: str(offset), TEXT_COLUMNS: ""}
        writer: pa.ipc.RecordBatchFileWriter | None = None
        try:
            end = offset + rows
            while offset < end:
                table = next(chunks)
                batch = _with_carry(table, index.carry(slice(offset, offset + table.num_rows)))
                if writer is None:
                    meta[TEXT_COLUMNS] = str(table.num_columns)
                    writer = pa.ipc.new_file(str(path), batch.schema.with_metadata(meta))
                writer.write_table(batch)
                offset += table.num_rows
        finally:
            if writer is not None:
                writer.close()
        yield path


def read_part(path: Path) -> Iterator[tuple[pa.Table, Carry]]:
    """A part's blocks: the rows' text columns and their carry."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source)
        meta = reader.schema.metadata
        first, width = int(meta[FIRST_ROW]), int(meta[TEXT_COLUMNS])
        for i in range(reader.num_record_batches):
            table = pa.Table.from_batches([reader.get_batch(i)])
            yield table.select(range(width)), _carry(table, width, first)
            first += table.num_rows


def score_part(
    plan: FittedPlan,
    path: Path,
    output_path: Path,
    pool: Executor,
    cancelled: Callable[[], bool] = lambda: False,
    timer: Timer | None = None,
) -> Tallies:
    """Score a part's blocks into a headerless CSV; its tallies."""
    tallies = Tallies()
    options = pacsv.WriteOptions(include_header=False)
    writer: pacsv.CSVWriter | None = None
    try:
        for table, carry in read_part(path):
            if cancelled():
                raise Cancelled("cancelled")
            scored = score(plan, table, carry, pool, timer)
            out = output_table(plan, table, scored)
            if writer is None:
                writer = pacsv.CSVWriter(str(output_path), out.schema, write_options=options)
            writer.write_table(out)
            keep = scored.keep
            tallies.add(scored.p[keep], scored.levels[keep], scored.flags[keep], scored.riskiest)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:  # every row of the part was an error: nothing to write
        output_path.write_bytes(b"")
    return tallies


def header(plan: FittedPlan) -> bytes:
    """The predictions file's header line (all of a file with no scored rows)."""
    columns = {c: pa.array([], pa.string()) for c in plan.layout.out_columns}
    empty = output_table(plan, pa.table(columns), nothing_scored(plan))
    buffer = io.BytesIO()
    pacsv.write_csv(empty, buffer)
    return buffer.getvalue()


def _with_carry(table: pa.Table, carry: Carry) -> pa.Table:
    columns = dict(zip(table.column_names, table.columns, strict=True))
    data: list[tuple[str, pa.Array | pa.ChunkedArray]] = list(columns.items())
    data += [("amount", pa.array(carry.amount)), ("bad", pa.array(carry.bad))]
    if carry.t is not None:
        data.append(("t", pa.array(carry.t)))
    data += [(f"{PER_ROW}{name}", pa.array(values)) for name, values in carry.per_row.items()]
    return pa.Table.from_arrays([c for _, c in data], names=[n for n, _ in data])


def _carry(table: pa.Table, width: int, first: int) -> Carry:
    names = table.column_names[width:]

    def values(name: str) -> np.ndarray:
        return table[width + names.index(name)].to_numpy()

    return Carry(
        first,
        values("amount"),
        values("bad"),
        values("t") if "t" in names else None,
        {n[len(PER_ROW) :]: values(n) for n in names if n.startswith(PER_ROW)},
    )
