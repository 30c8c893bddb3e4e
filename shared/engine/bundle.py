"""A model's files in one folder: XGBoost UBJSON, JSON specs, a sha256 manifest. No pickle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from shared.engine.calibration import Calibrator, calibrator_from_json

MODEL_FILE = "model.ubj"
FEATURES_FILE = "features.json"
CALIBRATOR_FILE = "calibrator.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"
ARTIFACT_FILES = (MODEL_FILE, FEATURES_FILE, CALIBRATOR_FILE, METADATA_FILE)


class ArtifactError(Exception):
    """A model folder is incomplete or a file does not match its checksum."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@dataclass
class ModelBundle:
    """A loaded reference model: booster, the features it reads, its calibrator, metadata."""

    name: str
    booster: Any
    features: list[str]
    calibrator: Calibrator
    metadata: dict[str, Any]
    checksums: dict[str, str]

    def predict_raw(self, matrix: np.ndarray) -> np.ndarray:
        """Uncalibrated probabilities for a float32 matrix whose columns are `features`."""
        return self.booster.inplace_predict(matrix, validate_features=False)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibrator(self.predict_raw(matrix))

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        """Each feature's contribution to the raw log-odds per row (the bias last; approximate
        path attributions, as in FileModel.contributions)."""
        dmatrix = xgb.DMatrix(matrix, missing=np.nan, nthread=1)
        return self.booster.predict(
            dmatrix, pred_contribs=True, approx_contribs=True, validate_features=False
        )


def save_bundle(
    folder: Path,
    booster: Any,
    feature_spec: dict[str, Any],
    calibrator: Calibrator,
    metadata: dict[str, Any],
) -> dict[str, dict[str, Any]]:
    """Write the files to a temp folder beside `folder`, then swap it into place; the manifest."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}-"))
    try:
        booster.save_model(str(tmp / MODEL_FILE))
        _write_json(tmp / FEATURES_FILE, feature_spec)
        _write_json(tmp / CALIBRATOR_FILE, calibrator.to_json())
        _write_json(tmp / METADATA_FILE, metadata)
        manifest = {
            name: {"sha256": sha256_file(tmp / name), "size": (tmp / name).stat().st_size}
            for name in ARTIFACT_FILES
        }
        _write_json(tmp / MANIFEST_FILE, {"files": manifest})
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def read_manifest(folder: Path) -> dict[str, dict[str, Any]]:
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST_FILE}")
    return json.loads(path.read_text())["files"]


def mismatched_files(folder: Path, checksums: dict[str, str]) -> list[str]:
    """Files in `checksums` that are missing from folder or differ from their sha256."""
    bad = []
    for name, expected in checksums.items():
        path = Path(folder) / name
        if not path.is_file() or sha256_file(path) != expected:
            bad.append(name)
    return bad


def load_bundle(folder: Path, name: str, checksums: dict[str, str] | None = None) -> ModelBundle:
    """Verify every file against checksums (default: the folder's manifest), then load."""
    import xgboost as xgb

    folder = Path(folder)
    if checksums is None:
        checksums = {f: info["sha256"] for f, info in read_manifest(folder).items()}
    missing = [f for f in ARTIFACT_FILES if f not in checksums]
    if missing:
        raise ArtifactError(f"model {name}: no checksum recorded for {', '.join(missing)}")
    bad = mismatched_files(folder, checksums)
    if bad:
        raise ArtifactError(f"model {name}: checksum mismatch for {', '.join(bad)}")
    booster = xgb.Booster()
    booster.load_model(str(folder / MODEL_FILE))
    booster.set_param({"nthread": 1})
    spec = json.loads((folder / FEATURES_FILE).read_text())
    return ModelBundle(
        name=name,
        booster=booster,
        features=list(spec["features"]),
        calibrator=calibrator_from_json(json.loads((folder / CALIBRATOR_FILE).read_text())),
        metadata=json.loads((folder / METADATA_FILE).read_text()),
        checksums=dict(checksums),
    )
