"""Build the reference library: simulate each reference dataset, train it, register it."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.engine.bundle import METADATA_FILE
from shared.library.registry import model_folders
from shared.training.automl import TrainResult, train_csv
from shared.training.simulator import DatasetSpec, reference_catalog, simulate

logger = logging.getLogger(__name__)
# Datasets built at once, each in a process of its own: simulating a dataset and preparing its
# features run on one core, and XGBoost trains the same model on any number of threads, so two
# datasets side by side keep both cores of a small machine busy. Capped for memory (about
# 0.5 GB a process).
BUILD_WORKERS = 4
# Part of every model folder's recipe: bump it when a change to the simulator or to training
# gives other models for unchanged catalog specs, and existing libraries are built again.
LIBRARY_VERSION = 1


@dataclass
class BuildReport:
    results: list[tuple[DatasetSpec, TrainResult]]
    seconds: float


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Fast CSV output through pyarrow (pandas' writer is ~8x slower)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pacsv.write_csv(table, path)


def recipe(spec: DatasetSpec) -> str:
    """A digest of what makes a catalog dataset's model: its spec and LIBRARY_VERSION."""
    text = json.dumps({**asdict(spec), "library_version": LIBRARY_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _recipe_of(folder: Path) -> str | None:
    try:
        metadata = json.loads((folder / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    return (metadata.get("simulation") or {}).get("recipe")


def to_build(models_dir: Path, specs: list[DatasetSpec]) -> tuple[list[DatasetSpec], list[str]]:
    """(the specs whose model is missing or was built from another recipe, the names of the
    latter): a folder left by an older catalog or simulator under a current name is rebuilt."""
    folders = {folder.name: folder for folder in model_folders(models_dir)}
    todo = [s for s in specs if s.name not in folders or _recipe_of(folders[s.name]) != recipe(s)]
    return todo, [s.name for s in todo if s.name in folders]


def library_is_built(models_dir: Path, count: int, rows_scale: float = 1.0) -> bool:
    """Is every catalog model in models_dir, built from its current recipe?"""
    return not to_build(models_dir, reference_catalog(count, rows_scale=rows_scale))[0]


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
    """Simulate and train every catalog dataset (those `keep` takes) missing from models_dir or
    built from another recipe, several at once (see BUILD_WORKERS); results in catalog order.
    The processes are spawned, so a script that calls this runs it under
    `if __name__ == "__main__":`."""
    started = time.perf_counter()
    specs = [s for s in reference_catalog(count, rows_scale=rows_scale) if keep is None or keep(s)]
    todo, stale = to_build(models_dir, specs)
    if stale:
        names = ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else "")
        logger.warning(
            "%d model folder(s) built from another recipe, rebuilt: %s", len(stale), names
        )
    for spec in specs:
        if spec not in todo and progress:
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
            "recipe": recipe(spec),
        },
    }
    return train_csv(csv_path, models_dir, name=spec.name, extra_metadata=extra, threads=threads)
