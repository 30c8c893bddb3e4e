"""A team's confirmed outcomes for a scored job: read, checked against the job's rows, and
stored as `row_number,label`; the labeled rows of a schema pooled into a training file."""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.engine import roles as R
from shared.engine.csvio import iter_chunks, sniff
from shared.errors import InputError
from shared.training.automl import FALSE_WORDS, TRUE_WORDS

ROW_NUMBER = "row_number"
TRAIN_LABEL = "fraudscore_label"  # the label column of a pooled training file
MAX_LISTED = 20  # problems named in a message; the errors file lists them all


def schema_of(columns: Iterable[str]) -> str:
    """A file's schema fingerprint: the hash of its column names, in order."""
    return hashlib.sha256("\n".join(columns).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Labels:
    """A labels file as sent: its key column (`row_number` or the job's id column), the keys
    and the 0/1 labels."""

    key: str
    keys: list[str]
    labels: np.ndarray

    @property
    def positives(self) -> int:
        return int(self.labels.sum())


@dataclass
class Rejected(Exception):
    """Labels whose keys are not rows of the job: the message, and the errors file's lines."""

    message: str
    lines: list[tuple[str, str]]

    def errors_csv(self) -> bytes:
        out = io.StringIO()
        out.write("key,reason\n")
        for key, reason in self.lines:
            out.write(f'"{key.replace(chr(34), chr(34) * 2)}",{reason}\n')
        return out.getvalue().encode()


def read_labels(data: bytes, id_column: str | None) -> Labels:
    """The labels file's keys and 0/1 labels; InputError naming what is wrong."""
    text = data.decode("utf-8-sig", errors="replace")
    header = next(csv.reader(io.StringIO(text.split("\n", 1)[0])), [])
    as_text = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
    try:  # every value as written: ids like 0042 stay 0042
        table = pacsv.read_csv(io.BytesIO(text.encode()), convert_options=as_text)
    except pa.ArrowInvalid as exc:
        raise InputError(f"the labels file is not a readable CSV file ({exc})") from None
    columns = list(table.column_names)
    key = ROW_NUMBER if ROW_NUMBER in columns else id_column if id_column in columns else None
    if key is None:
        id_hint = f" or the job's id column `{id_column}`" if id_column else ""
        raise InputError(
            f"the labels file needs a `{ROW_NUMBER}` column (from the predictions file){id_hint}, "
            f"and a label column; found: {', '.join(columns)}"
        )
    label = _label_column([c for c in columns if c != key])
    keys = [str(v).strip() for v in table[key].to_pylist()]
    labels = _binary(table[label].to_pylist(), label)
    if len(keys) == 0:
        raise InputError("the labels file has a header but no rows")
    _no_duplicates(keys, key)
    return Labels(key, keys, labels)


def _label_column(others: list[str]) -> str:
    if len(others) == 1:
        return others[0]
    named = [c for c in others if R.name_score(R.tokens_of(c), R.LABEL) >= 1.5]
    if len(named) == 1:
        return named[0]
    raise InputError(
        "cannot tell which column holds the labels: send two columns, the row's key and its "
        f"label (found besides the key: {', '.join(others) or 'none'})"
    )


def _binary(values: list[object], column: str) -> np.ndarray:
    words = [str(v).strip().lower() for v in values]
    out = np.array([w in TRUE_WORDS or w == "1.0" for w in words], np.int8)
    bad = [
        (i + 2, w)
        for i, w in enumerate(words)
        if w not in TRUE_WORDS | FALSE_WORDS | {"1.0", "0.0"}
    ]
    if bad:
        shown = ", ".join(f"line {line}: {w!r}" for line, w in bad[:MAX_LISTED])
        raise InputError(
            f"{len(bad)} values of `{column}` are not labels ({shown}); use 1/0, yes/no, "
            "true/false or fraud/legit"
        )
    return out


def _no_duplicates(keys: list[str], column: str) -> None:
    seen: set[str] = set()
    twice = [k for k in keys if k in seen or seen.add(k)]  # type: ignore[func-returns-value]
    if twice:
        shown = ", ".join(repr(k) for k in sorted(set(twice))[:MAX_LISTED])
        raise InputError(
            f"{len(set(twice))} values of `{column}` appear more than once ({shown}); "
            "send one label per row"
        )


def resolve(labels: Labels, predictions: Iterator[pa.Table], rows_total: int) -> np.ndarray:
    """The 1-based row numbers of the labeled rows, from the job's predictions file (its
    `row_number` and id column); Rejected listing the keys that are none of the job's rows."""
    if labels.key == ROW_NUMBER:
        numbers = np.array([_whole(k) for k in labels.keys], np.int64)
        unknown = [k for k, n in zip(labels.keys, numbers, strict=True) if not 1 <= n <= rows_total]
    else:
        wanted = {k: i for i, k in enumerate(labels.keys)}
        numbers = np.zeros(len(labels.keys), np.int64)
        for table in predictions:
            ids = table[labels.key].to_pylist()
            for number, value in zip(table[ROW_NUMBER].to_pylist(), ids, strict=True):
                at = wanted.get(str(value).strip())
                if at is not None:
                    numbers[at] = int(number)
        unknown = [k for k, n in zip(labels.keys, numbers, strict=True) if n == 0]
    if unknown:
        what = "row numbers" if labels.key == ROW_NUMBER else f"values of `{labels.key}`"
        shown = ", ".join(repr(k) for k in unknown[:MAX_LISTED])
        raise Rejected(
            f"{len(unknown)} {what} are not rows of this job ({shown}); nothing was stored",
            [(k, "not a row of this job") for k in unknown],
        )
    return numbers


def _whole(text: str) -> int:
    try:
        return int(float(text))
    except ValueError:
        return -1


def label_set_csv(numbers: np.ndarray, labels: np.ndarray) -> bytes:
    """The stored form of a label set: `row_number,label`, by row number."""
    order = np.argsort(numbers, kind="stable")
    lines = [f"{ROW_NUMBER},label"]
    lines += [f"{n},{y}" for n, y in zip(numbers[order], labels[order], strict=True)]
    return ("\n".join(lines) + "\n").encode()


def read_label_set(data: bytes) -> dict[int, int]:
    """A stored label set: row number -> label."""
    table = pacsv.read_csv(io.BytesIO(data))
    numbers, labels = table[ROW_NUMBER].to_pylist(), table["label"].to_pylist()
    return {int(n): int(y) for n, y in zip(numbers, labels, strict=True)}


class TrainingFile:
    """The pooled training file: the labeled rows of each job's input, with TRAIN_LABEL."""

    def __init__(self, target: Path) -> None:
        self.target, self.rows, self.positives = target, 0, 0
        self._writer: pacsv.CSVWriter | None = None
        self._columns: list[str] | None = None

    def add(self, source: Path, labels: dict[int, int]) -> None:
        """Append the rows of `source` (a job's input) that `labels` names."""
        fmt = sniff(source)
        if self._columns is not None and list(fmt.columns) != self._columns:
            return  # another schema (cannot happen for sets pooled by schema)
        self._columns = list(fmt.columns)
        offset = 0
        for table in iter_chunks(fmt, 100_000):
            numbers = np.arange(offset + 1, offset + table.num_rows + 1)
            offset += table.num_rows
            keep = np.array([n in labels for n in numbers.tolist()], bool)
            if not keep.any():
                continue
            chosen = table.filter(pa.array(keep))
            values = [str(labels[n]) for n in numbers[keep].tolist()]
            chosen = chosen.append_column(TRAIN_LABEL, pa.array(values, pa.string()))
            self._write(chosen)
            self.positives += sum(v == "1" for v in values)

    def _write(self, table: pa.Table) -> None:
        if self._writer is None:
            options = pacsv.WriteOptions(quoting_style="needed")
            self._writer = pacsv.CSVWriter(str(self.target), table.schema, write_options=options)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
