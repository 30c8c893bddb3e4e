"""Building the reference library: several datasets at once, the same models as one by one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.library import build
from shared.training.simulator import reference_catalog


def test_a_parallel_build_trains_the_same_models_in_catalog_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = [spec.name for spec in reference_catalog(3)]
    for workers in (1, 2):
        monkeypatch.setattr(build, "BUILD_WORKERS", workers)
        root, seen = tmp_path / str(workers), []
        report = build.build_library(
            root / "models", root / "data", count=3, rows_scale=0.1, progress=seen.append
        )
        assert [spec.name for spec, _ in report.results] == names
        assert sorted(spec.name for spec in seen) == sorted(names)
    for name in names:
        one_by_one = tmp_path / "1" / "models" / name / "model.ubj"
        side_by_side = tmp_path / "2" / "models" / name / "model.ubj"
        assert one_by_one.read_bytes() == side_by_side.read_bytes()


def test_a_folder_built_from_another_recipe_is_built_again(tmp_path: Path) -> None:
    models, data = tmp_path / "models", tmp_path / "data"
    first = build.build_library(models, data, count=2, rows_scale=0.05)
    assert len(first.results) == 2
    assert build.library_is_built(models, 2, rows_scale=0.05)
    assert not build.library_is_built(models, 2)  # other rows: another recipe
    older, kept = (models / spec.name for spec in reference_catalog(2, rows_scale=0.05))
    metadata = json.loads((older / "metadata.json").read_text())
    metadata["simulation"]["recipe"] = "an older catalog's"
    (older / "metadata.json").write_text(json.dumps(metadata))
    kept_model = (kept / "model.ubj").stat().st_mtime_ns
    assert not build.library_is_built(models, 2, rows_scale=0.05)
    again = build.build_library(models, data, count=2, rows_scale=0.05)
    assert [spec.name for spec, _ in again.results] == [older.name]
    assert build.library_is_built(models, 2, rows_scale=0.05)
    assert (kept / "model.ubj").stat().st_mtime_ns == kept_model
