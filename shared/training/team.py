"""Team models: XGBoost trained on a team's own labeled rows, over every usable column of its
file (the inputs the file model sees: the reference features, entity and value shares, the
other numbers and dates), calibrated out of time on the team's latest labels."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv
import xgboost as xgb
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from shared.engine import roles as R
from shared.engine.bundle import ModelBundle, save_bundle
from shared.engine.calibration import Stack
from shared.engine.csvio import iter_chunks, sniff
from shared.engine.fileindex import spooled
from shared.engine.matching import ModelInfo
from shared.engine.options import ScoreOptions
from shared.engine.pipeline import Pipeline
from shared.engine.plan import Layout, ModelSource
from shared.engine.scoring import anomaly_names, inputs
from shared.engine.team import TEAM_KIND, WithoutTeams, input_names, mid_rank
from shared.training.automl import TrainingError, TrainResult, parse_label


class NoModels:
    """No model source: reading a file's inputs needs none."""

    def models(self) -> list[ModelInfo]:
        return []

    def load(self, name: str) -> ModelBundle:
        raise LookupError(name)

    def record_usage(self, names: list[str]) -> None:
        """Nothing to record."""


@dataclass(frozen=True, eq=False)
class Design:
    """A labeled file as a team model sees it: its inputs by name, its labels, its clock."""

    layout: Layout
    names: tuple[str, ...]
    x: np.ndarray  # float32, one row per file row
    labels: np.ndarray  # the label column's text, as written
    t: np.ndarray | None


def design(path: Path, label: str | None, options: ScoreOptions | None = None) -> Design:
    """Every row's inputs (as scoring computes them for the file model) and its label text."""
    pipeline = Pipeline(NoModels(), options)
    fmt = sniff(Path(path))
    try:
        layout = pipeline.profile(fmt, label, labeled=True)
    except ValueError as exc:  # a label column the file does not have, or no usable column
        raise TrainingError(str(exc)) from None
    column = layout.roles.get(R.LABEL)
    blocks, labels = [], []
    with tempfile.TemporaryDirectory(prefix="fraudscore-team-") as folder:
        spool = Path(folder) / "chunks.arrow"
        index = pipeline.index(layout, spool)
        offset = 0
        for table in spooled(spool):
            carry = index.carry(slice(offset, offset + table.num_rows))
            ax = inputs(layout, table, carry, True)[1]
            assert ax is not None
            blocks.append(ax.astype(np.float32))
            if column is not None:
                labels.append(np.asarray(table[column].to_pylist(), dtype=object))
            offset += table.num_rows
        t = index.times()
    names = anomaly_names(set(index.per_row), index.has_time, layout)
    text = np.concatenate(labels) if labels else np.array([], dtype=object)
    return Design(layout, tuple(names), np.vstack(blocks), text, t)


MIN_POSITIVES = 10  # fewer fraud labels than this: nothing to learn from
FOLDS = 4  # contiguous blocks in time: each scored by a model trained on the others
MAX_ROUNDS = 400
EARLY_STOP = 40
RATE_PRIOR_FRAUDS = 10  # the whole history's rate counts as this many frauds beside the latest
EVIDENCE_FLOOR = 0.01  # the label-free rank's least weight in the stack
PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.08,
    "subsample": 0.9,
    "colsample_bytree": 0.9,
    "min_child_weight": 1.0,
    "max_delta_step": 1.0,
}


def labels_of(design: Design) -> np.ndarray:
    """The 0/1 labels, or TrainingError saying what is wrong with them."""
    if design.layout.roles.get(R.LABEL) is None:
        columns = ", ".join(design.layout.fmt.columns)
        raise TrainingError(f"no label column found; name it (columns: {columns})")
    y = parse_label(pd.Series(design.labels, name=design.layout.roles.get(R.LABEL)))
    positives, negatives = int(y.sum()), int(len(y) - y.sum())
    if positives < MIN_POSITIVES or negatives < MIN_POSITIVES:
        raise TrainingError(
            f"{positives} fraud and {negatives} legitimate labels: at least {MIN_POSITIVES} of "
            "each are needed to learn from"
        )
    return y


