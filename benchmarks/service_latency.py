"""The running service: submit-to-succeeded latency and upload throughput.

    .venv/bin/python -m benchmarks.service_latency [--jobs 20] [--rows 5000] [--upload-mb 100]

Starts the whole system with `scripts/run_local.py` on embedded defaults in a temporary
VAR_DIR (the reference library of AUTOML_MODELS_DIR, default var/automl_models, is reused),
warms the workers with one job, then submits --jobs files of --rows rows one after another and
times each from the start of the upload to the poll that sees `succeeded` (polling every 50 ms).
Last, it streams a --upload-mb file to the API and reports MB/s and the API processes' peak
RSS. Needs the reference library (`make run` once).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.scoring_speed import generate
from scripts.fraudscore_client import Client
from shared.db.session import session_scope
from shared.library.build import write_csv
from shared.service.auth import create_token
from shared.settings import get_settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows
from tests.services import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def marked_pids(marker: str, command: bytes) -> list[int]:
    """Processes started for this run whose command line holds `command` (their environment
    holds the marker: the run's VAR_DIR)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (
                command in (proc / "cmdline").read_bytes()
                and marker.encode() in (proc / "environ").read_bytes()
            ):
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def status_mib(pid: int, field: str = "VmHWM") -> float:
    """A memory figure of /proc/PID/status (VmHWM: peak resident, VmRSS: resident now), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class SystemDown(RuntimeError):
    """`run_local.py` exited before the system was up (the end of its output)."""


@contextmanager
def running_system(var: Path, **settings: str) -> Iterator[Client]:
    """The whole system (`scripts/run_local.py`) on embedded defaults in `var`, with the
    reference library of AUTOML_MODELS_DIR and these settings; a client with a token."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "OBJECT_STORE_URI", "CELERY_BROKER_URL")
    }
    env.update(
        VAR_DIR=str(var),
        API_PORT=str(port),
        FLOWER_PORT=str(free_port()),
        AUTOML_MODELS_DIR=str(get_settings().models_dir),
        MODEL_CACHE_DIR=str(var / "cache"),
        TQDM_DISABLE="1",
        **settings,
    )
    var.mkdir(parents=True, exist_ok=True)
    log_path = var / "run.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "scripts/run_local.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: b"fraudscore is up" in log_path.read_bytes() or proc.poll() is not None,
            600,
            "the system",
        )
        if proc.poll() is not None:
            raise SystemDown(log_path.read_text()[-3000:])
        with session_scope(f"sqlite:///{var / 'fraudscore.db'}") as session:
            token = create_token(session, "bench")
        yield Client(f"http://127.0.0.1:{port}", token)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)


def timed_job(client: Client, path: Path) -> float:
    started = time.perf_counter()
    job_id = client.submit(path, {}, None)["job_id"]
    while True:
        job = client.json("GET", f"/api/v1/jobs/{job_id}")
        if job["state"] in ("succeeded", "failed", "cancelled"):
            if job["state"] != "succeeded":
                raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}")
            return time.perf_counter() - started
        time.sleep(0.05)


def measure(args: argparse.Namespace, client: Client, tmp: Path, var: Path) -> None:
    """The small jobs' latency, then the large upload's throughput and the API's memory."""
    small = tmp / "small.csv"
    write_csv(simulate(with_rows(example_spec(), args.rows), labeled=False), small)
    os.environ["TQDM_DISABLE"] = "1"
    timed_job(client, small)  # warm-up: models into every worker process
    timed_job(client, small)
    latencies = sorted(timed_job(client, small) for _ in range(args.jobs))
    p95 = latencies[max(0, round(0.95 * len(latencies)) - 1)]
    print(f"submit-to-succeeded, {args.rows}-row file, warm worker, {args.jobs} jobs:")
    print(
        f"  p50 {statistics.median(latencies) * 1000:.0f} ms   p95 {p95 * 1000:.0f} ms"
        f"   min {latencies[0] * 1000:.0f} ms   max {latencies[-1] * 1000:.0f} ms"
    )

    big = tmp / "big.csv"
    source = generate(1_000_000)
    target = args.upload_mb * 1024 * 1024
    with big.open("wb") as out:  # repeat a generated file up to the size asked
        while out.tell() < target:
            with source.open("rb") as chunk:
                out.write(chunk.read(target - out.tell()))
    size = big.stat().st_size
    started = time.perf_counter()
    accepted = client.submit(big, {}, None)
    seconds = time.perf_counter() - started
    client.json("DELETE", f"/api/v1/jobs/{accepted['job_id']}")
    rss = {pid: status_mib(pid) for pid in marked_pids(str(var), b"gunicorn")}
    store = open_store((var / "object_store").as_uri())
    stored = sum(o.size for o in store.list("uploads/bench/") if o.size > 10 * 1024**2)
    assert stored == size, f"stored {stored} bytes of {size}"
    print(
        f"upload of {size / 1e6:.0f} MB: {seconds:.2f} s, {size / 1e6 / seconds:.0f} MB/s"
        " (streamed to the embedded file:// object store)"
    )
    print(
        "  API peak RSS per process (MiB): "
        + ", ".join(f"{v:.0f}" for v in sorted(rss.values(), reverse=True))
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--upload-mb", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fs-bench-") as tmp:
        var = Path(tmp) / "var"
        try:
            with running_system(var) as client:
                measure(args, client, Path(tmp), var)
        except SystemDown as exc:
            print(exc)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
