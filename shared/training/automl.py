"""AutoML for one labeled file: roles -> features -> XGBoost (small search) -> calibrator."""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from shared.engine import roles as R
from shared.engine.bundle import save_bundle
from shared.engine.calibration import fit_calibrator
from shared.engine.csvio import read_frame
from shared.engine.features import FEATURE_VERSION, FEATURES, build_features, clock_of
from shared.engine.profile import value_profile
from shared.engine.roles import RoleMap, infer_roles
from shared.errors import InputError

logger = logging.getLogger(__name__)

SEARCH = (
    {"max_depth": 4, "eta": 0.1, "min_child_weight": 1.0, "subsample": 0.9},
    {"max_depth": 6, "eta": 0.08, "min_child_weight": 2.0, "subsample": 0.8},
    {"max_depth": 3, "eta": 0.15, "min_child_weight": 1.0, "subsample": 1.0},
)
MAX_ROUNDS = 400
EARLY_STOP = 30
TRUE_WORDS = {"1", "true", "yes", "y", "oui", "si", "ja", "fraud", "fraude", "t"}
FALSE_WORDS = {"0", "false", "no", "n", "non", "nein", "legit", "genuine", "f", "ok"}


class TrainingError(InputError):
    """The file cannot train a model; the message says why in the user's terms."""


@dataclass
class TrainResult:
    name: str
    folder: Path
    metrics: dict[str, Any]
    roles: dict[str, str]


def parse_label(series: pd.Series) -> np.ndarray:
    """0/1 from numbers, booleans or words (true/false, yes/no, fraud/legit...)."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        values = series.astype(float)
    else:
        text = series.astype("string").str.strip().str.lower()
        values = pd.Series(np.nan, index=series.index)
        values[text.isin(TRUE_WORDS)] = 1.0
        values[text.isin(FALSE_WORDS)] = 0.0
    if values.isna().any() or not set(np.unique(values)) <= {0.0, 1.0}:
        raise TrainingError(f"label column {series.name!r} must hold only 0/1 (or true/false)")
    return values.to_numpy().astype(np.int8)


def split(frame_t: np.ndarray | None, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/validation index: the last 25% in time when there is a clock, else stratified."""
    n = len(y)
    if frame_t is not None and np.isfinite(frame_t).mean() > 0.99:
        order = np.argsort(frame_t, kind="stable")
        cut = int(n * 0.75)
        train, val = order[:cut], order[cut:]
        if y[train].sum() >= 5 and y[val].sum() >= 5:
            return train, val
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(n, bool)
    for cls in (0, 1):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        val_mask[idx[: max(1, int(len(idx) * 0.25))]] = True
    return np.flatnonzero(~val_mask), np.flatnonzero(val_mask)


def _fit(
    matrix: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    val: np.ndarray,
    seed: int,
    threads: int = 0,
) -> tuple[Any, dict[str, Any]]:
    import xgboost as xgb

    dtrain = xgb.DMatrix(matrix[train], label=y[train], feature_names=list(FEATURES))
    dval = xgb.DMatrix(matrix[val], label=y[val], feature_names=list(FEATURES))
    best = None
    for config in SEARCH:
        params = {
            "objective": "binary:logistic",
            "eval_metric": "aucpr",
            "tree_method": "hist",
            "max_delta_step": 1.0,
            "colsample_bytree": 0.9,
            "seed": seed,
            "nthread": threads,  # 0: every core (the model is the same for any count)
            **config,
        }
        booster = xgb.train(
            params,
            dtrain,
            num_boost_round=MAX_ROUNDS,
            evals=[(dval, "val")],
            early_stopping_rounds=EARLY_STOP,
            verbose_eval=False,
        )
        booster = booster[: booster.best_iteration + 1]
        score = _aucpr(booster, dval, y[val])
        if best is None or score > best[0]:
            best = (score, booster, config)
    assert best is not None
    return best[1], best[2]


def _aucpr(booster: Any, dval: Any, y: np.ndarray) -> float:
    return float(average_precision_score(y, booster.predict(dval)))


