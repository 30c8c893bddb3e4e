"""Pass 1: what the whole file tells about each row (its amount and time, its card's and
terminal's earlier rows, how common its values are), exact whatever the chunking. The arrays
are kept on local disk; a block of rows is scored with its slice of them, its `Carry`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.engine import roles as R
from shared.engine.csvio import to_float
from shared.engine.features import CATEGORICAL_FEATURES, SHARE_PREFIX, entity_parts
from shared.engine.roles import RoleMap
from shared.engine.timeparse import TimeFormat, read_clock

MAX_AMOUNT = 1e15  # larger amounts are data errors: not scored, listed in the errors file
ID_SHARE_ROLES = (R.CUSTOMER, R.TERMINAL)


def share_key(column: str) -> str:
    """The per-row array of a column's (or an id role's) value shares (never a model feature)."""
    return f"{SHARE_PREFIX}{column}"


@dataclass(frozen=True, eq=False)
class Carry:
    """A block's rows of pass 1's arrays: what scoring the block needs from the rest of the
    file."""

    first_row: int  # 0-based row number of the block's first row in the file
    amount: np.ndarray
    bad: np.ndarray  # amounts not scored (missing, unreadable, absurd)
    t: np.ndarray | None  # epoch or offset seconds
    per_row: dict[str, np.ndarray]  # entity history and value shares, float32


class Columns:
    """Per-row arrays in a folder on local disk, one raw file each: what is read back is a
    block's slice (or the sample's rows), so memory does not grow with the file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.dtypes: dict[str, np.dtype] = {}
        self.rows = 0

    def put(self, name: str, values: np.ndarray) -> None:
        self.dtypes[name] = values.dtype
        self.rows = len(values)
        np.ascontiguousarray(values).tofile(self._path(name))

    def read(self, name: str, rows: slice | np.ndarray = slice(None)) -> np.ndarray:
        """Some rows of an array: a slice, or sorted row numbers."""
        dtype, path = self.dtypes[name], self._path(name)
        if isinstance(rows, slice):
            start, stop, _ = rows.indices(self.rows)
            count = max(0, stop - start)
            return np.fromfile(path, dtype, count=count, offset=start * dtype.itemsize)
        if not len(rows):
            return np.array([], dtype)
        mapped = np.memmap(path, dtype, mode="r", shape=(self.rows,))
        try:
            return np.array(mapped[rows])
        finally:
            del mapped  # unmapped: the pages read go with it

    def _path(self, name: str) -> Path:
        return self.folder / f"{list(self.dtypes).index(name):03d}.bin"


AMOUNT, BAD, TIME = "@amount", "@bad", "@t"  # the per-row arrays that are no features