def time_order(design: Design) -> np.ndarray:
    """The rows in time order (file order where the file has no usable clock)."""
    t = design.t
    if t is not None and np.isfinite(t).mean() > 0.99:
        return np.argsort(np.nan_to_num(t, nan=np.inf), kind="stable")
    return np.arange(len(design.x))


def _booster(
    x: np.ndarray,
    y: np.ndarray,
    params: dict[str, Any],
    held: tuple[np.ndarray, np.ndarray] | None,
    rounds: int,
) -> tuple[xgb.Booster, int | None]:
    train = xgb.DMatrix(x, label=y, missing=np.nan)
    if held is None:
        return xgb.train(params, train, rounds), None
    valid = xgb.DMatrix(held[0], label=held[1], missing=np.nan)
    booster = xgb.train(
        params,
        train,
        MAX_ROUNDS,
        evals=[(valid, "v")],
        early_stopping_rounds=EARLY_STOP,
        verbose_eval=False,
    )
    return booster[: booster.best_iteration + 1], booster.best_iteration + 1


def out_of_time(
    x: np.ndarray, y: np.ndarray, order: np.ndarray, params: dict[str, Any]
) -> tuple[np.ndarray, int]:
    """Each row's score by a model that never saw its block of time, and the rounds to train
    the final model with (the blocks' early-stopping mean)."""
    oof = np.zeros(len(y))
    rounds = []
    for block in np.array_split(order, FOLDS):
        rest = np.setdiff1d(order, block, assume_unique=True)
        both = 0 < y[block].sum() < len(block) and y[rest].sum() > 0
        held = (x[block], y[block]) if both else None
        booster, best = _booster(x[rest], y[rest], params, held, 100)
        oof[block] = booster.inplace_predict(x[block])
        if best is not None:
            rounds.append(best)
    return oof, int(np.mean(rounds)) if rounds else 100


