"""Unsupervised anomaly detection fitted on the upload itself (IsolationForest)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.ensemble import IsolationForest

SCORE_BLOCK = 16_384


class AnomalyDetector:
    """Fit on a sample of the upload's features; score rows in blocks on a thread pool.

    `score_samples` ignores n_jobs, so blocks are scored on threads (sklearn's tree code
    releases the GIL).
    """

    def __init__(self, contamination: float = 0.01, trees: int = 100, seed: int = 0) -> None:
        self.contamination = contamination
        self.forest = IsolationForest(n_estimators=trees, max_samples=256, random_state=seed)
        self.columns: np.ndarray = np.array([], dtype=int)
        self.fill: np.ndarray = np.array([])
        self.scale: np.ndarray = np.array([])
        self.threshold = 1.0

    def fit(self, sample: np.ndarray) -> AnomalyDetector:
        """Fit on a uniform sample of the whole file, so that flags mark its share of any order."""
        finite = np.isfinite(sample)
        self.columns = np.flatnonzero(finite.any(axis=0))
        if len(self.columns) == 0:
            return self
        data = np.where(finite, sample, np.nan)[:, self.columns].astype(np.float64)
        self.fill = np.nanmedian(data, axis=0)
        q1, q3 = np.nanquantile(data, [0.25, 0.75], axis=0)
        spread = np.nanstd(data, axis=0)
        self.scale = np.where(q3 > q1, q3 - q1, np.where(spread > 0, spread, 1.0))
        prepared = self._prepare(sample)
        self.forest.fit(prepared)
        scores = -self.forest.score_samples(prepared)
        self.threshold = float(np.quantile(scores, 1 - self.contamination))
        return self

    def _prepare(self, matrix: np.ndarray) -> np.ndarray:
        """Robustly scaled (median and IQR), gaps filled. Heavy tails are kept as they are: fraud
        lives there (compressing them with a signed log lowered ROC-AUC on the real files, mean
        over four seeds 0.847 -> 0.830, most on the file whose fraud is a high amount ratio)."""
        data = matrix[:, self.columns].astype(np.float32)
        data -= self.fill.astype(np.float32)
        data *= (1 / self.scale).astype(np.float32)
        return np.nan_to_num(data, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

    def deviation(self, matrix: np.ndarray) -> np.ndarray:
        """Each input's scaled distance from the file's median (0 for unused inputs)."""
        out = np.zeros(matrix.shape, dtype=np.float32)
        if len(self.columns):
            out[:, self.columns] = self._prepare(matrix)
        return out

    def score(self, matrix: np.ndarray, pool: ThreadPoolExecutor | None = None) -> np.ndarray:
        """Anomaly score in (0, 1): higher is stranger (IsolationForest's 2^(-depth/c))."""
        if len(self.columns) == 0 or len(matrix) == 0:
            return np.zeros(len(matrix))
        blocks = [matrix[i : i + SCORE_BLOCK] for i in range(0, len(matrix), SCORE_BLOCK)]
        run = lambda block: -self.forest.score_samples(self._prepare(block))  # noqa: E731
        parts = list(pool.map(run, blocks)) if pool else [run(b) for b in blocks]
        return np.concatenate(parts)

    def flags(self, scores: np.ndarray) -> np.ndarray:
        return scores >= self.threshold
