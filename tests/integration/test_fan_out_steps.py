"""The fan-out's steps called in this process one after the other (the job's task, each part,
the merge), with what would go to the broker recorded: no worker, so no reconciler of another
module's workers races them (theirs sweep every job of the database)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from shared.db.models import Job
from shared.service.fanout import PartsRunner, merge_parts, part_key, run_part
from shared.service.keys import work_prefix
from shared.service.queue import TASK_MERGE, TASK_PART
from shared.settings import Settings, load_settings
from shared.storage import open_store
from tests.integration.test_fan_out import CHUNK, PART, ROWS, in_one_piece, write_large_upload
from tests.integration.test_job_recovery import job_row

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def large_upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_large_upload(tmp_path_factory.mktemp("large"))


class Sent:
    """Records what would go to the broker (the parts and the merge), for a run in this
    process."""

    def __init__(self) -> None:
        self.tasks: list[tuple[str, list[Any]]] = []

    def send_task(self, name: str, args: list[Any], task_id: str) -> None:
        self.tasks.append((name, args))


def queued_job(db: Session, settings: Settings, owner: str, upload: Path) -> Job:
    """A queued job for `upload`, stored under `owner`'s uploads."""
    store = open_store(settings=settings)
    key = f"uploads/{owner}/{upload.name}"
    store.put_file(key, upload)
    job = Job(owner=owner, input_uri=store.uri_for(key), state="queued")
    db.add(job)
    db.commit()
    return job


def plan_step(job: Job, sent: Sent) -> str:
    """The job's task run here as a worker would (parts of PART rows), its sends recorded."""
    planning = load_settings(score_part_rows=PART, score_chunk_rows=CHUNK)
    return PartsRunner(job.id, planning, sent).run()


def test_the_plan_step_parts_and_merge_run_in_this_process_as_in_one_piece(
    registered_library: Path, db: Session, large_upload: Path, settings: Settings, tmp_path: Path
) -> None:
    """The same steps as the workers take, called here one after the other: the job's task
    sends its parts, each part is scored, the last sends the merge, which ends the job."""
    store = open_store(settings=settings)
    job = queued_job(db, settings, "lou", large_upload)
    sent, job_id = Sent(), str(job.id)
    assert plan_step(job, sent) == "running"
    parts = [args for name, args in sent.tasks if name == TASK_PART]
    assert [a[2] for a in parts] == list(range(ROWS // PART)) and job_row(db, job_id).parts == 20
    for _, attempt, part in reversed(parts):  # any order
        assert run_part(job_id, attempt, part, sent) == "running"
    assert run_part(job_id, 1, 0, sent) == "running"  # sent twice: scored once
    assert [name for name, _ in sent.tasks].count(TASK_MERGE) == 2  # once per last part seen
    assert merge_parts(job_id, 1) == "succeeded"
    assert merge_parts(job_id, 1) == "succeeded"  # a second merge finds the job ended
    done = job_row(db, job_id)
    assert done.rows_done == ROWS and done.stats["rows_failed"] == 2
    expected, errors = in_one_piece(settings, large_upload, tmp_path)
    with store.open(store.key_of(done.output_uri)) as body:
        assert body.read() == expected
    with store.open(store.key_of(done.error_uri)) as body:
        assert body.read() == errors
    assert list(store.list(f"work/{job_id}/")) == []


def test_a_part_that_kills_its_worker_each_time_fails_the_job_after_max_attempts(
    db: Session, settings: Settings
) -> None:
    job = Job(owner="kim", input_uri="s3://x/uploads/kim/a.csv", state="running", attempts=1)
    db.add(job)
    db.commit()
    store, prefix = open_store(settings=settings), work_prefix(job.id, 1)
    store.put_stream(part_key(prefix, 0, "tries"), io.BytesIO(str(settings.max_attempts).encode()))
    assert run_part(str(job.id), 1, 0, Sent()) == "failed"
    failed = job_row(db, str(job.id))
    assert failed.state == "failed"
    assert f"gave up after {settings.max_attempts} attempts" in failed.error_message
    assert list(store.list(prefix)) == []


class CancelsOnFirstPart(Sent):
    """Records the sends; the job is cancelled as its first part goes out."""

    def __init__(self, db: Session, job: Job) -> None:
        super().__init__()
        self.db, self.job = db, job

    def send_task(self, name: str, args: list[Any], task_id: str) -> None:
        super().send_task(name, args, task_id)
        self.job.state = "cancelled"
        self.db.commit()


def test_a_job_cancelled_while_its_parts_go_out_sends_no_more_and_leaves_no_files(
    registered_library: Path, db: Session, large_upload: Path, settings: Settings
) -> None:
    store = open_store(settings=settings)
    job = queued_job(db, settings, "cal", large_upload)
    sent = CancelsOnFirstPart(db, job)
    assert plan_step(job, sent) == "cancelled"
    assert [args[2] for _, args in sent.tasks] == [0]  # one part of 20 went out
    assert list(store.list(f"work/{job.id}/")) == []
