"""The CSV reader on the files clients really send, and on odd ones (hypothesis)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared.engine.csvio import head, iter_chunks, sniff, to_float
from shared.errors import InputError


def write(path: Path, text: str, encoding: str = "utf-8", gz: bool = False) -> Path:
    data = text.encode(encoding)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize(
    ("text", "encoding", "gz", "delimiter"),
    [
        ("a,b\n1,x\n", "utf-8", False, ","),
        ("a;b\n1,5;x\n", "utf-8", False, ";"),
        ("a\tb\n1\tx\n", "utf-8", False, "\t"),
        ("\ufeffa;b\n1;x\n", "utf-8", True, ";"),
        ("montant;libellé\n12,50;café\n", "latin-1", False, ";"),
    ],
)
def test_sniff_finds_compression_encoding_and_delimiter(
    tmp_path: Path, text: str, encoding: str, gz: bool, delimiter: str
) -> None:
    fmt = sniff(write(tmp_path / "f.csv", text, encoding, gz))
    assert (fmt.gzip, fmt.delimiter) == (gz, delimiter)
    assert fmt.encoding == ("latin-1" if encoding == "latin-1" else "utf8")
    assert fmt.columns[0] == ("montant" if encoding == "latin-1" else "a")
    table = head(fmt, 10)
    assert table.num_rows == 1 and table.column_names == list(fmt.columns)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"\x00\x01\x02binary", "not a text CSV"),
        (b"a,a\n1,2\n", "names 'a' more than once"),
    ],
)
def test_unreadable_files_are_clear_errors(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        sniff(path)


def test_a_ragged_row_is_a_clear_error(tmp_path: Path) -> None:
    fmt = sniff(write(tmp_path / "r.csv", "a,b\n1,2\n3,4,5\n"))
    with pytest.raises(InputError, match="malformed CSV"):
        list(iter_chunks(fmt, 10))


def test_an_unclosed_quote_in_the_last_column_is_a_clear_error(tmp_path: Path) -> None:
    rows = [f"{i},c{i},shop" for i in range(1, 30)]
    rows[9] = 'x10,c10,"shop'  # row 10: the rest of the file would become one value
    fmt = sniff(write(tmp_path / "q.csv", "amount,card,shop\n" + "\n".join(rows) + "\n"))
    with pytest.raises(InputError, match="column 'shop' of row 10 is never closed"):
        list(iter_chunks(fmt, 100, ["amount"]))
    # A quoted value with a line break in it is fine.
    fmt = sniff(write(tmp_path / "ok.csv", 'amount,card,note\n1,c1,"two\nlines"\n2,c2,x\n'))
    table = next(iter_chunks(fmt, 100, ["amount"]))
    assert table.column_names == ["amount"] and table.num_rows == 2


def test_chunks_have_exactly_the_asked_rows(tmp_path: Path) -> None:
    text = "a,b\n" + "".join(f"{i},{i * 2}\n" for i in range(1003))
    fmt = sniff(write(tmp_path / "c.csv", text))
    sizes = [t.num_rows for t in iter_chunks(fmt, 250)]
    assert sizes == [250, 250, 250, 250, 3]
    assert [t.num_rows for t in iter_chunks(fmt, 5000, ["b"])] == [1003]


def test_numbers_read_with_dot_or_comma_decimals_and_flag_bad_values() -> None:
    values, bad = to_float(pa.chunked_array([["12.5", " 7 ", "3,25", "", "abc", "-1e3"]]))
    assert values[:3].tolist() == [12.5, 7.0, 3.25] and values[5] == -1000.0
    assert np.isnan(values[3]) and np.isnan(values[4])
    assert bad.tolist() == [False, False, False, False, True, False]


@pytest.mark.parametrize(
    ("cells", "expected"),
    [
        (["12.5", " 7 ", "", "-1e3"], [12.5, 7.0, np.nan, -1000.0]),  # read as they are
        (["12,5", " -7,25 ", "", "3"], [12.5, -7.25, np.nan, 3.0]),  # commas mended
        (["1,5", "1.5", "1,5,5"], [1.5, 1.5, np.nan]),  # the rest read one by one
    ],
)
def test_numbers_read_the_same_whichever_way_the_column_needs(
    cells: list[str], expected: list[float]
) -> None:
    values, bad = to_float(pa.chunked_array([cells]))
    np.testing.assert_array_equal(values, expected)
    unreadable = [c.strip() != "" and np.isnan(e) for c, e in zip(cells, expected, strict=True)]
    assert bad.tolist() == unreadable


names = st.lists(
    st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), min_size=1, max_size=5, unique=True
)
cells = st.text(
    alphabet=st.characters(min_codepoint=32, max_codepoint=255) | st.just("\n"), max_size=12
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    columns=names,
    data=st.data(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "latin-1"]),
    gz=st.booleans(),
)
def test_any_table_written_by_a_csv_writer_reads_back_unchanged(
    tmp_path: Path,
    columns: list[str],
    data: st.DataObject,
    delimiter: str,
    encoding: str,
    gz: bool,
) -> None:
    rows = data.draw(
        st.lists(
            st.lists(cells, min_size=len(columns), max_size=len(columns)), min_size=1, max_size=20
        )
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(columns)
    writer.writerows(rows)
    text = buffer.getvalue()
    if encoding == "latin-1":
        # Latin-1 bytes that also decode as UTF-8 ("Ã©") are read as UTF-8, the common case;
        # the property is about files that are Latin-1 only (see the test below).
        assume(not _valid_utf8(text.encode("latin-1")) or text.isascii())
    path = write(tmp_path / "h.csv", text, encoding, gz)
    fmt = sniff(path)
    assert list(fmt.columns) == columns
    got = pa.concat_tables(list(iter_chunks(fmt, 7))).to_pylist()
    assert [[row[c] for c in columns] for row in got] == rows


def _valid_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_bytes_valid_in_utf8_and_latin1_are_read_as_utf8(tmp_path: Path) -> None:
    path = tmp_path / "ambiguous.csv"
    path.write_bytes("name\ncaf\u00e9\n".encode())  # UTF-8 "café" is also Latin-1 "cafÃ©"
    fmt = sniff(path)
    assert fmt.encoding == "utf8"
    assert head(fmt, 5).to_pylist() == [{"name": "café"}]


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), st.booleans())
def test_formatted_numbers_parse_back(value: float, comma: bool) -> None:
    text = f"{value:.2f}"
    if comma:
        text = text.replace(".", ",")
    parsed, bad = to_float(pa.chunked_array([[text]]))
    assert not bad[0] and parsed[0] == pytest.approx(round(value, 2), abs=0.006)
