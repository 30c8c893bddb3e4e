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
        self.threshold = 1.0

    def fit(self, sample: np.ndarray) -> AnomalyDetector:
        finite = np.isfinite(sample)
        self.columns = np.flatnonzero(finite.any(axis=0))
        if len(self.columns) == 0:
            return self
        data = sample[:, self.columns].astype(np.float64)
        self.fill = np.nanmedian(np.where(np.isfinite(data), data, np.nan), axis=0)
        self.forest.fit(self._prepare(sample))
        scores = -self.forest.score_samples(self._prepare(sample))
        self.threshold = float(np.quantile(scores, 1 - self.contamination))
        return self

    def _prepare(self, matrix: np.ndarray) -> np.ndarray:
        data = matrix[:, self.columns].astype(np.float32)
        bad = ~np.isfinite(data)
        if bad.any():
            data[bad] = np.take(self.fill, np.nonzero(bad)[1])
        return data

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