@dataclass(frozen=True, eq=False)
class FileIndex:
    """Pass 1's per-row arrays for the whole file (on local disk) and its counts."""

    rows: int
    columns: Columns
    per_row: tuple[str, ...]  # entity history and value shares: the carry's named arrays
    has_time: bool
    unread_times: int = 0  # rows whose time was written but not read in the detected format
    negative: int = 0  # scored rows with a negative amount
    chunks: tuple[int, ...] = ()  # the rows of each spooled chunk, in order

    def carry(self, rows: slice | np.ndarray) -> Carry:
        """The arrays of some rows: a block (a slice) or the sample (sorted row numbers)."""
        first = (rows.start or 0) if isinstance(rows, slice) else 0
        read = self.columns.read
        return Carry(
            first,
            read(AMOUNT, rows),
            read(BAD, rows),
            read(TIME, rows) if self.has_time else None,
            {name: read(name, rows) for name in self.per_row},
        )

    def times(self) -> np.ndarray | None:
        """Every row's time (seconds), or None for a file without one."""
        return self.columns.read(TIME) if self.has_time else None

    def failed(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows not scored (0-based row numbers) and their amounts as read."""
        rows = np.flatnonzero(self.columns.read(BAD))
        return rows, self.columns.read(AMOUNT, rows)


class IndexBuilder:
    """Collects pass 1's per-row arrays chunk by chunk, then computes file-level features and
    writes every array to `folder`."""

    def __init__(
        self, roles: RoleMap, time_format: TimeFormat | None, shares_of: list[str], folder: Path
    ) -> None:
        self.roles, self.time_format, self.folder = roles, time_format, folder
        self.shares: dict[str, list[pa.DictionaryArray]] = {c: [] for c in shares_of}
        self.rows = 0
        self.unread_times = 0
        self.negative = 0
        self.chunks: list[int] = []
        self.amounts: list[np.ndarray] = []
        self.bads: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.ids: dict[str, list[pa.DictionaryArray]] = {r: [] for r in ID_SHARE_ROLES}
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
        self.negative += int(np.sum(amount[~bad] < 0))
        if self.time_format is not None:
            column = roles.columns[R.TIMESTAMP]
            times = read_clock(table, column, self.time_format)
            self.times.append(times)
            if self.time_format.kind != "parts":  # written, yet not read as a time
                written = pc.not_equal(pc.utf8_trim_whitespace(table[column]), "")
                unread = np.isnan(times) & written.to_numpy(zero_copy_only=False)
                self.unread_times += int(unread.sum())
        for role, parts in self.ids.items():
            if role in roles:
                parts.append(pc.dictionary_encode(table[roles.get(role)].combine_chunks()))
        for role, categories in self.categories.items():
            if role in roles:
                categories.append(pc.dictionary_encode(table[roles.get(role)].combine_chunks()))
        for column, shares in self.shares.items():
            shares.append(pc.dictionary_encode(table[column].combine_chunks()))
        self.rows += table.num_rows
        self.chunks.append(table.num_rows)

    def finish(self) -> FileIndex:
        """Every per-row array written to the folder, each dropped from memory once written
        (the value shares first: their inputs go before the entity history needs room)."""
        out, rows = Columns(self.folder), self.rows
        out.put(BAD, _joined(self.bads, bool))
        names = []
        for role, name in CATEGORICAL_FEATURES.items():
            if self.categories[role]:
                out.put(name, _shares(self.categories.pop(role), rows))
                names.append(name)
        for column in list(self.shares):
            out.put(share_key(column), _shares(self.shares.pop(column), rows))
            names.append(share_key(column))
        codes = {role: _codes(self.ids.pop(role)) for role in ID_SHARE_ROLES if self.ids[role]}
        pa.default_memory_pool().release_unused()  # the text chunks' encodings, gone now
        for role, role_codes in codes.items():  # how much of the file each card, terminal is
            shares = np.bincount(role_codes)[role_codes] / rows
            out.put(share_key(role), shares.astype(np.float32))
            names.append(share_key(role))
        amount = _joined(self.amounts, np.float64)
        t = _joined(self.times, np.float64) if self.time_format is not None else None
        history = entity_parts(codes.get(R.CUSTOMER), codes.get(R.TERMINAL), t, amount)
        for name, values in _in_file_order(history, rows, self.folder / "history"):
            out.put(name, values)
            names.append(name)
        out.put(AMOUNT, amount)
        if t is not None:
            out.put(TIME, t)
        counts = (self.unread_times, self.negative, tuple(self.chunks))
        return FileIndex(rows, out, tuple(names), t is not None, *counts)


def spooled(path: Path) -> Iterator[pa.Table]:
    """The chunks pass 1 spooled, in order (read, not mapped: memory holds one at a time)."""
    with pa.OSFile(str(path)) as source:
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


def _codes(parts: list[pa.DictionaryArray]) -> np.ndarray:
    """Integer codes for an id column over the whole file (equal ids, equal codes, in order of
    first appearance), from each chunk's own encoding: the file's ids are never held whole."""
    unified = pa.chunked_array(parts).unify_dictionaries()
    parts.clear()
    return np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False).astype(np.int32) for chunk in unified.chunks]
    )


def _in_file_order(
    parts: Iterable[tuple[str, np.ndarray, dict[str, np.ndarray]]], rows: int, folder: Path
) -> Iterator[tuple[str, np.ndarray]]:
    """Entity partitions' features (kind, row numbers, values) appended to files as they come,
    then read back one whole feature at a time, in file order."""
    folder.mkdir(exist_ok=True)
    files: dict[str, BinaryIO] = {}
    kinds: dict[str, str] = {}  # feature -> its entity kind (whose file holds the row numbers)
    try:
        for kind, idx, features in parts:
            for name, values in [(kind, idx), *features.items()]:
                if name not in files:
                    files[name] = (folder / f"{len(files):03d}.bin").open("wb")
                values.tofile(files[name])
            kinds.update(dict.fromkeys(features, kind))
    finally:
        for file in files.values():
            file.close()
    rows_of: dict[str, np.ndarray] = {}
    for name, kind in kinds.items():
        if kind not in rows_of:
            rows_of = {kind: np.fromfile(files[kind].name, np.int64)}  # one kind's at a time
        whole = np.empty(rows, np.float32)
        whole[rows_of[kind]] = np.fromfile(files[name].name, np.float32)
        Path(files[name].name).unlink()
        yield name, whole
    for file in files.values():
        Path(file.name).unlink(missing_ok=True)  # the row numbers


def _joined(chunks: list[np.ndarray], dtype: type) -> np.ndarray:
    """The chunks' arrays as one, the list emptied (so the pieces go as the whole comes)."""
    whole = np.concatenate(chunks) if chunks else np.array([], dtype)
    chunks.clear()
    return whole
