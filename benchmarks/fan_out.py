"""One large file across worker processes: speed-up, identical output, memory per worker.

    .venv/bin/python -m benchmarks.fan_out [--rows 2000000] [--workers 1 2 4] [--large-rows 0]
                                           [--rounds 1]

For each worker-process count, starts the whole system with `scripts/run_local.py` on embedded
defaults in a temporary VAR_DIR (WORKER_CONCURRENCY=n, SCORE_THREADS=1: one thread per process,
a stand-in for one core per machine), warms it with a small job per process, then submits the
--rows file through the API and times it from the start of the upload to the poll (every 0.2 s)
that sees `succeeded`; the plan step ends when the job reports its parts, the first part is
sent when a worker's log says it received it. Every run's predictions must be byte-identical
(sha256); with 1 and 2 processes, Amdahl's bound on the speed-up follows from the time one
process works alone. The pool processes' resident memory is sampled every 0.1 s: the peak
during the plan step, and every process's peak while the parts were scored; their CPU seconds
over the run's seconds are the cores they kept busy. With --rounds N the runs are repeated N
times in turn (each round's speed-up against its own first run) and the median speed-up
printed: on a shared machine one pair of runs can be off by 0.2 either way. With --large-rows
N, one more run (2 processes) on an N-row file, with a 5,000-row job sent during its plan step
and another during its parts. Needs the reference library (`make run` once); the workers' logs
are kept under var/bench/fan_out_logs.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

os.environ["TQDM_DISABLE"] = "1"  # the client's progress bars, before it imports tqdm

import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.scoring_speed import generate
from benchmarks.service_latency import marked_pids, running_system, status_mib
from scripts.fraudscore_client import Client
from shared.library.build import write_csv
from shared.settings import get_settings
from shared.training.simulator import example_spec, simulate, with_rows

ROOT = Path(__file__).resolve().parent.parent


BLOCK_ROWS = 2_000_000  # the simulator's cost grows with customers x terminals: a larger file
# repeats one simulated block, each copy with its own card, terminal and transaction ids


def generate_large(rows: int) -> Path:
    """A simulated file of `rows` rows (copies of a 2M-row block past 2M), under var/bench."""
    if rows <= BLOCK_ROWS:
        return generate(rows)
    path = get_settings().var_dir / "bench" / f"blocks_{rows}.csv"
    if path.exists():
        return path
    started, tmp = time.perf_counter(), path.with_name(path.name + ".part")
    frame = simulate(with_rows(example_spec(), BLOCK_ROWS), labeled=False)
    options = pacsv.WriteOptions(include_header=True)
    with tmp.open("wb") as out:
        for block in range(-(-rows // BLOCK_ROWS)):
            copy = frame.head(rows - block * BLOCK_ROWS).copy()
            for column in ("ref_operacion", "id_tarjeta", "id_comercio"):
                copy[column] = f"B{block}" + copy[column].astype(str)
            pacsv.write_csv(pa.Table.from_pandas(copy, preserve_index=False), out, options)
            options = pacsv.WriteOptions(include_header=False)
    tmp.replace(path)
    print(f"generated {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def pool_pids(marker: str) -> list[int]:
    """The Celery pool processes started for this run: children of its worker's main process."""
    pids = []
    for pid in marked_pids(marker, b"worker"):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if (
                b"flower" not in cmdline
                and b"worker" in Path(f"/proc/{parent}/cmdline").read_bytes()
            ):
                pids.append(pid)
        except (OSError, ValueError, IndexError):
            continue
    return pids


def pool_cpu(marker: str) -> float:
    """CPU seconds the run's pool processes have used (user and system, all their threads)."""
    total = 0.0
    for pid in pool_pids(marker):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            continue
    return total


