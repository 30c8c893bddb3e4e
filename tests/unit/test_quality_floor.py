"""A floor under how well the pipeline ranks against known labels, on a simulated file and on
samples of the real files in ../shared/realdata (skipped where that folder is absent).

The figures are today's, with the three-model test library; a change that lowers one by more
than 0.01, ignores the reference models or moves the default anomaly share off 1% fails here.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.settings import REPO_ROOT
from shared.training.simulator import example_spec, simulate, with_rows

TOLERANCE = 0.01
REALDATA = Path(os.environ.get("FRAUDSCORE_REALDATA", REPO_ROOT.parent / "shared" / "realdata"))
# file, label column, ROC-AUC on 2026-12-07 (three-model test library; the product's 40-model
# library gives other figures: docs/benchmarks.md)
REAL_FILES = {
    "banksim/banksim_sample_20k.csv": ("fraud", 0.9736),
    "card_transdata/card_transdata_first49999.csv": ("fraud", 0.5692),
    "ecom_fraud_data/Fraud_Data_first51689.csv": ("class", 0.7914),
    "tabformer_user0/User0_credit_card_transactions.csv": ("Is Fraud?", 0.8829),
}
SIMULATED_ROC = 0.9358  # example_spec, 6,000 rows, with the library
SIMULATED_ROC_WITHOUT_LIBRARY = 0.9145  # the same file scored by its own evidence only


def _score(source: FolderSource, frame: pd.DataFrame, label: str, tmp: Path) -> tuple[float, float]:
    """(ROC-AUC, is_anomaly share) of the pipeline on `frame` with its label column stripped."""
    src, out = tmp / "upload.csv", tmp / "out.csv"
    write_csv(frame.drop(columns=[label]), src)
    Pipeline(source, ScoreOptions(threads=2)).run(src, out)
    scored = pd.read_csv(out)
    y = frame[label].astype(str).str.strip().str.lower().isin({"1", "yes", "true"})
    return float(roc_auc_score(y, scored["fraud_probability"])), float(scored["is_anomaly"].mean())


@pytest.fixture(scope="module")
def simulated() -> pd.DataFrame:
    return simulate(with_rows(example_spec(), 6000), labeled=True)


def test_the_simulated_file_ranks_as_well_as_today(
    small_library: Path, simulated: pd.DataFrame, tmp_path: Path
) -> None:
    roc, anomalies = _score(FolderSource(small_library), simulated, "is_fraud", tmp_path)
    assert roc >= SIMULATED_ROC - TOLERANCE
    assert anomalies == pytest.approx(0.01, abs=0.002)


def test_the_reference_models_lift_the_simulated_file_above_its_own_evidence(
    small_library: Path, simulated: pd.DataFrame, tmp_path: Path
) -> None:
    empty = tmp_path / "no_models"
    empty.mkdir()
    (tmp_path / "with").mkdir()
    (tmp_path / "without").mkdir()
    with_library, _ = _score(FolderSource(small_library), simulated, "is_fraud", tmp_path / "with")
    alone, _ = _score(FolderSource(empty), simulated, "is_fraud", tmp_path / "without")
    assert alone == pytest.approx(SIMULATED_ROC_WITHOUT_LIBRARY, abs=TOLERANCE)
    assert with_library - alone >= 0.01


@pytest.mark.skipif(not REALDATA.is_dir(), reason=f"no real files at {REALDATA}")
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_each_real_file_ranks_as_well_as_today(
    small_library: Path, name: str, tmp_path: Path
) -> None:
    label, today = REAL_FILES[name]
    frame = pd.read_csv(REALDATA / name, dtype=str, keep_default_na=False)
    roc, anomalies = _score(FolderSource(small_library), frame, label, tmp_path)
    assert roc >= today - TOLERANCE, f"{name}: ROC-AUC {roc:.4f}, today {today:.4f}"
    assert anomalies == pytest.approx(0.01, abs=0.002)
