"""Scoring speed on a generated CSV (default 1,000,000 rows), against the bare-library floor.

    .venv/bin/python -m benchmarks.scoring_speed [--rows 1000000]

In one run, each in a fresh process (so peak RSS is its own):
  pipeline  the offline pipeline (the workers' code path), rows/s overall and per stage
  floor     the bare library calls on the same data: pyarrow CSV read, the same three models'
            inplace_predict on one float32 matrix, IsolationForest.score_samples in blocks on
            threads (the pipeline scores the forest's XGBoost copy, which is faster), vectorised
            calibration, pyarrow CSV write
Pipeline stage times are busy seconds summed over pool threads (stages overlap), floor stage
times are wall seconds. Both run --rounds times, interleaved; the medians are compared.
Target: pipeline rows/s >= 0.7 x floor rows/s. Needs the reference library (`make run`).
A third arm, the pipeline without its `reasons` column, measures what the reasons cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from shared.settings import get_settings


def generate(rows: int) -> Path:
    from shared.library.build import write_csv
    from shared.training.simulator import example_spec, simulate, with_rows

    path = get_settings().var_dir / "bench" / f"speed_{rows}.csv"
    if not path.exists():
        started = time.perf_counter()
        write_csv(simulate(with_rows(example_spec(), rows), labeled=False), path)
        print(f"generated {path} in {time.perf_counter() - started:.1f} s", flush=True)
    return path


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_pipeline(path: Path, out_dir: Path, reasons: bool = True) -> dict:
    from shared.engine.pipeline import Pipeline, ScoreOptions
    from shared.library.cache import RegistrySource

    source = RegistrySource(get_settings())
    started = time.perf_counter()
    result = Pipeline(source, ScoreOptions(reasons=reasons)).run(
        path, out_dir / "predictions.csv", out_dir / "errors.csv"
    )
    wall = time.perf_counter() - started
    models = [m["name"] for m in result.methods_used["models"]]
    return {"wall": wall, "timings": result.timings, "models": models, "rss": peak_rss_mib()}


def child_floor(path: Path, out_dir: Path, models: list[str]) -> dict:
    import xgboost  # noqa: F401  (import cost outside the timings)

    from shared.engine.anomaly import AnomalyDetector
    from shared.engine.features import build_features
    from shared.engine.roles import infer_roles
    from shared.library.cache import ModelStore

    store = ModelStore(get_settings())
    bundles = [store.load(name) for name in models]
    for bundle in bundles:
        bundle.booster.set_param({"nthread": os.cpu_count() or 1})
    t: dict[str, float] = {}
    started = time.perf_counter()
    table = pacsv.read_csv(path)
    t["read"] = time.perf_counter() - started
    frame = table.to_pandas()
    x = build_features(frame, infer_roles(frame.head(20000))).to_numpy(np.float32)  # untimed
    detector = AnomalyDetector().fit(x[:20000])
    forest = detector.forest
    assert forest is not None
    raws = []
    for bundle in bundles:
        started = time.perf_counter()
        raws.append(bundle.booster.inplace_predict(x))
        t[f"model:{bundle.name}"] = time.perf_counter() - started
    started = time.perf_counter()
    blocks = [x[i : i + 16_384] for i in range(0, len(x), 16_384)]
    with ThreadPoolExecutor(os.cpu_count()) as pool:  # sklearn's own scoring, block by block
        parts = pool.map(lambda b: -forest.score_samples(detector.prepare(b)), blocks)
        scores = np.concatenate(list(parts))
    t["anomaly"] = time.perf_counter() - started
    started = time.perf_counter()
    logits = [
        np.log(np.clip(b.calibrator(r), 1e-7, 1 - 1e-7)) for b, r in zip(bundles, raws, strict=True)
    ]
    p = 1 / (1 + np.exp(-np.mean(logits, axis=0)))
    t["calibration"] = time.perf_counter() - started
    started = time.perf_counter()
    out = pa.table(
        {
            "row_number": np.arange(1, len(p) + 1),
            "fraud_probability": p,
            "anomaly_score": scores,
            "is_anomaly": detector.flags(scores),
        }
    )
    pacsv.write_csv(out, out_dir / "floor.csv")
    t["write"] = time.perf_counter() - started
    return {"wall": sum(t.values()), "timings": t, "rss": peak_rss_mib()}


def run_child(mode: str, path: Path, out_dir: Path, models: list[str] | None = None) -> dict:
    args = [sys.executable, __file__, "--child", mode, "--input", str(path), "--out", str(out_dir)]
    if models:
        args += ["--models", ",".join(models)]
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(name: str, rows: int, result: dict) -> None:
    print(
        f"\n{name}: {rows / result['wall']:,.0f} rows/s ({result['wall']:.2f} s), "
        f"peak RSS {result['rss']:.0f} MiB"
    )
    for stage, seconds in sorted(result["timings"].items(), key=lambda kv: -kv[1]):
        rate = rows / seconds if seconds else float("inf")
        print(f"  {stage:36s} {seconds:7.2f} s  {rate:>14,.0f} rows/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", choices=["pipeline", "pipeline-no-reasons", "floor"])
    parser.add_argument("--input", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--models")
    args = parser.parse_args()
    if args.child == "pipeline":
        print(json.dumps(child_pipeline(args.input, args.out)))
        return 0
    if args.child == "pipeline-no-reasons":
        print(json.dumps(child_pipeline(args.input, args.out, reasons=False)))
        return 0
    if args.child == "floor":
        print(json.dumps(child_floor(args.input, args.out, args.models.split(","))))
        return 0
    path = generate(args.rows)
    pipelines, floors, bare = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):  # interleaved, so drifts in machine speed hit all arms
            pipelines.append(run_child("pipeline", path, Path(tmp)))
            floors.append(run_child("floor", path, Path(tmp), pipelines[-1]["models"]))
            bare.append(run_child("pipeline-no-reasons", path, Path(tmp)))
    pipeline = sorted(pipelines, key=lambda r: r["wall"])[len(pipelines) // 2]
    floor = sorted(floors, key=lambda r: r["wall"])[len(floors) // 2]
    no_reasons = sorted(bare, key=lambda r: r["wall"])[len(bare) // 2]
    walls = {
        name: ", ".join(f"{r['wall']:.2f}" for r in runs)
        for name, runs in (("pipeline", pipelines), ("floor", floors))
    }
    print(
        f"walls over {args.rounds} interleaved rounds: pipeline {walls['pipeline']} s; "
        f"floor {walls['floor']} s (medians below)"
    )
    report("pipeline", args.rows, pipeline)
    report("floor", args.rows, floor)
    cost = pipeline["wall"] - no_reasons["wall"]
    print(
        f"\nreasons: pipeline without them {no_reasons['wall']:.2f} s; with them "
        f"{pipeline['wall']:.2f} s ({cost:+.2f} s, {cost / no_reasons['wall']:+.1%}; busy seconds "
        f"in the reasons stage {pipeline['timings'].get('reasons', 0.0):.2f})"
    )
    ratio = (args.rows / pipeline["wall"]) / (args.rows / floor["wall"])
    print(
        f"\npipeline / floor = {ratio:.2f} (target >= 0.70): {'PASS' if ratio >= 0.7 else 'FAIL'}"
    )
    return 0 if ratio >= 0.7 else 1


if __name__ == "__main__":
    sys.exit(main())