@dataclass
class Memory:
    """Peak resident MiB per pool process, during the plan step and after it."""

    marker: str
    planning: bool = True
    plan: dict[int, float] = field(default_factory=dict)
    parts: dict[int, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        pids, ticks = pool_pids(self.marker), 0
        while not self.stop.wait(0.1):
            ticks += 1
            if ticks % 20 == 0:  # a process the pool replaced (looking is not free: /proc)
                pids = pool_pids(self.marker)
            peaks = self.plan if self.planning else self.parts
            for pid in pids:
                peaks[pid] = max(peaks.get(pid, 0.0), status_mib(pid, "VmRSS"))


@contextmanager
def system(workers: int, var: Path) -> Iterator[Client]:
    """The whole system on embedded defaults, with `workers` pool processes of one thread; the
    workers' logs kept for a timeline."""
    try:
        with running_system(var, WORKER_CONCURRENCY=str(workers), SCORE_THREADS="1") as client:
            yield client
    finally:
        keep = get_settings().var_dir / "bench" / "fan_out_logs" / var.name
        shutil.rmtree(keep, ignore_errors=True)
        if (var / "log").exists():
            shutil.copytree(var / "log", keep)


def run_job(
    client: Client, path: Path, out: Path, memory: Memory | None = None
) -> dict[str, float | str]:
    """Submit, poll every 0.2 s; seconds to the parts and to `succeeded`, the result's sha256."""
    started, wall = time.perf_counter(), time.time()
    job_id = client.submit(path, {}, None)["job_id"]
    uploaded = time.perf_counter() - started
    planned = None
    while True:
        job = client.json("GET", f"/api/v1/jobs/{job_id}")
        if planned is None and job["progress"].get("parts"):
            planned = time.perf_counter() - started
            if memory is not None:
                memory.planning = False
        if job["state"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)
    seconds = time.perf_counter() - started
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job_id} {job['state']}: {job.get('error')}")
    client.download(job_id, out)
    digest = hashlib.sha256()
    with out.open("rb") as body:
        for chunk in iter(lambda: body.read(1 << 20), b""):
            digest.update(chunk)
    out.unlink()
    claimed = datetime.fromisoformat(job["started_at"]).timestamp() - wall
    return {
        "seconds": seconds,
        "job_id": job_id,
        "wall": wall,
        "upload": uploaded,
        "claimed": claimed,
        "plan": planned if planned is not None else float("nan"),
        "parts": job["progress"].get("parts") or 0,
        "sha256": digest.hexdigest(),
    }


def small_jobs(client: Client, small: Path, var: Path, memory: Memory) -> list[float]:
    """Seconds of a small job sent 3 s into the large one (its plan step), and of another
    sent 3 s after the large one's parts went out."""
    other = Client(client.url, client.token)
    time.sleep(3)
    seconds = [float(run_job(other, small, var / "small-1.csv")["seconds"])]
    while memory.planning and not memory.stop.is_set():
        time.sleep(0.05)
    time.sleep(3)
    if not memory.stop.is_set():
        seconds.append(float(run_job(other, small, var / "small-2.csv")["seconds"]))
    return seconds