def train_frame(
    frame: pd.DataFrame,
    name: str,
    out_dir: Path,
    label: str | None = None,
    seed: int = 0,
    extra_metadata: dict[str, Any] | None = None,
    threads: int = 0,
) -> TrainResult:
    """Train, calibrate and save one reference model from a labeled DataFrame."""
    started = time.perf_counter()
    roles, y = _labelled(frame, label)
    clock = clock_of(frame, roles)
    features = build_features(frame, roles, clock)
    if not any(features[c].nunique(dropna=True) > 1 for c in FEATURES):
        raise TrainingError(
            "no usable feature: no column was recognised as an amount, timestamp, id, "
            "balance, distance or category (found: " + ", ".join(map(str, frame.columns)) + ")"
        )
    matrix = features.to_numpy(np.float32)
    train, val = split(clock, y, seed)
    booster, config = _fit(matrix, y, train, val, seed, threads)
    raw_val = booster.inplace_predict(matrix[val])
    calibrator = fit_calibrator(raw_val, y[val])
    metrics = _metrics(y, (train, val), raw_val, calibrator(raw_val), booster)
    metrics["train_seconds"] = round(time.perf_counter() - started, 2)
    gains = booster.get_score(importance_type="total_gain")
    total_gain = sum(gains.values()) or 1.0
    feature_spec = {
        "feature_version": FEATURE_VERSION,
        "features": list(FEATURES),
        "importance": {f: gains.get(f, 0.0) / total_gain for f in FEATURES},
        "roles": {k: v for k, v in roles.to_json().items() if k != R.LABEL},
    }
    metadata = {
        "name": name,
        "columns": [str(c) for c in frame.columns],
        "roles": roles.to_json(),
        "value_profile": {
            **value_profile(frame, roles, features, clock),
            "importance": feature_spec["importance"],
        },
        "metrics": metrics,
        "params": config,
        "training_set": {
            "rows": len(frame),
            "positives": int(y.sum()),
            "label": roles.get(R.LABEL),
        },
        "calibrator": calibrator.kind,
        "library_versions": _library_versions(),
        **(extra_metadata or {}),
    }
    folder = Path(out_dir) / name
    save_bundle(folder, booster, feature_spec, calibrator, metadata)
    logger.info("trained %s: roc_auc=%.3f pr_auc=%.3f", name, metrics["roc_auc"], metrics["pr_auc"])
    return TrainResult(name=name, folder=folder, metrics=metrics, roles=roles.to_json())


def _labelled(frame: pd.DataFrame, label: str | None) -> tuple[RoleMap, np.ndarray]:
    """The frame's roles and its 0/1 labels, or TrainingError saying what is missing."""
    if frame.empty:
        raise TrainingError("the file has no rows")
    roles = infer_roles(frame, label=label)
    if R.LABEL not in roles:
        raise TrainingError(
            "no label column found; pass --label COLUMN (columns: "
            + ", ".join(map(str, frame.columns))
            + ")"
        )
    y = parse_label(frame[roles.get(R.LABEL)])
    if len(np.unique(y)) < 2:
        raise TrainingError(f"label column {roles.get(R.LABEL)!r} has one class only")
    if y.sum() < 4:
        raise TrainingError(f"only {int(y.sum())} positive rows; at least 4 are needed")
    return roles, y


def _metrics(
    y: np.ndarray,
    split: tuple[np.ndarray, np.ndarray],
    raw_val: np.ndarray,
    calibrated: np.ndarray,
    booster: Any,
) -> dict[str, Any]:
    """Validation metrics of the calibrated model (and the raw one's Brier score)."""
    train, val = split
    return {
        "roc_auc": float(roc_auc_score(y[val], calibrated)),
        "pr_auc": float(average_precision_score(y[val], calibrated)),
        "brier": float(brier_score_loss(y[val], calibrated)),
        "brier_uncalibrated": float(brier_score_loss(y[val], raw_val)),
        "fraud_rate": float(y.mean()),
        "rows": len(y),
        "train_rows": len(train),
        "validation_rows": len(val),
        "validation_positives": int(y[val].sum()),
        "trees": int(booster.num_boosted_rounds()),
    }


def _library_versions() -> dict[str, str]:
    import sklearn
    import xgboost as xgb

    return {
        "xgboost": xgb.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def train_csv(
    path: Path,
    out_dir: Path,
    label: str | None = None,
    name: str | None = None,
    extra_metadata: dict[str, Any] | None = None,
    threads: int = 0,
) -> TrainResult:
    """Train from a CSV file (see train_frame)."""
    frame = read_frame(path)
    name = name or Path(path).name.split(".")[0]
    return train_frame(
        frame, name, out_dir, label=label, extra_metadata=extra_metadata, threads=threads
    )


def role_summary(roles: RoleMap) -> str:
    return ", ".join(f"{role}={column}" for role, column in sorted(roles.columns.items()))
