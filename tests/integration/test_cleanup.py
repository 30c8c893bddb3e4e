"""Clean disks: abandoned temporary folders are swept, expired files removed, cancel stamps."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared.db.models import Job, utcnow
from shared.service.auth import create_token
from shared.service.reconcile import purge_expired
from shared.service.runner import sweep_temp, temp_prefix
from shared.settings import Settings, load_settings
from shared.storage import open_store


def test_temp_folders_of_dead_processes_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    gone_pid = int(dead.stdout)
    abandoned = [
        tmp_path / f"job-{'0' * 8}-0000-0000-0000-{'0' * 12}-p{gone_pid}-abc",
        tmp_path / f"fraudscore-p{gone_pid}-xyz",
    ]
    mine = tmp_path / (temp_prefix("fraudscore") + "live")
    other = tmp_path / "fraudscore-unrelated"
    for folder in [*abandoned, mine, other]:
        folder.mkdir()
        (folder / "input.csv").write_text("x")
    assert sweep_temp(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, other.name])
    assert str(os.getpid()) in mine.name


def test_retention_removes_expired_uploads_and_results_only(
    db: Session, settings: Settings
) -> None:
    store = open_store(settings=settings)
    for key in ("uploads/ret/a/old.csv", "results/ret/1/predictions.csv", "uploads/ret/b/new.csv"):
        store.put_stream(key, io.BytesIO(b"x"))
    old = Job(
        owner="ret",
        state="succeeded",
        input_uri=store.uri_for("uploads/ret/a/old.csv"),
        output_uri=store.uri_for("results/ret/1/predictions.csv"),
        finished_at=utcnow() - timedelta(days=40),
    )
    new = Job(
        owner="ret",
        state="succeeded",
        input_uri=store.uri_for("uploads/ret/b/new.csv"),
        finished_at=utcnow() - timedelta(days=1),
    )
    db.add_all([old, new])
    db.commit()
    late_part = f"work/{old.id}/a1/parts/00003.in.arrow"  # stored after its job ended
    store.put_stream(late_part, io.BytesIO(b"x"))
    purged = purge_expired(load_settings(retention_days=30), store)
    assert purged == [str(old.id)]
    assert not store.exists(late_part)
    assert not store.exists("uploads/ret/a/old.csv")
    assert not store.exists("results/ret/1/predictions.csv")
    assert store.exists("uploads/ret/b/new.csv")
    db.refresh(old)
    assert old.purged_at is not None
    assert purge_expired(load_settings(retention_days=30), store) == []  # once
    assert purge_expired(load_settings(retention_days=0), store) == []  # 0: keep forever


def test_cancelling_a_job_stamps_when_it_finished(
    client: FlaskClient, db: Session, settings: Settings
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'stamp')}"}
    running = Job(owner="stamp", state="running", input_uri="x", started_at=utcnow())
    db.add(running)
    db.commit()
    answer = client.delete(f"/api/v1/jobs/{running.id}", headers=headers)
    assert answer.status_code == 200 and answer.json["state"] == "cancelled"
    assert answer.json["finished_at"] is not None
