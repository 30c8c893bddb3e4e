"""Building the reference library: several datasets at once, the same models as one by one."""

from __future__ import annotations

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
