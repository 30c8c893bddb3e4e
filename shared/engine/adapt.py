"""A model of the file itself, trained on pseudo-labels: the confident top and bottom of the
blended score on the uniform sample. It can use every column the anomaly detector sees,
learns what the riskiest rows share, and ranks the rows in between by it.

Rows of the sample are scored out of fold (by the models that did not train on them); every
other row by a model trained on the whole labelled sample, which never saw it. The settings
below were measured on the real files and the left-out families (docs/decisions.md).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from shared.engine.anomaly import load_booster

POSITIVE_SHARE = 0.03  # the top of the blended score taken as fraud
NEGATIVE_SHARE = 0.5  # the bottom taken as legitimate
MIN_POSITIVES = 20  # fewer pseudo-positives than this: no file model
FOLDS = 3
PARAMS = {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1, "tree_method": "hist"}


def _pseudo_labels(score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fraud, labelled): the top POSITIVE_SHARE of the score, and it with the bottom
    NEGATIVE_SHARE."""
    order = np.argsort(np.argsort(score, kind="stable"), kind="stable") / len(score)
    positive, negative = order >= 1 - POSITIVE_SHARE, order < NEGATIVE_SHARE
    return positive.astype(np.int8), positive | negative


def _train(x: np.ndarray, y: np.ndarray, threads: int, seed: int) -> xgb.Booster:
    model = xgb.XGBClassifier(**PARAMS, n_jobs=threads, random_state=seed)
    model.fit(x, y)
    booster = model.get_booster()
    booster.set_param({"nthread": 1})  # blocks are predicted on the pipeline's thread pool
    return booster


@dataclass(frozen=True, eq=False)
class FileModel:
    """Pseudo-labelled XGBoost over the anomaly detector's inputs, with its out-of-fold
    scores for the sample's rows (`rows`: their sorted row numbers in the file)."""

    booster: xgb.Booster
    rows: np.ndarray
    oof: np.ndarray

    @staticmethod
    def usable(sample_size: int) -> bool:
        return sample_size * POSITIVE_SHARE >= MIN_POSITIVES

    @classmethod
    def fit(
        cls, rows: np.ndarray, x: np.ndarray, score: np.ndarray, threads: int = 1, seed: int = 0
    ) -> FileModel:
        """Train on the sample and its blended scores: the fold models and the full one side by
        side, one thread each (the same models as one by one; OpenMP's threads on a busy
        machine had made a 5,000-row file's four trainings take seconds)."""
        positive, labelled = _pseudo_labels(score)
        fold = np.random.default_rng(seed).integers(0, FOLDS, len(x))
        masks = [labelled & (fold != k) for k in range(FOLDS)] + [labelled]
        with ThreadPoolExecutor(max(1, threads)) as pool:
            trained = list(pool.map(lambda m: _train(x[m], positive[m], 1, seed), masks))
        oof = np.zeros(len(x))
        for k in range(FOLDS):
            oof[fold == k] = trained[k].inplace_predict(x[fold == k])
        return cls(trained[FOLDS], rows, oof)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each input's contribution to the full model's log-odds per row (the bias last), by
        the path-attribution approximation: 16x cheaper than exact TreeSHAP, enough to say why."""
        dmatrix = xgb.DMatrix(x, missing=np.nan, nthread=1)  # beside the busy pool
        return self.booster.predict(dmatrix, pred_contribs=True, approx_contribs=True)

    def predict(self, x: np.ndarray, first_row: int) -> np.ndarray:
        """Scores of rows first_row, first_row + 1, ... (out of fold for the sample's rows)."""
        scores = np.asarray(self.booster.inplace_predict(x), np.float64)
        lo, hi = np.searchsorted(self.rows, [first_row, first_row + len(x)])
        scores[self.rows[lo:hi] - first_row] = self.oof[lo:hi]
        return scores

    def state(
        self, prefix: str, arrays: dict[str, np.ndarray], blobs: dict[str, bytes]
    ) -> dict[str, Any]:
        arrays[f"{prefix}.rows"], arrays[f"{prefix}.oof"] = self.rows, self.oof
        blobs[f"{prefix}.ubj"] = bytes(self.booster.save_raw("ubj"))
        return {}

    @classmethod
    def from_state(
        cls, prefix: str, arrays: dict[str, np.ndarray], blobs: dict[str, bytes]
    ) -> FileModel:
        booster = load_booster(blobs[f"{prefix}.ubj"])
        return cls(booster, arrays[f"{prefix}.rows"], arrays[f"{prefix}.oof"])
