"""Labels files: read as written, checked against the job's rows, pooled into training files."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from shared.errors import InputError
from shared.service.labels import (
    TRAIN_LABEL,
    Rejected,
    TrainingFile,
    label_set_csv,
    read_label_set,
    read_labels,
    resolve,
)


def test_ids_are_kept_as_written_and_words_read_as_labels() -> None:
    labels = read_labels(b"\xef\xbb\xbftx,Is Fraud?\n0042,Yes\nA7,legit\n9,1.0\n", "tx")
    assert labels.key == "tx" and labels.keys == ["0042", "A7", "9"]
    assert labels.labels.tolist() == [1, 0, 1] and labels.positives == 2


def test_row_numbers_win_over_the_id_column_and_out_of_range_ones_are_rejected() -> None:
    labels = read_labels(b"row_number,tx,fraud\n1,a,1\n5,b,0\n", "tx")
    assert labels.key == "row_number"
    assert resolve(labels, iter([]), rows_total=5).tolist() == [1, 5]
    with pytest.raises(Rejected) as caught:
        resolve(labels, iter([]), rows_total=4)
    assert "1 row numbers are not rows of this job ('5')" in caught.value.message
    assert caught.value.errors_csv() == b'key,reason\n"5",not a row of this job\n'


def test_ids_are_found_in_the_job_s_rows() -> None:
    labels = read_labels(b"tx,label\nT9,1\nT2,0\nT404,1\n", "tx")
    blocks = [
        pa.table({"tx": ["T1", "T2"], "row_number": [1, 2]}),
        pa.table({"tx": ["T9"], "row_number": [3]}),
    ]
    with pytest.raises(Rejected, match="'T404'"):
        resolve(labels, iter(blocks), rows_total=3)
    found = read_labels(b"tx,label\nT9,1\nT2,0\n", "tx")
    assert resolve(found, iter(blocks), rows_total=3).tolist() == [3, 2]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"when,label\n1,1\n", "needs a `row_number` column (from the predictions file) or"),
        (b"row_number,label\n1,maybe\n2,\n", "2 values of `label` are not labels (line 2: 'maybe'"),
        (b"row_number,label\n3,1\n3,1\n", "1 values of `row_number` appear more than once ('3')"),
        (b"row_number,a,b\n1,1,0\n", "cannot tell which column holds the labels"),
        (b"row_number,label\n", "has a header but no rows"),
    ],
)
def test_bad_labels_files_are_refused_with_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(InputError) as caught:
        read_labels(body, "tx")
    assert message in str(caught.value)


def test_label_sets_pool_the_labeled_rows_of_each_input_later_labels_winning(
    tmp_path: Path,
) -> None:
    stored = label_set_csv(np.array([3, 1]), np.array([1, 0], np.int8))
    assert stored == b"row_number,label\n1,0\n3,1\n"
    labels = read_label_set(stored) | {1: 1}  # a later set relabels row 1
    source = tmp_path / "job.csv"
    source.write_text("amount,card\n1.5,a\n2.5,b\n3.5,c\n")
    pooled = TrainingFile(tmp_path / "train.csv")
    pooled.add(source, labels)
    pooled.close()
    assert (pooled.rows, pooled.positives) == (2, 2)
    rows = list(csv.reader((tmp_path / "train.csv").open()))
    assert rows == [["amount", "card", TRAIN_LABEL], ["1.5", "a", "1"], ["3.5", "c", "1"]]
