"""Jobs survive a worker killed mid-job, and a running job stops when cancelled.

Two dedicated worker processes on a Redis db of their own, scoring in small chunks so a job
runs for seconds: long enough to kill or cancel it in the middle.
"""

from __future__ import annotations

import io
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

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
from shared.service.queue import create_celery
from shared.settings import Settings, load_settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows
from tests import services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS, CHUNK = 40_000, 100


@pytest.fixture(scope="module")
def slow_env(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    url = services.TEST_REDIS_URL.rsplit("/", 1)[0] + "/12"
    redis.Redis.from_url(url).flushdb()
    yield {**service_env, "REDIS_URL": url, "SCORE_CHUNK_ROWS": str(CHUNK)}
    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="module")
def slow_workers(
    slow_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    with services.workers(slow_env, "slow", 2, tmp_path_factory.mktemp("slow-workers")) as procs:
        yield list(procs)


@pytest.fixture
def client(slow_env: dict[str, str]) -> FlaskClient:
    return create_app({"redis_url": slow_env["REDIS_URL"]}).test_client()


@pytest.fixture
def big_upload(tmp_path: Path) -> Path:
    path = tmp_path / "big.csv"
    write_csv(simulate(with_rows(example_spec(), ROWS), labeled=False), path)
    return path


def submit(client: FlaskClient, path: Path, headers: dict[str, str]) -> str:
    response = client.post(
        "/api/v1/jobs",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(path.read_bytes()), path.name)},
    )
    assert response.status_code == 202, response.json
    return response.json["job_id"]


def job_row(db: Session, job_id: str) -> Job:
    db.expire_all()
    return db.get(Job, uuid.UUID(job_id))


def wait_running(db: Session, job_id: str) -> Job:
    def started() -> bool:
        job = job_row(db, job_id)
        return job.state == "running" and job.stage == "scoring" and job.rows_done > 0

    services.wait_for(started, 60, "the job to be scoring")
    return job_row(db, job_id)


def test_a_worker_killed_mid_job_leaves_the_job_to_finish_once_elsewhere(
    client: FlaskClient,
    slow_workers: list[str],
    slow_env: dict[str, str],
    registered_library: Path,
    db: Session,
    big_upload: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'dora')}"}
    job_id = submit(client, big_upload, headers)
    wait_running(db, job_id)
    celery = create_celery(load_settings(redis_url=slow_env["REDIS_URL"]))
    active = celery.control.inspect(timeout=0.5).active() or {}
    running = [(w, t) for w, tasks in active.items() for t in tasks if t["args"] == [job_id]]
    assert len(running) == 1, active
    _, task = running[0]
    os.kill(task["worker_pid"], signal.SIGKILL)  # the process running the job dies at once

    def finished() -> bool:
        return job_row(db, job_id).state in ("succeeded", "failed")

    services.wait_for(finished, 120, "the job to finish after the kill")
    job = job_row(db, job_id)
    assert job.state == "succeeded", job.error_message
    # Run once more after the kill: not lost, and not run a third time.
    assert job.attempts == 2, (job.attempts, active)
    store = open_store(settings=settings)
    results = [o.key for o in store.list(f"results/dora/{job_id}/")]
    assert results == [f"results/dora/{job_id}/predictions.csv"]  # one file, no leftovers
    offline = tmp_path / "offline.csv"
    options = ScoreOptions(
        chunk_rows=CHUNK,
        high_threshold=settings.risk_high_threshold,
        medium_threshold=settings.risk_medium_threshold,
    )
    Pipeline(RegistrySource(settings, ModelStore(settings)), options).run(big_upload, offline)
    downloaded = client.get(f"/api/v1/jobs/{job_id}/result", headers=headers)
    assert downloaded.data == offline.read_bytes()


def test_a_running_job_stops_at_the_next_chunk_when_cancelled(
    client: FlaskClient,
    slow_workers: list[str],
    registered_library: Path,
    db: Session,
    big_upload: Path,
    settings: Settings,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'erin')}"}
    job_id = submit(client, big_upload, headers)
    done_before = wait_running(db, job_id).rows_done
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 200 and response.json["state"] == "cancelled"
    services.wait_for(lambda: job_row(db, job_id).finished_at is not None, 30, "the stop")
    job = job_row(db, job_id)
    assert job.state == "cancelled" and job.rows_done < ROWS and job.rows_done >= done_before
    assert list(open_store(settings=settings).list(f"results/erin/{job_id}/")) == []
    time.sleep(1)
    assert job_row(db, job_id).state == "cancelled"
