"""Build the reference library: simulate each reference dataset, train it, register it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from shared.library.registry import model_folders
from shared.training.automl import TrainResult, train_csv
from shared.training.simulator import DatasetSpec, reference_catalog, simulate

logger = logging.getLogger(__name__)


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
    """Simulate and train every catalog dataset (those `keep` takes) missing from models_dir."""
    started = time.perf_counter()
    done = {folder.name for folder in model_folders(models_dir)}
    results = []
    for spec in reference_catalog(count, rows_scale=rows_scale):
        if keep is not None and not keep(spec):
            continue
        if spec.name not in done:
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
            result = train_csv(csv_path, models_dir, name=spec.name, extra_metadata=extra)
            results.append((spec, result))
        if progress:
            progress(spec)
    return BuildReport(results, time.perf_counter() - started)
