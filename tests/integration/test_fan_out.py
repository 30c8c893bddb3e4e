"""One file scored by many workers: the job's task fits the plan and sends the file out in
parts, two real worker processes score them, the merge publishes the predictions in input
order, byte-identical to the file scored in one piece; a worker killed mid-part costs that part
alone; a cancelled job's parts stop and leave nothing behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from api import create_app
from shared.db.models import Job
from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.library.build import write_csv
from shared.library.cache import ModelStore, RegistrySource
from shared.service.auth import create_token
from shared.service.queue import TASK_PART, create_celery
from shared.settings import Settings, load_settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows
from tests import services
from tests.integration.test_job_recovery import job_row, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS, CHUNK, PART = 30_000, 250, 1_500  # 20 parts of 6 blocks each


@pytest.fixture(scope="module")
def parts_env(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    url = services.TEST_REDIS_URL.rsplit("/", 1)[0] + "/11"
    redis.Redis.from_url(url).flushdb()
    yield {
        **service_env,
        "REDIS_URL": url,
        "SCORE_CHUNK_ROWS": str(CHUNK),
        "SCORE_PART_ROWS": str(PART),
        "SCORE_THREADS": "1",
        # A lost worker's parts are found within seconds.
        "HEARTBEAT_S": "1",
        "STALE_AFTER_S": "3",
        "SWEEP_S": "1",
    }
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def part_workers(
    parts_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    with services.workers(parts_env, "parts", 2, tmp_path_factory.mktemp("part-workers")) as procs:
        yield procs


@pytest.fixture
def client(parts_env: dict[str, str]) -> FlaskClient:
    return create_app({"redis_url": parts_env["REDIS_URL"]}).test_client()


def write_large_upload(folder: Path) -> Path:
    """ROWS simulated rows, two of them with an unreadable amount (for the errors file)."""
    path = folder / "large.csv"
    frame = simulate(with_rows(example_spec(), ROWS), labeled=False)
    frame["importe_eur"] = frame["importe_eur"].astype(str)
    frame.loc[[7, 12_345], "importe_eur"] = "n/a"
    write_csv(frame, path)
    return path


@pytest.fixture(scope="module")
def large_upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_large_upload(tmp_path_factory.mktemp("large"))


def in_one_piece(settings: Settings, upload: Path, folder: Path) -> tuple[bytes, bytes]:
    """The predictions and errors of the file scored by one process."""
    options = ScoreOptions(
        chunk_rows=CHUNK,
        high_threshold=settings.risk_high_threshold,
        medium_threshold=settings.risk_medium_threshold,
    )
    out, errors = folder / "offline.csv", folder / "errors.csv"
    Pipeline(RegistrySource(settings, ModelStore(settings)), options).run(upload, out, errors)
    return out.read_bytes(), errors.read_bytes()


def running_part(parts_env: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """A part task running now, and its worker's name."""
    celery = create_celery(load_settings(redis_url=parts_env["REDIS_URL"]))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        active = celery.control.inspect(timeout=0.5).active() or {}
        for worker, tasks in active.items():
            for task in tasks:
                if task["name"] == TASK_PART:
                    return worker, task
    raise AssertionError("no part was seen running")


def wait_parts(db: Session, job_id: str, done: int = 1) -> Job:
    """The job once it went out in parts and `done` rows of them are scored."""

    def scoring_parts() -> bool:
        job = job_row(db, job_id)
        assert job.finished_at is None, (job.state, job.error_message, job.parts)
        return job.parts is not None and job.rows_done >= done

    services.wait_for(scoring_parts, 90, "the parts to be scored")
    return job_row(db, job_id)


def finished(db: Session, job_id: str) -> Job:
    services.wait_for(lambda: job_row(db, job_id).finished_at is not None, 120, "the job's end")
    return job_row(db, job_id)


