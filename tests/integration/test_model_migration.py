"""migrate_models_to_s3.py against a real S3 endpoint (moto server)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from shared.db.models import ReferenceModel
from shared.settings import Settings
from shared.storage import open_store
from tests.conftest import SMALL_LIBRARY
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture
def library(registered_library: Path) -> Path:
    return registered_library


@pytest.fixture
def bucket(settings: Settings) -> str:
    name = f"fraud-models-{uuid.uuid4().hex[:8]}"
    store = open_store(f"s3://{name}/", settings=settings)
    store.prepare(create=True)
    return name


def cli(*args: str, models_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if models_dir:
        env["AUTOML_MODELS_DIR"] = str(models_dir)
    return subprocess.run(
        [sys.executable, "scripts/migrate_models_to_s3.py", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def rows(db: Session) -> dict[str, tuple[str, str]]:
    db.expire_all()
    return {r.name: (r.storage_type, r.artifact_uri) for r in db.scalars(select(ReferenceModel))}


def objects(settings: Settings, bucket: str) -> list[str]:
    return [o.key for o in open_store(f"s3://{bucket}/", settings=settings).list()]


def test_estimate_reports_size_and_costs(library: Path) -> None:
    run = cli("--estimate", "--price-per-gb-month", "0.023")
    assert run.returncode == 0, run.stderr
    assert "models to migrate:    3" in run.stdout
    for line in (
        "total size:",
        "monthly storage cost: $",
        "one-time upload cost: $",
        "yearly cost:",
    ):
        assert line in run.stdout


def test_dry_run_uploads_nothing(
    library: Path, bucket: str, settings: Settings, db: Session
) -> None:
    run = cli("--dry-run", "--bucket", bucket)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("would upload") == 12
    assert objects(settings, bucket) == []
    assert {kind for kind, _ in rows(db).values()} == {"local"}


def test_migrate_verify_and_rollback(
    library: Path, bucket: str, settings: Settings, db: Session
) -> None:
    run = cli("--bucket", bucket)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.count("migrated ") == 3 and "failed: 0" in run.stdout
    uris = rows(db).values()
    assert all(kind == "s3" and uri.startswith(f"s3://{bucket}/library/") for kind, uri in uris)
    assert len(objects(settings, bucket)) == 12

    assert cli("--bucket", bucket).stdout.count("migrated ") == 0  # re-running is a no-op
    verify = cli("--verify")
    assert verify.returncode == 0 and verify.stdout.count("ok ") == 3

    # A file changed in S3 behind our back is caught.
    key = f"library/{SMALL_LIBRARY[0]}/1/calibrator.json"
    open_store(f"s3://{bucket}/", settings=settings).put_stream(key, io.BytesIO(b"{}"))
    bad = cli("--verify")
    assert bad.returncode == 1 and f"BAD      {SMALL_LIBRARY[0]}: calibrator.json" in bad.stdout

    # Rollback re-downloads only what is missing or wrong locally.
    (library / SMALL_LIBRARY[1] / "model.ubj").unlink()
    back = cli("--rollback", models_dir=library)
    assert back.returncode == 0, back.stdout
    assert f"local    {SMALL_LIBRARY[1]} (1 files re-downloaded)" in back.stdout
    assert f"local    {SMALL_LIBRARY[0]} (0 files re-downloaded)" in back.stdout
    state = rows(db)
    assert all(kind == "local" for kind, _ in state.values()), state
    assert (library / SMALL_LIBRARY[1] / "model.ubj").exists()


def test_an_upload_failing_half_way_leaves_no_row_on_an_incomplete_model(
    library: Path, bucket: str, settings: Settings, db: Session
) -> None:
    # The second model's booster is damaged: its first files upload, then it fails.
    broken = library / SMALL_LIBRARY[1] / "model.ubj"
    good = broken.read_bytes()
    broken.write_bytes(good[:-10])
    run = cli("--bucket", bucket)
    assert run.returncode == 1
    assert f"FAILED   {SMALL_LIBRARY[1]}: local model.ubj does not match" in run.stdout
    state = rows(db)
    assert state[SMALL_LIBRARY[1]][0] == "local"
    assert state[SMALL_LIBRARY[0]][0] == "s3" and state[SMALL_LIBRARY[2]][0] == "s3"
    uploaded = objects(settings, bucket)
    assert any(k.startswith(f"library/{SMALL_LIBRARY[1]}/") for k in uploaded)  # half-way
    broken.write_bytes(good)
    again = cli("--bucket", bucket)
    assert again.returncode == 0 and again.stdout.count("migrated ") == 1
    assert {kind for kind, _ in rows(db).values()} == {"s3"}
    assert cli("--verify").stdout.count("ok ") == 3


def test_dry_run_counts_what_the_real_run_does(library: Path, bucket: str) -> None:
    dry = cli("--dry-run", "--bucket", bucket)
    assert "would migrate: 3" in dry.stdout and "skipped: 0" in dry.stdout, dry.stdout
    real = cli("--bucket", bucket)
    assert "migrated: 3" in real.stdout and "skipped: 0" in real.stdout, real.stdout
    again = cli("--dry-run", "--bucket", bucket)
    assert "would migrate: 0" in again.stdout and "skipped: 3" in again.stdout


@pytest.mark.parametrize("mode", [("--dry-run",), ()])
def test_a_missing_bucket_fails_with_its_name(
    library: Path, settings: Settings, db: Session, mode: tuple[str, ...]
) -> None:
    run = cli(*mode, "--bucket", "no-such-bucket-here")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "bucket 'no-such-bucket-here' does not exist: create it" in run.stderr
    assert "Traceback" not in run.stderr and "would upload" not in run.stdout
    assert {kind for kind, _ in rows(db).values()} == {"local"}
