"""scripts/score_csv.py against the registry on PostgreSQL: the workers' code path, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ReferenceModel
from shared.library.build import write_csv
from shared.training.simulator import example_spec, simulate, with_rows
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration


def score_cli(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MODEL_CACHE_DIR=str(cache))
    return subprocess.run(
        [sys.executable, "scripts/score_csv.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_cli_scores_a_file_and_prints_the_summary(
    registered_library: Path, tmp_path: Path, db: Session
) -> None:
    src = tmp_path / "upload.csv"
    write_csv(simulate(with_rows(example_spec(), 2000), labeled=False), src)
    out, errors = tmp_path / "out.csv", tmp_path / "errors.csv"
    summary_file = tmp_path / "summary.json"
    args = ["--output", str(out), "--errors", str(errors), "--top-k", "2"]
    run = score_cli(str(src), *args, "--summary", str(summary_file), cache=tmp_path / "cache")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == f"Scored 2,000 rows into {out}" and len(lines) <= 8
    assert lines[1].startswith("  high ") and "anomalies" in lines[1]
    summary = json.loads(summary_file.read_text())
    assert summary["stats"]["total_transactions"] == 2000
    assert summary["methods_used"]["top_k_models"] == 2
    assert len(pd.read_csv(out)) == 2000 and errors.exists()
    assert "scoring" in run.stderr or "writing" in run.stderr  # the progress bar
    used = dict(db.execute(select(ReferenceModel.name, ReferenceModel.usage_count)).all())
    assert sorted(n for n, c in used.items() if c == 1) == sorted(
        m["name"] for m in summary["methods_used"]["models"]
    )


def test_the_cli_refuses_a_file_no_model_can_serve(
    registered_library: Path, tmp_path: Path
) -> None:
    src = tmp_path / "names.csv"
    src.write_text("first_name,city\nAda,London\nAlan,Wilmslow\n")
    run = score_cli(str(src), "--output", str(tmp_path / "o.csv"), cache=tmp_path / "cache")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("score_csv: no amount-like column")
    assert "found: first_name, city" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "o.csv").exists()


def test_the_cli_output_is_identical_across_runs_and_chunk_sizes(
    registered_library: Path, tmp_path: Path
) -> None:
    src = tmp_path / "upload.csv"
    write_csv(simulate(with_rows(example_spec(), 1500), labeled=False), src)
    outputs = []
    for i, chunk in enumerate(["100000", "100000", "400"]):
        out = tmp_path / f"out{i}.csv"
        run = score_cli(
            str(src), "--output", str(out), "--chunk-rows", chunk, cache=tmp_path / "cache"
        )
        assert run.returncode == 0, run.stderr
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] == outputs[2]
    run = score_cli(str(src), "--output", str(tmp_path / "o.csv"), "--json", cache=tmp_path / "c")
    assert json.loads(run.stdout)["stats"]["total_transactions"] == 1500
