"""populate_reference_models on PostgreSQL: idempotent, honest summary; matching and usage."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared.db.models import ReferenceModel
from shared.engine import roles as R
from shared.library.registry import find_best_match, populate, record_usage
from tests.conftest import SMALL_LIBRARY
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration


def test_populate_adds_then_skips_unchanged_models(db: Session, small_library: Path) -> None:
    first = populate(db, small_library)
    assert sorted(first.added) == sorted(SMALL_LIBRARY) and not first.failed
    second = populate(db, small_library)
    assert (second.added, second.updated, second.failed) == ([], [], [])
    assert sorted(second.skipped) == sorted(SMALL_LIBRARY)
    assert db.scalar(select(func.count()).select_from(ReferenceModel)) == 3
    row = db.scalars(select(ReferenceModel).where(ReferenceModel.name == SMALL_LIBRARY[0])).one()
    assert row.storage_type == "local" and row.artifact_uri.startswith("file://")
    assert set(row.file_checksums) == {
        "model.ubj",
        "features.json",
        "calibrator.json",
        "metadata.json",
    }
    assert row.size_bytes > 0 and row.metrics["roc_auc"] > 0.5
    assert row.column_roles[R.AMOUNT] == "TX_AMOUNT"


def test_a_changed_model_is_updated_and_a_broken_one_reported(
    db: Session, small_library: Path, tmp_path: Path
) -> None:
    library = tmp_path / "lib"
    shutil.copytree(small_library, library)
    populate(db, library)
    meta = library / SMALL_LIBRARY[1] / "metadata.json"
    data = json.loads(meta.read_text())
    data["metrics"]["note"] = "retrained"
    meta.write_text(json.dumps(data))
    manifest_path = library / SMALL_LIBRARY[1] / "manifest.json"
    from shared.engine.bundle import sha256_file

    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["metadata.json"] = {"sha256": sha256_file(meta), "size": meta.stat().st_size}
    manifest_path.write_text(json.dumps(manifest))
    (library / SMALL_LIBRARY[2] / "model.ubj").write_bytes(b"garbage")
    summary = populate(db, library)
    assert summary.updated == [SMALL_LIBRARY[1]]
    assert summary.skipped == [SMALL_LIBRARY[0]]
    assert [name for name, _ in summary.failed] == [SMALL_LIBRARY[2]]
    assert "model.ubj" in summary.failed[0][1]
    assert "failed:  1" in summary.render()


def test_the_cli_prints_a_summary_block(
    service_env: dict[str, str], small_library: Path, db: Session
) -> None:
    args = [
        sys.executable,
        "scripts/populate_reference_models.py",
        "--models-dir",
        str(small_library),
    ]
    run = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "added:   3" in run.stdout
    run = subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert "skipped: 3 (unchanged)" in run.stdout


def test_best_match_prefers_models_whose_inputs_the_upload_has(
    db: Session, small_library: Path
) -> None:
    populate(db, small_library)
    card_roles = {r: r for r in (R.AMOUNT, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL)}
    ranked = find_best_match(db, card_roles, top_k=3)
    assert len(ranked) == 3
    assert all(0.0 <= m.similarity <= 1.0 for m in ranked)
    assert [m.similarity for m in ranked] == sorted((m.similarity for m in ranked), reverse=True)
    mobile = {
        r: r
        for r in (
            R.AMOUNT,
            R.TIMESTAMP,
            R.CUSTOMER,
            R.TERMINAL,
            R.TX_TYPE,
            R.BALANCE_BEFORE,
            R.BALANCE_AFTER,
        )
    }
    best = find_best_match(db, mobile, top_k=1)[0]
    assert best.similarity >= find_best_match(db, {R.AMOUNT: "amt"})[0].similarity
    assert best.name.startswith("mobile_money")


def test_usage_is_counted(db: Session, small_library: Path) -> None:
    populate(db, small_library)
    record_usage(db, [SMALL_LIBRARY[0]])
    record_usage(db, [SMALL_LIBRARY[0], SMALL_LIBRARY[1]])
    counts = dict(db.execute(select(ReferenceModel.name, ReferenceModel.usage_count)).all())
    assert counts == {SMALL_LIBRARY[0]: 2, SMALL_LIBRARY[1]: 1, SMALL_LIBRARY[2]: 0}
    row = db.scalars(select(ReferenceModel).where(ReferenceModel.name == SMALL_LIBRARY[0])).one()
    assert row.last_used_at is not None
