"""Pass 1: what the whole file tells about each row (its amount and time, its card's and
terminal's earlier rows, how common its values are), exact whatever the chunking. A block of
rows is scored with its slice of these arrays, its `Carry`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.engine import roles as R
from shared.engine.csvio import to_float
from shared.engine.features import CATEGORICAL_FEATURES, SHARE_PREFIX, entity_features
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


@dataclass(frozen=True, eq=False)
class FileIndex:
    """Pass 1's per-row arrays for the whole file."""

    rows: int
    amount: np.ndarray
    bad_amount: np.ndarray
    t: np.ndarray | None
    per_row: dict[str, np.ndarray]
    unread_times: int = 0  # rows whose time was written but not read in the detected format

    def carry(self, rows: slice | np.ndarray) -> Carry:
        """The arrays of some rows: a block (a slice) or the sample (sorted row numbers)."""
        first = (rows.start or 0) if isinstance(rows, slice) else 0
        return Carry(
            first,
            self.amount[rows],
            self.bad_amount[rows],
            self.t[rows] if self.t is not None else None,
            {name: values[rows] for name, values in self.per_row.items()},
        )


class IndexBuilder:
    """Collects pass 1's per-row arrays chunk by chunk, then computes file-level features."""

    def __init__(
        self, roles: RoleMap, time_format: TimeFormat | None, shares_of: list[str]
    ) -> None:
        self.roles, self.time_format = roles, time_format
        self.shares: dict[str, list[pa.DictionaryArray]] = {c: [] for c in shares_of}
        self.rows = 0
        self.unread_times = 0
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

    def finish(self) -> FileIndex:
        amount = np.concatenate(self.amounts) if self.amounts else np.array([])
        t = np.concatenate(self.times) if self.times else None
        codes = {role: _codes(parts) for role, parts in self.ids.items() if parts}
        entity = entity_features(codes.get(R.CUSTOMER), codes.get(R.TERMINAL), t, amount)
        per_row = dict(entity)
        for role, role_codes in codes.items():  # how much of the file each card, terminal is
            shares = np.bincount(role_codes)[role_codes] / self.rows
            per_row[share_key(role)] = shares.astype(np.float32)
        for role, categories in self.categories.items():
            if categories:
                per_row[CATEGORICAL_FEATURES[role]] = _shares(categories, self.rows)
        for column, parts in self.shares.items():
            per_row[share_key(column)] = _shares(parts, self.rows)
        bad = np.concatenate(self.bads) if self.bads else np.array([], bool)
        return FileIndex(self.rows, amount, bad, t, per_row, self.unread_times)


def spooled(path: Path) -> Iterator[pa.Table]:
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


def _codes(parts: list[pa.DictionaryArray]) -> np.ndarray:
    """Integer codes for an id column over the whole file (equal ids, equal codes, in order of
    first appearance), from each chunk's own encoding: the file's ids are never held whole."""
    unified = pa.chunked_array(parts).unify_dictionaries()
    return np.concatenate(
        [chunk.indices.to_numpy(zero_copy_only=False).astype(np.int64) for chunk in unified.chunks]
    )
