"""`make run` on embedded defaults: API, worker and Flower come up; Ctrl-C leaves nothing behind."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.services import REPO_ROOT, free_port, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CONFIGURED = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "OBJECT_STORE_URI",
    "VAR_DIR",
    "AUTOML_MODELS_DIR",
    "MODEL_CACHE_DIR",
    "FRAUDSCORE_ENV",
)


def get_json(url: str, auth: tuple[str, str] | None = None, **request: Any) -> tuple[int, dict]:
    """(status, JSON body) of a request (GET unless `method` says), with basic auth if given."""
    req = urllib.request.Request(url, **request)
    if auth:
        req.add_header(
            "Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        )
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.load(exc)
        except ValueError:
            return exc.code, {}


def processes_with(marker: str) -> list[int]:
    """Pids whose environment contains marker (every process `make run` started has it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if marker.encode() in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:
                continue
    return found


def make_run(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("wb") as log:
        return subprocess.Popen(
            ["make", "run"],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_ready(api: str, make: subprocess.Popen[bytes], log: Path) -> dict:
    ready_or_dead = lambda: bool(try_json(f"{api}/readyz")) or make.poll() is not None  # noqa: E731
    wait_for(ready_or_dead, 300, "make run")
    status, ready = get_json(f"{api}/readyz")
    assert status == 200, log.read_text()[-4000:]
    return ready


def ctrl_c(make: subprocess.Popen[bytes]) -> None:
    os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    make.wait(timeout=60)


def test_make_run_serves_the_system_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    api_port, flower_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURED}
    env.update(
        VAR_DIR=str(var_dir),
        API_PORT=str(api_port),
        FLOWER_PORT=str(flower_port),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
        REFERENCE_LIBRARY_SIZE="2",
        REFERENCE_ROWS_SCALE="0.1",
        API_LIVENESS_S="6",
    )
    api = f"http://127.0.0.1:{api_port}"
    first_log = tmp_path / "run1.log"
    make = make_run(env, first_log)
    try:
        ready = wait_ready(api, make, first_log)
        assert all(check["ok"] for check in ready["checks"].values())
        assert ready["checks"]["database"]["detail"] == "sqlite"
        assert ready["checks"]["object_store"]["detail"] == "file"
        assert (var_dir / "fraudscore.db").exists()

        # Flower: locked with the credentials make run printed (and kept under var/).
        found = re.search(r"\(user (\S+), password (\S+)\)", first_log.read_text())
        auth = (found.group(1), found.group(2))  # type: ignore[union-attr]
        assert (var_dir / "flower_auth").read_text().strip() == ":".join(auth)
        flower = f"http://127.0.0.1:{flower_port}"
        wait_for(lambda: bool(try_json(f"{flower}/api/workers?refresh=1", auth)), 30, "flower")
        workers = try_json(f"{flower}/api/workers", auth) or {}
        assert any(name.startswith("fraudscore@") for name in workers)
        assert get_json(f"{flower}/api/workers")[0] == 401  # no password, nothing
        assert get_json(f"{flower}/api/tasks")[0] == 401
        cross_site = get_json(
            f"{flower}/api/task/revoke/{uuid.uuid4()}?terminate=true",
            auth,
            method="POST",
            headers={"Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
        assert cross_site[0] == 403  # even with the password cached in a browser
        assert processes_with(str(var_dir))

        # A dead worker or broker is restarted, not the end of the run.
        leaders = [p for p in processes_with(str(var_dir)) if _is_group_leader(p)]
        others = (b"gunicorn", b"flower", b"redis", b"run_local", b"make")
        worker_main = next(p for p in leaders if not any(o in _cmdline(p) for o in others))
        os.kill(worker_main, signal.SIGKILL)
        redis_pid = next(  # redis rewrites its environment; it runs in var/run
            int(p.name)
            for p in Path("/proc").iterdir()
            if p.name.isdigit() and _cwd(int(p.name)) == str(var_dir / "run")
        )
        os.kill(redis_pid, signal.SIGKILL)
        wait_for(lambda: "worker exited (-9); restarting" in first_log.read_text(), 30, "restart")
        wait_for(lambda: "redis exited; restarting" in first_log.read_text(), 30, "redis restart")
        wait_for(lambda: bool(try_json(f"{api}/readyz")), 60, "ready again after the restarts")

        # An API that stops answering (its processes frozen) is restarted too.
        api_leader = next(p for p in leaders if b"gunicorn" in _cmdline(p))
        os.killpg(api_leader, signal.SIGSTOP)
        wait_for(lambda: "api has not answered /healthz" in first_log.read_text(), 30, "noticed")
        wait_for(lambda: bool(try_json(f"{api}/readyz")), 60, "the API answering again")

        # A job through the printed token: API -> private Redis -> worker -> file store.
        token = re.search(r"Token   (fs_\S+)", first_log.read_text()).group(1)  # type: ignore[union-attr]
        client = subprocess.run(
            [
                sys.executable,
                "scripts/fraudscore_client.py",
                "--url",
                api,
                "--token",
                token,
                "submit",
                "examples/transactions_sample.csv",
                "--wait",
                "--output",
                str(tmp_path / "predictions.csv"),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert client.returncode == 0, client.stderr
        assert len((tmp_path / "predictions.csv").read_text().splitlines()) == 8001
        tasks = try_json(f"{flower}/api/tasks", auth) or {}
        assert any(t["name"] == "fraudscore.score_job" for t in tasks.values())
    finally:
        ctrl_c(make)
    wait_for(lambda: not processes_with(str(var_dir)), 10, "every process to exit")
    first = first_log.read_text()
    assert "fraudscore: stopped" in first
    start = first[: first.index("Press Ctrl-C to stop.")]
    for noise in ("WARNING", "Warning", "ERROR", "no worker answered", "Inspect method"):
        assert noise not in start, f"{noise!r} on a clean start:\n{start[-3000:]}"
    # Our own lines only, one screen: no Celery banner, task list or server logs.
    for noise in ("celery@", "Registered tasks", "[INFO]", " INFO ", "gunicorn.ctl"):
        assert noise not in start, f"{noise!r} on the terminal:\n{start[-3000:]}"
    assert len(start.splitlines()) <= 24, start
    assert f"--url {api} submit examples/transactions_sample.csv" in start
    assert "building 2 reference models (first run only)" in first
    assert "registered 2 new" in first
    assert "Registered tasks" in (var_dir / "log" / "flower.log").read_text()  # kept there
    models = sorted(p.name for p in (var_dir / "automl_models").iterdir())
    assert len(models) == 2
    stamp = (var_dir / "automl_models" / models[0] / "model.ubj").stat().st_mtime_ns

    second_log = tmp_path / "run2.log"
    make = make_run(env, second_log)
    try:
        wait_ready(api, make, second_log)
    finally:
        ctrl_c(make)
    second = second_log.read_text()
    assert "building" not in second and "(2 unchanged, 0 registered)" in second
    # One development token per checkout, across restarts (kept under var/, hashed in the DB).
    assert re.search(r"Token   (fs_\S+)", second).group(1) == token  # type: ignore[union-attr]
    assert (var_dir / "dev_token").read_text().strip() == token
    assert (var_dir / "dev_token").stat().st_mode & 0o077 == 0
    assert (var_dir / "automl_models" / models[0] / "model.ubj").stat().st_mtime_ns == stamp
    wait_for(lambda: not processes_with(str(var_dir)), 10, "every process to exit")


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _is_group_leader(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def try_json(url: str, auth: tuple[str, str] | None = None) -> dict | None:
    """The body of a 200 answer, else None (not up yet, or not ready)."""
    try:
        status, body = get_json(url, auth)
    except (OSError, ValueError):
        return None
    return body if status == 200 else None


def test_make_run_uses_the_configured_services(
    tmp_path: Path, service_env: dict[str, str], db: Session
) -> None:
    api_port, flower_port = free_port(), free_port()
    env = dict(os.environ, **service_env)
    env.update(
        VAR_DIR=str(tmp_path / "var"),
        API_PORT=str(api_port),
        FLOWER_PORT=str(flower_port),
        REFERENCE_LIBRARY_SIZE="1",
        REFERENCE_ROWS_SCALE="0.1",
        AUTOML_MODELS_DIR=str(tmp_path / "models"),
    )
    log = tmp_path / "run.log"
    make = make_run(env, log)
    try:
        ready = wait_ready(f"http://127.0.0.1:{api_port}", make, log)
    finally:
        ctrl_c(make)
    assert ready["checks"]["database"]["detail"] == "postgresql"
    assert ready["checks"]["object_store"]["detail"] == "s3"
    text = log.read_text()
    assert "(private)" not in text and "redis+socket" not in text
    assert not (tmp_path / "var" / "fraudscore.db").exists()
    wait_for(lambda: not processes_with(str(tmp_path / "var")), 10, "every process to exit")
