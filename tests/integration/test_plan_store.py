"""A fitted plan through the object store (each backend): saved by the process that fitted it,
fetched by another, which scores the file byte for byte the same."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.engine.pipeline import Pipeline
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.storage import ObjectStore
from shared.training.simulator import example_spec, simulate, with_rows
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration

SCORE_WITH_STORED_PLAN = """
import sys
from pathlib import Path
from shared.engine.pipeline import Pipeline
from shared.engine.plan import FittedPlan
from shared.library.folder import FolderSource
from shared.storage import open_store

store_uri, key, library, upload, out, local = sys.argv[1:]
open_store(store_uri).get_file(key, Path(local))
source = FolderSource(Path(library))
plan = FittedPlan.load(Path(local), source, Path(upload))
Pipeline(source, plan.options).run(Path(upload), Path(out), plan=plan)
"""


def test_a_plan_in_the_object_store_scores_the_same_in_another_process(
    object_store: ObjectStore, small_library: Path, tmp_path: Path, service_env: dict[str, str]
) -> None:
    upload, first = tmp_path / "upload.csv", tmp_path / "first.csv"
    write_csv(simulate(with_rows(example_spec(), 2500), labeled=False), upload)
    result = Pipeline(FolderSource(small_library)).run(upload, first)
    assert result.plan is not None
    result.plan.save(tmp_path / "plan.zip")
    key = "plans/job-1/plan.zip"
    object_store.put_file(key, tmp_path / "plan.zip")

    again = tmp_path / "again.csv"
    args = [object_store.uri, key, str(small_library), str(upload), str(again)]
    subprocess.run(
        [sys.executable, "-c", SCORE_WITH_STORED_PLAN, *args, str(tmp_path / "fetched.zip")],
        cwd=REPO_ROOT,
        env=dict(os.environ, **service_env),
        check=True,
        timeout=120,
    )
    assert again.read_bytes() == first.read_bytes()