def test_a_large_file_is_scored_in_parts_by_two_workers_as_in_one_piece(
    client: FlaskClient,
    part_workers: dict[str, subprocess.Popen[bytes]],
    parts_env: dict[str, str],
    registered_library: Path,
    db: Session,
    large_upload: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'fay')}"}
    job_id = submit(client, large_upload, headers)
    wait_parts(db, job_id)
    body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json
    assert body["progress"]["parts"] == 20 and body["progress"]["rows_done"] > 0
    if body["state"] == "running":  # (it is, unless every part was done in the meantime)
        assert body["progress"]["eta_seconds"] >= 0
        text = client.get("/metrics").get_data(as_text=True)
        assert "fraudscore_rows_left" in text and 'fraudscore_queue_depth{queue="parts"}' in text
    # Kill the process scoring a part: its part goes to the broker again, alone.
    _, part = running_part(parts_env)
    os.kill(part["worker_pid"], signal.SIGKILL)
    job = finished(db, job_id)
    assert job.state == "succeeded", job.error_message
    assert job.attempts == 1  # the plan was fitted once: the lost part alone ran again
    assert job.parts == 20 and job.rows_done == ROWS and job.progress == 100.0
    assert job.stats["total_transactions"] == ROWS and job.stats["rows_failed"] == 2
    expected, errors = in_one_piece(settings, large_upload, tmp_path)
    got = client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)
    assert got.data == expected  # every row once, in input order, byte for byte
    got_errors = client.get(f"/api/v1/jobs/{job_id}/errors", headers=headers)
    assert got_errors.data == errors
    store = open_store(settings=settings)
    assert list(store.list(f"work/{job_id}/")) == []
    results = sorted(o.key.rsplit("/", 1)[-1] for o in store.list(f"results/fay/{job_id}/"))
    assert results == ["errors.csv", "predictions.csv"]


def test_a_cancelled_large_job_stops_its_parts_and_leaves_nothing(
    client: FlaskClient,
    part_workers: dict[str, subprocess.Popen[bytes]],
    registered_library: Path,
    db: Session,
    large_upload: Path,
    settings: Settings,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'gus')}"}
    job_id = submit(client, large_upload, headers)
    wait_parts(db, job_id, done=0)  # sent out: cancelled before most parts are scored
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200 and response.json["state"] == "cancelled"
    store = open_store(settings=settings)

    def cleaned() -> bool:
        return not list(store.list(f"work/{job_id}/"))

    services.wait_for(cleaned, 60, "the parts' files to go")
    job = job_row(db, job_id)
    assert job.state == "cancelled" and job.rows_done < ROWS
    assert list(store.list(f"results/gus/{job_id}/")) == []


def test_a_small_job_sent_during_a_large_one_does_not_wait_for_its_parts(
    client: FlaskClient,
    part_workers: dict[str, subprocess.Popen[bytes]],
    registered_library: Path,
    db: Session,
    large_upload: Path,
    tmp_path: Path,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'ivy')}"}
    large = submit(client, large_upload, headers)
    wait_parts(db, large)
    small_upload = tmp_path / "small.csv"
    write_csv(simulate(with_rows(example_spec(), 1000), labeled=False), small_upload)
    small = submit(client, small_upload, headers)
    small_job, large_job = finished(db, small), finished(db, large)
    assert small_job.state == large_job.state == "succeeded"
    # The workers take from the jobs and parts queues in turn: the small job ran between two
    # parts, not after the twenty.
    assert small_job.finished_at < large_job.finished_at
    assert (small_job.finished_at - small_job.created_at).total_seconds() < 5


def test_a_whole_worker_lost_mid_part_leaves_its_parts_to_the_other(
    client: FlaskClient,
    part_workers: dict[str, subprocess.Popen[bytes]],
    parts_env: dict[str, str],
    registered_library: Path,
    db: Session,
    large_upload: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    """It leaves one worker (the tests after it use none). The dead worker's reserved part is
    not given back by the broker for an hour (its visibility timeout); the reconciler sends it
    again."""
    headers = {"Authorization": f"Bearer {create_token(db, 'hal')}"}
    job_id = submit(client, large_upload, headers)
    wait_parts(db, job_id)
    worker, _ = running_part(parts_env)
    name = worker.split("@", 1)[0]
    os.killpg(part_workers[name].pid, signal.SIGKILL)  # the main process and its pool
    job = finished(db, job_id)
    assert job.state == "succeeded", job.error_message
    assert job.attempts == 1
    expected, _ = in_one_piece(settings, large_upload, tmp_path)
    got = client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)
    assert got.data == expected
