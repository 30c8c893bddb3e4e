"""CSV input as clients send it: .csv or .csv.gz, comma/semicolon/tab, UTF-8 (BOM) or Latin-1.

Files are streamed in chunks through pyarrow, every column as text; callers convert the
columns they need, so one odd value never aborts a whole file.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from shared.errors import InputError

SNIFF_BYTES = 256 * 1024
DELIMITERS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class CsvFormat:
    path: Path
    gzip: bool
    encoding: str
    delimiter: str
    columns: tuple[str, ...]
    # Read as Latin-1 although its first 256 KiB were UTF-8: a later byte was not.
    fallback: bool = False

    def as_latin1(self) -> CsvFormat:
        """The same file read as Latin-1 (which decodes every byte)."""
        return replace(self, encoding="latin-1", fallback=True)


class NotUtf8(InputError):
    """A byte past the sniffed prefix is not UTF-8 (the caller may read it as Latin-1)."""


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _open_bytes(path: Path, compressed: bool) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if compressed else path.open("rb")


def sniff(path: Path) -> CsvFormat:
    """Compression, encoding, delimiter and header of a CSV file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
    try:
        with _open_bytes(path, compressed) as handle:
            head = handle.read(SNIFF_BYTES)
    except (OSError, EOFError) as exc:
        raise InputError(f"cannot read {path.name}: {exc}") from None
    if not head.strip():
        raise InputError(f"{path.name} is empty")
    if head.startswith(UTF16_BOMS):  # Excel's "Unicode text": UTF-16, tab-separated
        text, encoding = _decode_utf16(head, path.name), "utf-16"
    elif b"\x00" in head:
        raise InputError(
            f"{path.name} is not a text CSV file (binary content; a spreadsheet's own format? "
            "save it as CSV)"
        )
    else:
        try:
            text = head.decode("utf-8-sig") if len(head) < SNIFF_BYTES else _decode_prefix(head)
            encoding = "utf8"
        except UnicodeDecodeError:
            text, encoding = head.decode("latin-1"), "latin-1"
    lines = text.splitlines()
    if len(head) >= SNIFF_BYTES and len(lines) < 2:
        raise InputError(
            f"{path.name}: the header line is longer than {SNIFF_BYTES // 1024} KiB; "
            "send a CSV file whose first line names the columns"
        )
    header_line = lines[0]
    delimiter = max(DELIMITERS, key=lambda d: (header_line.count(d), -DELIMITERS.index(d)))
    if header_line.count(delimiter) == 0 and len(lines) > 1:
        delimiter = ","
    try:
        header = next(csv.reader([header_line], delimiter=delimiter))
    except csv.Error as exc:
        raise InputError(f"{path.name}: unreadable header line ({exc})") from None
    columns = tuple(name.strip() or f"column_{i + 1}" for i, name in enumerate(header))
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        raise InputError(
            f"{path.name}: the header names {', '.join(repr(c) for c in twice[:5])} more than "
            "once (an empty name counts as column_N, its place); give each column its own name"
        )
    return CsvFormat(path, compressed, encoding, delimiter, columns)


def _decode_utf16(head: bytes, name: str) -> str:
    """The sniffed prefix of a UTF-16 file (it may end inside a character)."""
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-16")
        except UnicodeDecodeError:
            continue
    raise InputError(f"{name}: starts like UTF-16 text but does not decode as it")


def _decode_prefix(head: bytes) -> str:
    # The sniffed prefix may end inside a multi-byte character; drop at most 3 trailing bytes.
    for cut in range(4):
        try:
            return head[: len(head) - cut].decode("utf-8-sig")
        except UnicodeDecodeError:
            if cut == 3:
                raise
    raise AssertionError("unreachable")


