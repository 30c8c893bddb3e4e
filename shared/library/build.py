"""Build the reference library: simulate each reference dataset, train it, register it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from shared.library.registry import model_folders
from shared.training.automl import TrainResult, train_csv
from shared.training.simulator import DatasetSpec, reference_catalog, simulate

logger = logging.getLogger(__name__)
# Datasets built at once, each in a process of its own: simulating a dataset and preparing its
# features run on one core, and XGBoost trains the same model on any number of threads, so two
# datasets side by side keep both cores of a small machine busy. Capped for memory (about
# 0.5 GB a process).
BUILD_WORKERS = 4


@dataclass
class BuildReport:
    results: list[tuple[DatasetSpec, TrainResult]]
    seconds: float


def write_csv(frame, path: Path) -> None:
    """Fast CSV output through pyarrow (pandas' writer is ~8x slower)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, path)


def library_is_built(models_dir: Path, count: int) -> bool:
    names = {spec.name for spec in reference_catalog(count)}
    return names <= {folder.name for folder in model_folders(models_dir)}


def outside_catalog(models_dir: Path, count: int) -> list[str]:
    """Model folders that no catalog dataset names (an older simulator's, or one's own)."""
    names = {spec.name for spec in reference_catalog(count)}
    return [folder.name for folder in model_folders(models_dir) if folder.name not in names]


def build_library(
    models_dir: Path,
    data_dir: Path,
    count: int = 40,
    rows_scale: float = 1.0,
    progress: Callable[[DatasetSpec], None] | None = None,
    keep: Callable[[DatasetSpec], bool] | None = None,
) -> BuildReport:
    """Simulate and train every catalog dataset (those `keep` takes) missing from models_dir,
    several at once (see BUILD_WORKERS); results in catalog order. The processes are spawned,
    so a script that calls this runs it under `if __name__ == "__main__":`."""
    started = time.perf_counter()
    done = {folder.name for folder in model_folders(models_dir)}
    specs = [s for s in reference_catalog(count, rows_scale=rows_scale) if keep is None or keep(s)]
    todo = [spec for spec in specs if spec.name not in done]
    for spec in specs:
        if spec.name in done and progress:
            progress(spec)
    results = []
    for spec, result in _built(todo, models_dir, data_dir):
        results.append((spec, result))
        if progress:
            progress(spec)
    order = {spec.name: i for i, spec in enumerate(specs)}
    results.sort(key=lambda item: order[item[0].name])
    return BuildReport(results, time.perf_counter() - started)


def _built(
    todo: list[DatasetSpec], models_dir: Path, data_dir: Path
) -> Iterator[tuple[DatasetSpec, TrainResult]]:
    """Each dataset and its result as it is done: here one by one, or side by side in spawned
    processes when there are several cores."""
    cores = os.cpu_count() or 1
    workers = min(BUILD_WORKERS, cores, len(todo))
    if workers <= 1:
        for spec in todo:
            yield spec, build_one(spec, models_dir, data_dir)
        return
    threads = max(1, cores // workers)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {
            pool.submit(build_one, spec, models_dir, data_dir, threads): spec for spec in todo
        }
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BaseException:  # Ctrl-C, a failed dataset: start no other
            pool.shutdown(cancel_futures=True)
            raise


def build_one(spec: DatasetSpec, models_dir: Path, data_dir: Path, threads: int = 0) -> TrainResult:
    """Simulate one catalog dataset into data_dir and train its model into models_dir."""
    csv_path = Path(data_dir) / f"{spec.name}.csv"
    write_csv(simulate(spec), csv_path)
    extra = {
        "domain": spec.domain,
        "simulation": {
            "seed": spec.seed,
            "style": spec.style,
            "days": spec.days,
            "timestamp_format": spec.timestamp_format,
            "scenarios": list(spec.scenarios),
        },
    }
    return train_csv(csv_path, models_dir, name=spec.name, extra_metadata=extra, threads=threads)
