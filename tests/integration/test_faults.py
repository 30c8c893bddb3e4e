"""The fault matrix: each test kills or stops a real process while jobs are queued and running,
and every job must end `succeeded` exactly once or `failed` with a reason, in bounded time.

A rig of its own per test: a private redis-server (no persistence: what it loses, the
reconciler must resend), a TCP proxy process between the workers and PostgreSQL (killing it is
the database going away for them), one worker with fast recovery settings, and the API app
talking through the same proxy. Recovery times are printed (`pytest -s`).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api import create_app
from shared.db.models import Job
from shared.library.build import write_csv
from shared.service.auth import create_token
from shared.service.queue import create_celery
from shared.service.runner import TEMP_FOLDER
from shared.settings import Settings, load_settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows
from tests import services

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROWS, CHUNK = 50_000, 250  # a job runs for several seconds: time to fault it
FAST_RECOVERY = {
    "HEARTBEAT_S": "1",
    "STALE_AFTER_S": "4",
    "SWEEP_S": "1",
    "QUEUED_GRACE_S": "3",
    "MAX_ATTEMPTS": "3",
    "SCORE_CHUNK_ROWS": str(CHUNK),
}
BOUND_S = 120  # every job ends within this long after its fault clears


def _kill(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class Rig:
    logs: Path
    pg_host: str
    pg_port: int
    redis_port: int = field(default_factory=services.free_port)
    proxy_port: int = field(default_factory=services.free_port)
    redis: subprocess.Popen[bytes] | None = None
    proxy: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def start_redis(self) -> None:
        args = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1"]
        args += ["--save", "", "--appendonly", "no"]
        self.redis = services.spawn(args, None, self.logs / "redis.log")
        client = redis.Redis.from_url(self.redis_url)
        services.wait_for(lambda: _answers(client), 15, "private redis")

    def start_proxy(self) -> None:
        args = [sys.executable, "-m", "tests.tcp_proxy", str(self.proxy_port)]
        args += [self.pg_host, str(self.pg_port)]
        self.proxy = services.spawn(args, None, self.logs / "proxy.log")  # from the repo root
        services.wait_for(lambda: services.listening(self.proxy_port), 15, "database proxy")

    def start_worker(self) -> subprocess.Popen[bytes]:
        name = f"fault-{uuid.uuid4().hex[:6]}"
        proc = services.start_worker(self.env, name, self.logs / f"{name}.log")
        celery = create_celery(load_settings(redis_url=self.redis_url))

        def up() -> bool:
            return any(name in next(iter(r)) for r in celery.control.ping(timeout=0.5))

        services.wait_for(up, 90, "fault worker")
        self.workers.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.workers:
            services.stop_process(proc)
        _kill(self.proxy)
        _kill(self.redis)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def rig_db(small_library: Path, tmp_path: Path) -> Iterator[str]:
    """A database of the rig's own (so no other test's worker reconciles its jobs), migrated,
    with the small library registered."""
    import shutil

    from shared.db.migrate import upgrade
    from shared.db.session import session_scope
    from shared.library.registry import populate

    with services.postgres_database() as url:
        upgrade(url)
        root = tmp_path / "automl_models"
        shutil.copytree(small_library, root)
        with session_scope(url) as session:
            populate(session, root)
        yield url


@pytest.fixture
def db(rig_db: str) -> Iterator[Session]:
    """A session on the rig's database (the tests' usual `db` fixture, replaced)."""
    from shared.db.session import session_scope

    with session_scope(rig_db) as session:
        yield session


@pytest.fixture
def rig(service_env: dict[str, str], rig_db: str, tmp_path: Path) -> Iterator[Rig]:
    url = make_url(rig_db)
    rig = Rig(tmp_path, url.host or "127.0.0.1", url.port or 5432)
    via_proxy = url.set(host="127.0.0.1", port=rig.proxy_port).render_as_string(hide_password=False)
    rig.env = {
        **os.environ,
        **service_env,
        **FAST_RECOVERY,
        "REDIS_URL": rig.redis_url,
        "DATABASE_URL": via_proxy,
    }
    try:
        rig.start_redis()
        rig.start_proxy()
        rig.start_worker()
        yield rig
    finally:
        rig.stop()


@pytest.fixture
def api(rig: Rig) -> FlaskClient:
    config = {"redis_url": rig.redis_url, "database_url": rig.env["DATABASE_URL"]}
    return create_app(config).test_client()


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "fault.csv"
    write_csv(simulate(with_rows(example_spec(), ROWS), labeled=False), path)
    return path


def _submit(api: FlaskClient, path: Path, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return api.post(
        "/api/v1/jobs",
        headers=headers,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(path.read_bytes()), path.name)},
    )


def _jobs(db: Session, owner: str) -> list[Job]:
    db.expire_all()
    return list(db.scalars(select(Job).where(Job.owner == owner)).all())


def _pid_of(name: str) -> int | None:
    found = TEMP_FOLDER.match(name)
    return int(found.group(2)) if found else None


def _wait_scoring(db: Session, owner: str) -> None:
    def scoring() -> bool:
        return any(j.state == "running" and j.rows_done > 0 for j in _jobs(db, owner))

    services.wait_for(scoring, 60, "a job to be scoring")


def _wait_all_finished(db: Session, owner: str, count: int) -> float:
    """Seconds until every job of owner is finished (BOUND_S at most)."""
    started = time.monotonic()

    def finished() -> bool:
        jobs = _jobs(db, owner)
        return len(jobs) == count and all(j.finished_at is not None for j in jobs)

    services.wait_for(finished, BOUND_S, "every job to finish")
    return time.monotonic() - started


def _each_succeeded_once(db: Session, owner: str, settings: Settings) -> None:
    store = open_store(settings=settings)
    for job in _jobs(db, owner):
        assert job.state == "succeeded", (job.id, job.state, job.error_message)
        keys = [o.key for o in store.list(f"results/{owner}/{job.id}/")]
        assert keys == [f"results/{owner}/{job.id}/predictions.csv"]  # once, no leftovers
        assert job.rows_done == job.rows_total > ROWS * 0.99


def test_database_away_20_s_mid_job(
    rig: Rig, api: FlaskClient, db: Session, upload: Path, settings: Settings
) -> None:
    owner = "fault-db"
    headers = {"Authorization": f"Bearer {create_token(db, owner)}"}
    ids = [_submit(api, upload, headers).json["job_id"] for _ in range(3)]
    _wait_scoring(db, owner)
    _kill(rig.proxy)  # PostgreSQL is gone for the workers and the API
    time.sleep(1)
    during = api.get(f"/api/v1/jobs/{ids[0]}", headers=headers)
    assert during.status_code == 503 and during.headers["Retry-After"]
    assert "database" in during.json["error"]["message"]
    time.sleep(19)
    rig.start_proxy()
    recovery = _wait_all_finished(db, owner, 3)
    print(f"\nfault matrix: database away 20 s: 3 jobs done {recovery:.1f} s after it came back")
    _each_succeeded_once(db, owner, settings)


def test_broker_killed_with_jobs_queued_and_running(
    rig: Rig, api: FlaskClient, db: Session, upload: Path, settings: Settings
) -> None:
    owner = "fault-broker"
    headers = {"Authorization": f"Bearer {create_token(db, owner)}"}
    for _ in range(4):
        assert _submit(api, upload, headers).status_code == 202
    _wait_scoring(db, owner)
    _kill(rig.redis)  # the queued messages die with it (no persistence)
    started = time.monotonic()
    refused = _submit(api, upload, headers)
    assert refused.status_code == 503 and refused.headers["Retry-After"]
    assert time.monotonic() - started < 10  # answered quickly, not after a long hang
    assert len(_jobs(db, owner)) == 4  # the refused submit left no job behind
    time.sleep(5)
    rig.start_redis()
    recovery = _wait_all_finished(db, owner, 4)
    print(f"\nfault matrix: broker killed 5 s: 4 jobs done {recovery:.1f} s after it came back")
    _each_succeeded_once(db, owner, settings)


def test_worker_main_process_killed_mid_job(
    rig: Rig, api: FlaskClient, db: Session, upload: Path, settings: Settings
) -> None:
    owner = "fault-worker"
    headers = {"Authorization": f"Bearer {create_token(db, owner)}"}
    assert _submit(api, upload, headers).status_code == 202
    _wait_scoring(db, owner)
    first = rig.workers[0]
    os.kill(first.pid, signal.SIGKILL)  # the main process only; its pool child is orphaned
    rig.start_worker()  # what make run (or a supervisor) does
    recovery = _wait_all_finished(db, owner, 1)
    print(f"\nfault matrix: worker main killed: job done {recovery:.1f} s after the new worker")
    _each_succeeded_once(db, owner, settings)
    services.stop_process(first)  # the orphan, if it is still there


def test_a_poison_file_that_kills_its_worker_fails_after_max_attempts(
    rig: Rig, api: FlaskClient, db: Session, upload: Path, settings: Settings
) -> None:
    owner = "fault-poison"
    headers = {"Authorization": f"Bearer {create_token(db, owner)}"}
    job_id = _submit(api, upload, headers).json["job_id"]
    celery = create_celery(load_settings(redis_url=rig.redis_url))
    killed: set[int] = set()
    started = time.monotonic()
    while time.monotonic() - started < BOUND_S:
        job = db.get(Job, uuid.UUID(job_id))
        db.refresh(job)
        if job.finished_at is not None:
            break
        for tasks in (celery.control.inspect(timeout=0.5).active() or {}).values():
            for task in tasks:
                pid = task["worker_pid"]
                if task["args"] == [job_id] and pid not in killed:  # as a poison file would
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                        killed.add(pid)
        time.sleep(0.3)
    took = time.monotonic() - started
    print(f"\nfault matrix: poison file: failed after {len(killed)} worker deaths in {took:.1f} s")
    db.refresh(job)
    assert job.state == "failed" and job.attempts == 3, (job.state, job.attempts)
    assert job.error_message.startswith("gave up after 3 attempts"), job.error_message
    # One per attempt; a fourth is possible: the message redelivered after the third death can
    # show as active for a moment before its worker refuses the spent job.
    assert 3 <= len(killed) <= 4

    def abandoned() -> list[str]:  # temp folders of the killed processes
        return [p.name for p in Path(tempfile.gettempdir()).iterdir() if _pid_of(p.name) in killed]

    services.wait_for(lambda: not abandoned(), 10, "the reconciler to sweep the temp folders")
    assert list(open_store(settings=settings).list(f"results/{owner}/{job_id}/")) == []


def test_the_api_killed_mid_upload_leaves_nothing_once_restarted(
    service_env: dict[str, str], rig_db: str, db: Session, tmp_path: Path
) -> None:
    import socket

    store_root = tmp_path / "store"
    port = services.free_port()
    env = {
        **os.environ,
        **service_env,
        "OBJECT_STORE_URI": store_root.as_uri(),
        "DATABASE_URL": rig_db,
        "API_PORT": str(port),
        # The default age (an hour): the killed writer's pid, not its age, gets it swept.
    }
    token = create_token(db, "fault-upload")
    api = services.start_api(env, tmp_path / "api.log", port)
    boundary = "fault-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    total = 100 * 1024 * 1024
    request = (
        f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {len(head) + total}\r\n\r\n"
    ).encode()
    piece = b"amount\n" + b"12.5\n" * 200_000
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request + head)
        for _ in range(10):  # ~10 MB of the 100 MB
            conn.sendall(piece)

        def partial() -> list[Path]:
            return list(store_root.rglob(".tmp-*.part")) if store_root.exists() else []

        services.wait_for(lambda: bool(partial()), 30, "the upload to be half written")
        os.killpg(api.pid, signal.SIGKILL)  # the API dies mid-upload
        api.wait(timeout=10)
    services.wait_for(
        lambda: not services.listening(port), 30, "the killed API to let go of its port"
    )
    assert partial()  # what a killed API leaves behind
    started = time.monotonic()
    api = services.start_api(env, tmp_path / "api2.log", port)
    try:
        assert not partial()  # swept when the API started again
        took = time.monotonic() - started
        print(f"\nfault matrix: API killed mid-upload: partial swept {took:.1f} s after restart")
        assert _jobs(db, "fault-upload") == []  # no job was recorded for it
    finally:
        services.stop_process(api)
