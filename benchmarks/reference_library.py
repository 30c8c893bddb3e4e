"""Reference library figures: the model table, artifact size, and model load times.

    .venv/bin/python -m benchmarks.reference_library [--models-dir var/automl_models]

Builds the library first if it is missing (timed). Load times are measured against a real S3
HTTP endpoint (moto in server mode on loopback, unless S3_ENDPOINT_URL names another): cold =
download + verify + load into an empty cache, disk = a new process-like store over a warm disk
cache, memory = the same store again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.library.build import build_library, library_is_built
from shared.library.cache import ModelStore
from shared.library.registry import model_folders, populate
from shared.library.s3_migration import migrate
from shared.settings import load_settings
from shared.storage import open_store


def table(models_dir: Path) -> tuple[list[str], int]:
    lines = [
        f"| {'model':28s} | {'domain':13s} | {'rows':>6s} | fraud rate | ROC-AUC | PR-AUC |",
        f"|{'-' * 30}|{'-' * 15}|{'-' * 8}|-----------:|--------:|-------:|",
    ]
    total = 0
    for folder in model_folders(models_dir):
        meta = json.loads((folder / "metadata.json").read_text())
        m = meta["metrics"]
        total += sum(f.stat().st_size for f in folder.iterdir())
        lines.append(
            f"| {folder.name:28s} | {meta.get('domain', '?'):13s} | {m['rows']:6d} | "
            f"{m['fraud_rate']:10.4f} | {m['roc_auc']:7.3f} | {m['pr_auc']:6.3f} |"
        )
    return lines, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="cold/warm rounds per model")
    args = parser.parse_args()
    base = load_settings()
    models_dir = args.models_dir or base.models_dir
    if not library_is_built(models_dir, base.reference_library_size):
        report = build_library(
            models_dir, base.var_dir / "reference_data", count=base.reference_library_size
        )
        print(f"library build: {len(report.results)} models in {report.seconds:.1f} s")
    lines, total = table(models_dir)
    print("\n".join(lines))
    print(f"\nmodels: {len(lines) - 2}   total artifact size: {total / 1024**2:.2f} MiB")

    with tempfile.TemporaryDirectory() as tmp, _s3_endpoint() as endpoint:
        settings = load_settings(
            database_url=f"sqlite:///{tmp}/bench.db",
            s3_endpoint_url=endpoint,
            s3_region=base.s3_region or "us-east-1",
            model_cache_dir=Path(tmp) / "cache",
        )
        upgrade(settings.db_url)
        bucket = f"fraud-bench-{uuid.uuid4().hex[:8]}"
        open_store(f"s3://{bucket}/", settings=settings).prepare(create=True)
        with session_scope(settings.db_url) as session:
            populate(session, models_dir)
            outcome = migrate(session, settings, bucket, report=lambda _: None)
        assert not outcome.failed, outcome.failed
        names = outcome.done
        cold, disk, memory = [], [], []
        for _ in range(args.repeat):
            store = ModelStore(settings)
            store.clear_cache()
            for name in names:
                cold.append(_timed(store.load, name))
            fresh = ModelStore(settings)
            for name in names:
                disk.append(_timed(fresh.load, name))
            for name in names:
                memory.append(_timed(fresh.load, name))
        print(
            f"\nmodel load time over {len(names)} models x {args.repeat} rounds "
            f"(S3 endpoint {endpoint}):"
        )
        for label, values in (
            ("cold (S3 download + sha256 + load)", cold),
            ("warm disk cache (verify + load)", disk),
            ("warm memory cache", memory),
        ):
            print(
                f"  {label:36s} median {statistics.median(values) * 1000:8.2f} ms   "
                f"p95 {sorted(values)[int(0.95 * (len(values) - 1))] * 1000:8.2f} ms"
            )
        print(f"  all {len(names)} models cold: {sum(cold) / args.repeat:.2f} s")
    return 0


def _timed(fn: Callable[..., object], *args: object) -> float:
    started = time.perf_counter()
    fn(*args)
    return time.perf_counter() - started


@contextmanager
def _s3_endpoint() -> Iterator[str]:
    """S3_ENDPOINT_URL if set, else a moto server on loopback for the run."""
    configured = os.environ.get("S3_ENDPOINT_URL")
    if configured:
        yield configured
        return
    from tests.services import moto_server

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with moto_server() as url:
        yield url


if __name__ == "__main__":
    sys.exit(main())