def iter_tables(
    fmt: CsvFormat, columns: list[str] | None = None, block_bytes: int = 8 << 20
) -> Iterator[pa.Table]:
    """The file as text tables of about block_bytes of input each, in row order."""
    wanted = list(columns) if columns is not None else list(fmt.columns)
    last = fmt.columns[-1]  # read always: where an unclosed quote swallows rows without error
    source = pa.OSFile(str(fmt.path))
    stream = pa.CompressedInputStream(source, "gzip") if fmt.gzip else source
    read = pacsv.ReadOptions(
        block_size=block_bytes,
        encoding=fmt.encoding,
        column_names=list(fmt.columns),
        skip_rows=1,
    )
    parse = pacsv.ParseOptions(
        delimiter=fmt.delimiter, newlines_in_values=True, invalid_row_handler=_blank_lines
    )
    convert = pacsv.ConvertOptions(
        column_types={c: pa.string() for c in fmt.columns},
        include_columns=wanted + ([last] if last not in wanted else []),
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        reader = pacsv.open_csv(
            stream, read_options=read, parse_options=parse, convert_options=convert
        )
        rows, pending = 0, None
        for batch in reader:  # one table behind: the file's last row is checked before it goes
            if batch.num_rows:
                if pending is not None:
                    rows += pending.num_rows
                    yield pending if last in wanted else pending.drop_columns([last])
                pending = pa.Table.from_batches([batch])
        if pending is not None:
            _check_quotes(fmt, pending[last], rows + pending.num_rows)
            yield pending if last in wanted else pending.drop_columns([last])
    except pa.ArrowInvalid as exc:
        if "invalid UTF8" in str(exc) and fmt.encoding == "utf8":
            raise NotUtf8(f"{fmt.path.name}: not UTF-8 throughout") from None
        raise InputError(f"{fmt.path.name}: malformed CSV ({_short(exc)})") from None
    finally:
        stream.close()


def _blank_lines(row: pacsv.InvalidRow) -> str:
    """Lines of spaces are no rows (as empty lines are not); any other short row is an error."""
    return "skip" if not (row.text or "").strip() else "error"


def _check_quotes(fmt: CsvFormat, last: pa.ChunkedArray, rows: int) -> None:
    """Refuse the file where a quote opened in its last column is never closed: the parser
    reads the rest of the file into that one value (with all its columns, the row is valid),
    so the rows after it would be lost without a word. Seen as the file's last value holding
    lines with a whole row's worth of delimiters; a quoted value with line breaks (and commas)
    anywhere else is fine."""
    if len(fmt.columns) < 2 or not len(last):
        return
    lines = str(last[len(last) - 1].as_py()).splitlines()[1:]
    if any(line.count(fmt.delimiter) >= len(fmt.columns) - 1 for line in lines):
        raise InputError(
            f"{fmt.path.name}: a quote opened in column {fmt.columns[-1]!r} of row {rows} is "
            f"never closed, so the {len(lines)} lines after it would be read as one value; close "
            "or remove the quote and upload again"
        )


def iter_chunks(fmt: CsvFormat, rows: int, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Text tables of exactly `rows` rows (the last may be shorter), whatever the blocks were."""
    pending: list[pa.Table] = []
    count = 0
    for table in iter_tables(fmt, columns):
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, rows)
            rest = merged.slice(rows)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_tables(pending)


def head(fmt: CsvFormat, rows: int, columns: list[str] | None = None) -> pa.Table:
    """The first `rows` rows as text."""
    for table in iter_chunks(fmt, rows, columns):
        return table
    return pa.table({c: pa.array([], pa.string()) for c in (columns or fmt.columns)})


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0]
    if "straddling" in text:  # pyarrow's words for a line or field longer than a block
        return "a line or quoted field is longer than 8 MiB, or a quote is never closed"
    return text[:200]


FORMULA_START = r"^[=+\-@\t\r]"
NUMBER = r"^\s*[+-]?(\d+[.,]?\d*|[.,]\d+)([eE][+-]?\d+)?\s*$"


def neutralise(column: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Text cells a spreadsheet would run as a formula (a leading =, +, -, @, tab or CR; OWASP
    CSV injection) get a leading apostrophe; numbers such as -5 are left alone."""
    if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
        return column
    risky = pc.fill_null(pc.match_substring_regex(column, FORMULA_START), False)
    if not pc.any(risky).as_py():
        return column
    number = pc.fill_null(pc.match_substring_regex(column, NUMBER), False)
    quoted = pc.binary_join_element_wise("'", column, "")
    return pc.if_else(pc.and_(risky, pc.invert(number)), quoted, column)


def safe_name(name: str) -> str:
    """A column name as written into an output header (neutralised like the cells)."""
    return str(neutralise(pa.array([name]))[0])


def read_frame(path: Path) -> pd.DataFrame:
    """A whole CSV with pandas' typed columns (training files), in the format `sniff` finds."""
    fmt = sniff(path)
    compression = "gzip" if fmt.gzip else None
    for encoding in dict.fromkeys(
        ("utf-8-sig" if fmt.encoding == "utf8" else "latin-1", "latin-1")
    ):
        try:
            return pd.read_csv(
                fmt.path,
                sep=fmt.delimiter,
                encoding=encoding,
                compression=compression,
                low_memory=False,
            )
        except UnicodeDecodeError:
            continue
        except pd.errors.ParserError as exc:
            raise InputError(f"{fmt.path.name}: malformed CSV ({_short(exc)})") from None
    raise InputError(f"{fmt.path.name}: cannot decode as UTF-8 or Latin-1")


# --- typed columns from text -------------------------------------------------------------------

_DECIMAL_COMMA = r"^(-?\d+),(\d+)$"


def to_float(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(values, bad): floats from text, dot or comma decimals; bad = non-empty but unreadable."""
    text = pc.utf8_trim_whitespace(column)
    empty = pc.equal(text, "")
    for mend in (False, True):  # decimal commas mended only where a plain read fails
        if mend:
            text = pc.replace_substring_regex(text, _DECIMAL_COMMA, r"\1.\2")
        try:
            values = pc.cast(pc.if_else(empty, None, text), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        out = values.to_numpy(zero_copy_only=False).astype(np.float64)
        return out, np.zeros(len(out), bool)
    series = pd.Series(text.to_pylist(), dtype="string")
    from shared.engine.roles import to_number

    out = to_number(series).to_numpy(np.float64)
    blank = np.asarray(empty.to_numpy(zero_copy_only=False), bool)
    return out, np.isnan(out) & ~blank


def to_pandas_text(table: pa.Table) -> pd.DataFrame:
    """A text table as a DataFrame of Python strings (for role inference and profiling)."""
    return table.to_pandas(types_mapper={pa.string(): pd.StringDtype()}.get)