def measure(
    workers: int, path: Path, small: Path, var: Path, beside: bool = False
) -> dict[str, object]:
    """One run of the large file; with `beside`, small jobs sent while it runs."""
    with system(workers, var) as client:
        for _ in range(workers):  # every pool process warm
            run_job(client, small, var / "out.csv")
        memory = Memory(str(var))
        sampler = threading.Thread(target=memory.sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(1) as side:
            smalls = side.submit(small_jobs, client, small, var, memory) if beside else None
            cpu = pool_cpu(str(var))
            result: dict[str, object] = dict(run_job(client, path, var / "out.csv", memory))
            memory.stop.set()
            result["cores"] = (pool_cpu(str(var)) - cpu) / float(result["seconds"])  # type: ignore[arg-type]
            sent = first_part_at(var / "log" / "worker.log", str(result["job_id"]))
            result["first_part"] = sent - float(result["wall"])  # type: ignore[arg-type]
            result["small"] = smalls.result() if smalls is not None else []
        sampler.join()
    result["plan_rss"] = max(memory.plan.values(), default=0.0)
    result["parts_rss"] = sorted(memory.parts.values(), reverse=True)
    return result


def first_part_at(log: Path, job_id: str) -> float:
    """When a worker received the job's first part (epoch seconds, from its log), or NaN."""
    for line in log.read_text(errors="replace").splitlines():
        if f"score_part[{job_id}." in line and line.endswith("received"):
            return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return float("nan")


def bound(one: dict[str, object], many: dict[str, object], workers: int) -> str:
    """Amdahl's bound: until the first part is sent (upload, plan step) one process works
    alone; the rest of the one-process run's work at best goes `workers` times faster."""
    seconds, alone = float(one["seconds"]), float(many["first_part"])  # type: ignore[arg-type]
    best = seconds / (alone + (seconds - alone) / workers)
    return (
        f"  until the first part is sent one process works alone ({alone:.1f} s of the "
        f"{workers}-process run): against {seconds:.1f} s for 1 process, {workers} reach at "
        f"best {best:.2f}x"
    )


def report(rows: int, workers: int, r: dict[str, object], base: float) -> None:
    keys = ("seconds", "upload", "plan", "claimed", "first_part")
    t = {k: float(r[k]) for k in keys}  # type: ignore[arg-type]
    seconds = t["seconds"]
    parts_rss = ", ".join(f"{v:.0f}" for v in r["parts_rss"])  # type: ignore[attr-defined]
    print(
        f"  {workers} process{'es' if workers > 1 else '  '}: {seconds:6.1f} s  "
        f"{rows / seconds / 1000:6.0f}k rows/s  speed-up {base / seconds:4.2f}  "
        f"(upload {t['upload']:.1f} s, plan step {t['plan'] - t['claimed']:.1f} s, "
        f"first part sent at {t['first_part']:.1f} s, parts and merge "
        f"{seconds - t['plan']:.1f} s)  parts {r['parts']}  cores busy "
        f"{float(r['cores']):.2f}  "  # type: ignore[arg-type]
        f"peak RSS MiB: plan step {float(r['plan_rss']):.0f}, "  # type: ignore[arg-type]
        f"scoring parts {parts_rss}  sha256 {str(r['sha256'])[:12]}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--large-rows", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the runs (a noisy machine)")
    args = parser.parse_args()
    os.environ["TQDM_DISABLE"] = "1"
    path = generate(args.rows)
    with tempfile.TemporaryDirectory(prefix="fs-fanout-") as tmp:
        small = Path(tmp) / "small.csv"
        write_csv(simulate(with_rows(example_spec(), 5000), labeled=False), small)
        print(f"{args.rows:,}-row file, submit-to-succeeded through the API, SCORE_THREADS=1:")
        digests: set[object] = set()
        ratios: dict[int, list[float]] = {}
        for round_ in range(1, args.rounds + 1):
            if args.rounds > 1:
                print(f" round {round_} of {args.rounds}:")
            results = {}
            for workers in args.workers:
                results[workers] = measure(workers, path, small, Path(tmp) / f"var{workers}")
                base = float(results[args.workers[0]]["seconds"])  # type: ignore[arg-type]
                report(args.rows, workers, results[workers], base)
                seconds = float(results[workers]["seconds"])  # type: ignore[arg-type]
                ratios.setdefault(workers, []).append(base / seconds)
            digests |= {r["sha256"] for r in results.values()}
            if 1 in results and 2 in results:
                print(bound(results[1], results[2], 2))
        if args.rounds > 1:
            for workers, values in list(ratios.items())[1:]:  # (the first is the base)
                middle, low, high = statistics.median(values), min(values), max(values)
                print(
                    f"  {workers} process(es) over {args.rounds} rounds: speed-up median "
                    f"{middle:.2f} (min {low:.2f}, max {high:.2f})"
                )
        print(f"  predictions identical across runs: {len(digests) == 1}")
        if args.large_rows:
            large = generate_large(args.large_rows)
            print(f"{args.large_rows:,}-row file, 2 processes:")
            r = measure(2, large, small, Path(tmp) / "var-large", beside=True)
            report(args.large_rows, 2, r, float(r["seconds"]))  # type: ignore[arg-type]
            during = ", ".join(f"{v:.2f} s" for v in r["small"])  # type: ignore[attr-defined]
            print(f"  5,000-row jobs sent during it (plan step, parts): {during}")
    return 0 if len(digests) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
