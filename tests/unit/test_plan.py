"""The fitted plan: frozen, saved without pickle, and scoring the same in another process."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shared.engine.options import ScoreOptions
from shared.engine.pipeline import Pipeline
from shared.engine.plan import FittedPlan, PlanError
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.training.simulator import example_spec, simulate, with_rows

SCORE_WITH_SAVED_PLAN = """
import sys
from pathlib import Path
from shared.engine.pipeline import Pipeline
from shared.engine.plan import FittedPlan
from shared.library.folder import FolderSource

library, plan_path, upload, out = map(Path, sys.argv[1:])
source = FolderSource(library)
plan = FittedPlan.load(plan_path, source, upload)
Pipeline(source, plan.options).run(upload, out, plan=plan)
"""


@pytest.fixture(scope="module")
def fitted(small_library: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An upload with a column no reference model reads (every fitted part in use), scored
    once; (upload, predictions)."""
    folder = tmp_path_factory.mktemp("plan")
    frame = simulate(with_rows(example_spec(), 3000), labeled=False)
    frame["V1"] = np.random.default_rng(0).normal(size=len(frame)).round(4)
    upload, out = folder / "upload.csv", folder / "out.csv"
    write_csv(frame, upload)
    result = Pipeline(FolderSource(small_library), ScoreOptions(chunk_rows=700)).run(upload, out)
    assert result.plan is not None
    result.plan.save(folder / "plan.zip")
    return upload, out


def test_a_saved_plan_scores_byte_identically_in_another_process(
    small_library: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    upload, expected = fitted
    again = tmp_path / "again.csv"
    command = [sys.executable, "-c", SCORE_WITH_SAVED_PLAN, str(small_library)]
    command += [str(upload.with_name("plan.zip")), str(upload), str(again)]
    subprocess.run(command, check=True, timeout=120)
    assert again.read_bytes() == expected.read_bytes()


def test_the_saved_plan_holds_json_numpy_arrays_and_xgboost_models_only(
    small_library: Path, fitted: tuple[Path, Path]
) -> None:
    upload, _ = fitted
    with zipfile.ZipFile(upload.with_name("plan.zip")) as archive:
        names = archive.namelist()
        meta = json.loads(archive.read("plan.json"))
    assert all(n == "plan.json" or n.endswith((".npy", ".ubj")) for n in names)
    assert {"models/detector.ubj", "models/file_model.ubj"} <= set(names)
    assert meta["models"] and all(len(m["sha256"]) == 4 for m in meta["models"])
    plan = FittedPlan.load(upload.with_name("plan.zip"), FolderSource(small_library), upload)
    assert plan.detector is not None and plan.blend is not None and plan.file_model is not None
    assert "V1" in plan.anomaly_names
    assert list(plan.layout.roles.columns) == list(result_roles(upload, small_library))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.base_rate = 0.5  # type: ignore[misc]


def result_roles(upload: Path, library: Path) -> dict[str, str]:
    from shared.engine.csvio import sniff

    return Pipeline(FolderSource(library)).profile(sniff(upload)).roles.columns


def test_a_plan_whose_reference_model_changed_is_refused(
    small_library: Path, fitted: tuple[Path, Path], tmp_path: Path
) -> None:
    upload, _ = fitted
    plan_path = upload.with_name("plan.zip")
    with zipfile.ZipFile(plan_path) as archive:
        name = json.loads(archive.read("plan.json"))["models"][0]["name"]
    library = tmp_path / "library"
    shutil.copytree(small_library, library)
    metadata = library / name / "metadata.json"
    metadata.write_text(metadata.read_text().replace("{", '{"edited": true, ', 1))
    manifest = json.loads((library / name / "manifest.json").read_text())
    from shared.engine.bundle import sha256_file

    manifest["files"]["metadata.json"]["sha256"] = sha256_file(metadata)
    (library / name / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PlanError, match=f"model {name} changed"):
        FittedPlan.load(plan_path, FolderSource(library), upload)