def without_label(fmt_path: Path, label: str, target: Path) -> None:
    """A copy of the file without its label column (what the label-free pipeline scores)."""
    fmt = sniff(fmt_path)
    columns = [c for c in fmt.columns if c != label]
    writer = None
    options = pacsv.WriteOptions(quoting_style="needed")
    try:
        for table in iter_chunks(fmt, 100_000, columns):
            if writer is None:
                writer = pacsv.CSVWriter(str(target), table.schema, write_options=options)
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def fit_stack(oof: np.ndarray, rank: np.ndarray, y: np.ndarray, order: np.ndarray) -> Stack:
    """The stack's weights, fitted on the latest half of the labels in time where it holds
    MIN_POSITIVES frauds (on all of them otherwise): what each source proves changes as fraud
    drifts. The label-free rank keeps at least EVIDENCE_FLOOR, so that rows never tie."""
    latest = np.concatenate(np.array_split(order, FOLDS)[FOLDS // 2 :])
    if y[latest].sum() >= MIN_POSITIVES and (1 - y[latest]).sum() >= MIN_POSITIVES:
        oof, rank, y = oof[latest], rank[latest], y[latest]
    stack = Stack.fit(oof, rank, y)
    return Stack(stack.bias, stack.team, max(stack.evidence, EVIDENCE_FLOOR))


def recent_level(
    stack: Stack, oof: np.ndarray, rank: np.ndarray, y: np.ndarray, order: np.ndarray
) -> Stack:
    """The stack at the rate of the team's latest labels (its last block in time), shrunk
    towards the whole history's by RATE_PRIOR_FRAUDS: fraud rates drift, and the next file
    comes after the latest labels."""
    latest = np.array_split(order, FOLDS)[-1]
    history = float(y.mean())
    weight = RATE_PRIOR_FRAUDS / history  # rows' worth of the whole history's rate
    rate = (float(y[latest].sum()) + RATE_PRIOR_FRAUDS) / (len(latest) + weight)
    return stack.at_rate(oof[latest], rank[latest], rate)


def label_free_scores(
    path: Path, label: str, source: ModelSource, options: ScoreOptions
) -> np.ndarray:
    """The label-free pipeline's probability of each row of the labeled file (its label
    stripped, no team model), NaN for rows it could not score."""
    with tempfile.TemporaryDirectory(prefix="fraudscore-team-") as folder:
        unlabeled = Path(folder) / (Path(path).name.split(".")[0] + ".csv")
        without_label(path, label, unlabeled)
        output = Path(folder) / "predictions.csv"
        quiet = replace(options, reasons=False)
        result = Pipeline(WithoutTeams(source), quiet).run(unlabeled, output)
        table = pacsv.read_csv(
            output,
            convert_options=pacsv.ConvertOptions(
                include_columns=["row_number", "fraud_probability"]
            ),
        )
    rows = result.stats["total_transactions"]
    p = np.full(rows, np.nan)
    p[table["row_number"].to_numpy() - 1] = table["fraud_probability"].to_numpy()
    return p


def train_team(
    path: Path,
    name: str,
    out_dir: Path,
    source: ModelSource,
    label: str | None = None,
    options: ScoreOptions | None = None,
    extra_metadata: dict[str, Any] | None = None,
) -> TrainResult:
    """Train, stack and save one team model from a labeled CSV file."""
    started = time.perf_counter()
    options = options or ScoreOptions()
    found = design(path, label, options)
    y = labels_of(found)
    params = {**PARAMS, "seed": options.seed, "nthread": options.threads}
    order = time_order(found)
    oof, rounds = out_of_time(found.x, y, order, params)
    booster, _ = _booster(found.x, y, params, None, max(rounds, 10))
    label_column = found.layout.roles.columns[R.LABEL]
    free = label_free_scores(path, label_column, source, options)
    free = np.where(np.isfinite(free), free, np.nanmedian(free))
    rank = mid_rank(np.sort(free), free)
    stack = recent_level(fit_stack(oof, rank, y, order), oof, rank, y, order)
    names = input_names(found.names, found.layout.roles)
    metrics = _team_metrics(y, oof, free, stack(oof, rank), rounds)
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    importance = _importance(booster, names)
    metadata = {
        "name": name,
        "kind": TEAM_KIND,
        "columns": list(found.layout.fmt.columns),
        "roles": found.layout.roles.to_json(),
        "value_profile": {
            "importance": importance,
            "inputs": names,
            "columns": [c for c in found.layout.fmt.columns if c != label_column],
        },
        "metrics": metrics,
        "params": {k: params[k] for k in ("max_depth", "eta", "subsample")} | {"rounds": rounds},
        "training_set": {"rows": len(y), "positives": int(y.sum()), "label": label_column},
        "calibrator": stack.kind,
        **(extra_metadata or {}),
    }
    spec = {"features": names, "kind": TEAM_KIND, "importance": importance}
    folder = Path(out_dir) / name
    save_bundle(folder, booster, spec, stack, metadata)
    return TrainResult(
        name=name, folder=folder, metrics=metrics, roles=found.layout.roles.to_json()
    )


def _importance(booster: xgb.Booster, names: list[str]) -> dict[str, float]:
    gains = {k: float(v) for k, v in booster.get_score(importance_type="total_gain").items()}  # type: ignore[arg-type]
    total = sum(gains.values()) or 1.0
    return {name: gains.get(f"f{i}", 0.0) / total for i, name in enumerate(names)}


def _team_metrics(
    y: np.ndarray, oof: np.ndarray, free: np.ndarray, stacked: np.ndarray, rounds: int
) -> dict[str, Any]:
    """How the team model and the label-free score ranked the team's labels, out of time."""
    return {
        "kind": TEAM_KIND,
        "roc_auc": float(roc_auc_score(y, stacked)),
        "pr_auc": float(average_precision_score(y, stacked)),
        "brier": float(brier_score_loss(y, stacked)),
        "team_roc_auc": float(roc_auc_score(y, oof)),
        "label_free_roc_auc": float(roc_auc_score(y, free)),
        "fraud_rate": float(y.mean()),
        "rows": len(y),
        "positives": int(y.sum()),
        "trees": rounds,
    }
