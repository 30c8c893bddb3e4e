"""A file cut into parts and scored part by part (as many workers do) gives the predictions
and the summary of the file scored in one piece, whatever the number of parts and the chunk
size."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from shared.engine.fileindex import Columns
from shared.engine.options import ScoreOptions
from shared.engine.parts import cut, header, read_part, score_part, write_parts
from shared.engine.pipeline import Pipeline
from shared.engine.summary import Tallies, summarise
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.training.simulator import example_spec, simulate, with_rows

ROWS = 2000


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cards and terminals with history across the whole file, a column no model reads and a
    row whose amount is unreadable (an errors-file row inside a part)."""
    frame = simulate(with_rows(example_spec(), ROWS), labeled=False)
    frame["V1"] = np.random.default_rng(0).normal(size=len(frame)).round(4)
    frame["importe_eur"] = frame["importe_eur"].astype(str)
    frame.loc[1234, "importe_eur"] = "n/a"
    path = tmp_path_factory.mktemp("parts") / "upload.csv"
    write_csv(frame, path)
    return path


def in_parts(
    pipeline: Pipeline, upload: Path, folder: Path, part_rows: int
) -> tuple[bytes, dict[str, object], int]:
    """The predictions and stats of the file scored part by part, in the parts' order; how
    many parts."""
    prepared = pipeline.prepare(upload, folder)
    sizes = cut(prepared.index.chunks, part_rows)
    assert sum(sizes) == prepared.index.rows
    parts = write_parts(prepared.spool, prepared.index, folder, sizes)
    out, tallies = header(prepared.plan), Tallies()
    with ThreadPoolExecutor(2) as pool:
        for i, path in enumerate(parts):
            csv = folder / f"out-{i}.csv"
            tallies.merge(Tallies.from_state(score_part(prepared.plan, path, csv, pool).state()))
            out += csv.read_bytes()
    index = prepared.index
    failed = len(index.failed()[0])
    summary = summarise(prepared.plan, tallies, index.rows, failed, index.negative)
    return out, summary.stats, len(sizes)


@pytest.mark.parametrize("chunk_rows", [125, 500])
def test_any_number_of_parts_scores_byte_identically(
    small_library: Path, upload: Path, tmp_path: Path, chunk_rows: int
) -> None:
    options = ScoreOptions(chunk_rows=chunk_rows)
    whole = tmp_path / "whole.csv"
    expected = Pipeline(FolderSource(small_library), options).run(upload, whole)
    counts = []
    for part_rows in (ROWS, ROWS // 2, ROWS // 4, ROWS // 8, 1):
        folder = tmp_path / f"p{part_rows}"
        folder.mkdir()
        pipeline = Pipeline(FolderSource(small_library), options)
        out, stats, count = in_parts(pipeline, upload, folder, part_rows)
        assert out == whole.read_bytes(), (chunk_rows, part_rows)
        assert stats == expected.stats
        counts.append(count)
    # Parts are whole chunks: 1, 2, 4, 8 parts and one per chunk with 16 chunks of 125 rows.
    assert counts == ([1, 2, 4, 8, 16] if chunk_rows == 125 else [1, 2, 4, 4, 4])


def test_a_part_holds_its_rows_and_their_history(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    pipeline = Pipeline(FolderSource(small_library), ScoreOptions(chunk_rows=250))
    prepared = pipeline.prepare(upload, tmp_path)
    sizes = cut(prepared.index.chunks, 750)
    assert prepared.index.chunks == (250,) * 8 and sizes == [750, 750, 500]
    parts = list(write_parts(prepared.spool, prepared.index, tmp_path, sizes))
    assert len(parts) == 3
    blocks = list(read_part(parts[1]))
    assert [carry.first_row for _, carry in blocks] == [750, 1000, 1250]
    table, carry = blocks[0]
    assert table.column_names == prepared.plan.layout.columns
    expected = prepared.index.carry(slice(750, 1000))
    assert np.array_equal(carry.amount, expected.amount, equal_nan=True)
    assert carry.per_row.keys() == expected.per_row.keys()
    for name, values in expected.per_row.items():
        assert np.array_equal(carry.per_row[name], values, equal_nan=True), name


def test_per_row_arrays_are_read_back_by_slice_or_by_row(tmp_path: Path) -> None:
    columns = Columns(tmp_path / "index")
    values = np.arange(1000, dtype=np.float32) / 7
    columns.put("share:a/b", values)
    columns.put("@bad", values > 100)
    np.testing.assert_array_equal(columns.read("share:a/b", slice(250, 500)), values[250:500])
    np.testing.assert_array_equal(columns.read("share:a/b"), values)
    rows = np.array([0, 3, 998, 999])
    np.testing.assert_array_equal(columns.read("@bad", rows), values[rows] > 100)
    assert columns.read("share:a/b", np.array([], int)).dtype == np.float32
    assert len(columns.read("@bad", slice(990, 2000))) == 10
    assert sorted(p.name for p in (tmp_path / "index").iterdir()) == ["000.bin", "001.bin"]
