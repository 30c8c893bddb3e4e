"""The AutoML trainer, its calibrators and safe artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.engine.bundle import (
    ARTIFACT_FILES,
    ArtifactError,
    load_bundle,
    read_manifest,
    sha256_file,
)
from shared.engine.calibration import Isotonic, Platt, calibrator_from_json, fit_calibrator
from shared.engine.features import build_features
from shared.engine.roles import infer_roles
from shared.training.automl import TrainingError, train_csv, train_frame
from shared.training.simulator import reference_catalog, simulate, with_rows

SPEC = with_rows(reference_catalog(2)[1], 8000)  # e-commerce, ~2% fraud


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    frame = simulate(SPEC)
    out = tmp_path_factory.mktemp("models")
    return frame, train_frame(frame, "ecom_small", out), out


def test_training_reports_useful_metrics(trained) -> None:
    frame, result, _ = trained
    m = result.metrics
    assert m["rows"] == len(frame) and m["fraud_rate"] == pytest.approx(frame.iloc[:, -1].mean())
    assert m["roc_auc"] > 0.9 and m["pr_auc"] > 0.5
    assert m["brier"] < m["fraud_rate"]  # better than always answering the base rate
    assert m["validation_rows"] + m["train_rows"] == m["rows"]


def test_the_folder_holds_safe_formats_and_a_manifest(trained) -> None:
    _, result, _ = trained
    files = {p.name for p in result.folder.iterdir()}
    assert files == {*ARTIFACT_FILES, "manifest.json"}
    manifest = read_manifest(result.folder)
    for name in ARTIFACT_FILES:
        assert manifest[name]["sha256"] == sha256_file(result.folder / name)
        assert manifest[name]["size"] == (result.folder / name).stat().st_size
    for name in ("features.json", "calibrator.json", "metadata.json"):
        json.loads((result.folder / name).read_text())
    assert (result.folder / "model.ubj").read_bytes()[:1] == b"{"  # UBJSON object, not pickle
    meta = json.loads((result.folder / "metadata.json").read_text())
    assert {"xgboost", "scikit-learn"} <= set(meta["library_versions"])
    assert meta["roles"]["amount"] == SPEC.column_names()["amount"]


def test_a_saved_model_loads_and_predicts_identically(trained) -> None:
    frame, result, _ = trained
    bundle = load_bundle(result.folder, "ecom_small")
    matrix = build_features(frame, infer_roles(frame)).to_numpy(np.float32)
    again = load_bundle(result.folder, "ecom_small")
    first, second = bundle.predict(matrix), again.predict(matrix)
    assert np.array_equal(first, second)
    assert ((first >= 0) & (first <= 1)).all()


def test_a_tampered_file_is_refused(trained, tmp_path: Path) -> None:
    import shutil

    _, result, _ = trained
    copy = tmp_path / "m"
    shutil.copytree(result.folder, copy)
    (copy / "calibrator.json").write_text('{"kind": "identity"}')
    with pytest.raises(ArtifactError, match=r"calibrator\.json"):
        load_bundle(copy, "m")


def test_training_from_csv_with_an_explicit_label(tmp_path: Path) -> None:
    frame = simulate(SPEC).rename(columns={SPEC.column_names()["label"]: "outcome_flag"})
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False, sep=";")
    result = train_csv(path, tmp_path / "models", label="outcome_flag", name="csv_model")
    assert result.roles["label"] == "outcome_flag"
    assert (tmp_path / "models" / "csv_model" / "model.ubj").exists()


def test_a_file_without_a_label_is_refused_with_a_hint() -> None:
    frame = simulate(SPEC, labeled=False)
    with pytest.raises(TrainingError, match="no label column found; pass --label"):
        train_frame(frame, "x", Path("/nonexistent"))


def test_a_label_with_one_class_is_refused(tmp_path: Path) -> None:
    frame = simulate(SPEC)
    frame[SPEC.column_names()["label"]] = 0
    with pytest.raises(TrainingError, match="one class only"):
        train_frame(frame, "x", tmp_path)


def test_a_file_with_no_usable_feature_is_refused(tmp_path: Path) -> None:
    frame = pd.DataFrame({"comment": ["a", "b"] * 50, "is_fraud": [0, 1] * 50})
    with pytest.raises(TrainingError, match="no usable feature"):
        train_frame(frame, "x", tmp_path)


def test_calibrators_round_trip_through_json_and_are_monotone() -> None:
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 5000)
    y = (rng.uniform(0, 1, 5000) < raw**2).astype(int)
    for calibrator in (Platt.fit(raw, y), Isotonic.fit(raw, y), fit_calibrator(raw, y)):
        restored = calibrator_from_json(json.loads(json.dumps(calibrator.to_json())))
        grid = np.linspace(0, 1, 101)
        assert np.allclose(restored(grid), calibrator(grid))
        assert np.all(np.diff(restored(grid)) >= -1e-12)
    assert fit_calibrator(raw, y).kind == "isotonic"
    assert fit_calibrator(raw[:200], (raw[:200] > 0.97).astype(int)).kind == "platt"
