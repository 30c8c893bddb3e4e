"""The file's own evidence beside the reference models: the confidence-weighted blend.

Reference models transfer only as far as they see the file; what they cannot see, only the
file itself can tell. The blend averages the two rankings (the ensemble's and the anomaly
detector's) by the weights of shared/engine/weighting.py, and maps the blended rank back to
probabilities with the ensemble's own distribution, shifted to an estimated base rate. A
fitted `Blend` is frozen and saved with the plan (`state`, `from_state`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shared.engine.calibration import EPS, logit
from shared.engine.weighting import ANOMALY_HEDGE, FALLBACK_PRIOR

# Without labels a file's fraud rate is known only loosely: the band reaches this factor beyond
# both what the reference models say and the fallback (see rate_band).
BAND_FACTOR = 3.0
TIE_SPREAD = 2.0  # log-odds range given to the ranks when every ensemble value is the same
Arrays = dict[str, np.ndarray]


def rate_band(estimate: float, reference: float, weight: float) -> tuple[float, float]:
    """A plausible range for the file's fraud rate: from a third of the lowest to three times
    the highest of the estimate, the reference models' own rate and (unless they are fully
    trusted) the fallback rate. Wide on purpose: no label says which of them is right."""
    sources = [estimate, reference] + ([FALLBACK_PRIOR] if weight < 1 else [])
    sources = [s for s in sources if s > 0] or [FALLBACK_PRIOR]
    return min(sources) / BAND_FACTOR, min(1.0, max(sources) * BAND_FACTOR)


@dataclass(frozen=True, eq=False)
class Ecdf:
    """Mid-rank empirical CDF of a sample, in (0, 1): ties share their mean rank, so a value
    equal to many sample values (an isotonic calibrator's steps) sits in their middle.

    Continuous, so that the file's rows between two sample values (fifty of them, in a file of
    a million rows and a sample of 20,000) keep their order: linear between the sample's
    values, and past its ends on toward 0 and 1 (hyperbolically, in units of the mean gap
    between the last ten values, so that no distance runs into the end)."""

    values: np.ndarray
    mid: np.ndarray
    gaps: tuple[float, float]

    @classmethod
    def of(cls, sample: np.ndarray) -> Ecdf:
        values, counts = np.unique(sample, return_counts=True)
        n = len(sample)
        mid = (2 * (np.cumsum(counts) - counts) + counts + 1) / (2 * n + 2)
        gaps = np.diff(values)
        ends = (float(gaps[:10].mean()), float(gaps[-10:].mean())) if len(gaps) else (1.0, 1.0)
        return cls(values, mid, ends)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        u = np.interp(x, self.values, self.mid)
        low, high = self.values[0], self.values[-1]
        below = self.mid[0] / (1 + np.maximum(low - x, 0) / self.gaps[0])
        above = 1 - (1 - self.mid[-1]) / (1 + np.maximum(x - high, 0) / self.gaps[1])
        return np.where(x < low, below, np.where(x > high, above, u))

    def state(self, prefix: str, arrays: Arrays) -> dict[str, Any]:
        arrays[f"{prefix}.values"], arrays[f"{prefix}.mid"] = self.values, self.mid
        return {"gaps": list(self.gaps)}

    @classmethod
    def from_state(cls, meta: dict[str, Any], prefix: str, arrays: Arrays) -> Ecdf:
        gaps = meta["gaps"]
        return cls(arrays[f"{prefix}.values"], arrays[f"{prefix}.mid"], (gaps[0], gaps[1]))


def spread_ties(z: np.ndarray) -> np.ndarray:
    """Sorted values made strictly increasing: each run of equal values (an isotonic
    calibrator's step, a model that sees one coarse column) is spread evenly from the midpoint
    to the value below to the midpoint to the value above. Mapped onto them, rows that the
    blend or the file model tell apart keep distinct probabilities, as their ranks differ."""
    values, first, counts = np.unique(z, return_index=True, return_counts=True)
    # Outermost runs reach as far out as their inner gap; one value alone, TIE_SPREAD in all.
    gaps = np.diff(values) if len(values) > 1 else np.array([TIE_SPREAD])
    below = values - np.concatenate([gaps[:1], gaps])[: len(values)] / 2
    above = values + np.concatenate([gaps, gaps[-1:]])[-len(values) :] / 2
    within = (np.arange(len(z)) - np.repeat(first, counts) + 0.5) / np.repeat(counts, counts)
    spread = np.repeat(below, counts) + within * np.repeat(above - below, counts)
    return np.where(np.repeat(counts, counts) > 1, spread, z)


def _extended(u: np.ndarray, grid: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """np.interp, continued past the grid's ends along its end segments (so ranks beyond the
    sample's first and last stay apart)."""
    z = np.interp(u, grid, levels)
    if len(grid) < 2:
        return z
    low = levels[0] + (u - grid[0]) * (levels[1] - levels[0]) / (grid[1] - grid[0])
    high = levels[-1] + (u - grid[-1]) * (levels[-1] - levels[-2]) / (grid[-1] - grid[-2])
    return np.where(u < grid[0], low, np.where(u > grid[-1], high, z))


_CDFS = ("ensemble_cdf", "anomaly_cdf", "blended_cdf", "model_cdf", "adapted_cdf")


@dataclass(frozen=True, eq=False)
class Blend:
    """Fitted on a uniform sample of the file: ensemble probabilities and anomaly scores (and,
    with a file model, its out-of-fold scores)."""

    weight: float  # the ensemble's share of the rank (weighting.Weights.reference)
    reference_rate: float  # the ensemble's mean probability on the sample
    prior: float  # the rate the probabilities are shifted to
    ensemble_cdf: Ecdf
    anomaly_cdf: Ecdf
    blended_cdf: Ecdf
    levels: np.ndarray  # the ensemble's sorted log-odds, ties spread
    shift: float
    hedge: float = ANOMALY_HEDGE
    model_cdf: Ecdf | None = None
    adapted_cdf: Ecdf | None = None

    @classmethod
    def fit(
        cls,
        weight: float,
        reference_rate: float,
        ensemble: np.ndarray,
        anomaly: np.ndarray,
        fallback: float = FALLBACK_PRIOR,
    ) -> Blend:
        weight = float(np.clip(weight, 0.0, 1.0))
        # Shrink the ensemble's base rate toward the fallback as confidence falls (log scale).
        log_prior = weight * np.log(max(reference_rate, 1e-6)) + (1 - weight) * np.log(fallback)
        ensemble, anomaly = np.asarray(ensemble, np.float64), np.asarray(anomaly, np.float64)
        ensemble_cdf, anomaly_cdf = Ecdf.of(ensemble), Ecdf.of(anomaly)
        rank = weight * ensemble_cdf(ensemble) + (1 - weight) * anomaly_cdf(anomaly)
        blended = np.sort(rank)  # row by row: the pairs stay together
        blended_cdf = Ecdf.of(blended)
        levels = spread_ties(logit(np.sort(ensemble)))
        prior = float(np.exp(log_prior))
        shift = _shift_to(prior, np.interp(blended_cdf(blended), _grid(len(levels)), levels))
        return cls(
            weight,
            float(reference_rate),
            prior,
            ensemble_cdf,
            anomaly_cdf,
            blended_cdf,
            levels,
            shift,
        )

    def with_file_model(self, sample_scores: np.ndarray, sample_anomaly: np.ndarray) -> Blend:
        """Rank rows by a file model's scores instead (its out-of-fold scores on the sample),
        hedged with the anomaly rank."""
        model_cdf = Ecdf.of(np.sort(np.asarray(sample_scores, np.float64)))
        ranked = replace(self, model_cdf=model_cdf)
        return replace(
            ranked, adapted_cdf=Ecdf.of(np.sort(ranked.hedged(sample_scores, sample_anomaly)))
        )

    def hedged(self, scores: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Each row's hedged rank from its file-model and anomaly scores (for `from_hedged`)."""
        assert self.model_cdf is not None
        model_rank = self.model_cdf(np.asarray(scores, np.float64))
        anomaly_rank = self.anomaly_cdf(np.asarray(anomaly, np.float64))
        return (1 - self.hedge) * model_rank + self.hedge * anomaly_rank

    def from_hedged(self, hedged: np.ndarray) -> np.ndarray:
        """Final probability per row from its hedged rank."""
        assert self.adapted_cdf is not None
        return self._probability(self.adapted_cdf(hedged))

    def adapted(self, scores: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Final probability per row from the file model's scores and the anomaly scores."""
        return self.from_hedged(self.hedged(scores, anomaly))

    def __call__(self, ensemble: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Final probability per row from its blended rank."""
        w = self.weight
        rank = w * self.ensemble_cdf(ensemble) + (1 - w) * self.anomaly_cdf(anomaly)
        return self._probability(self.blended_cdf(rank))

    def _probability(self, u: np.ndarray) -> np.ndarray:
        """The ensemble's probability at rank u (its ties spread), its odds multiplied to bring
        the mean to the estimated rate."""
        z = _extended(u, _grid(len(self.levels)), self.levels)
        return np.clip(1 / (1 + np.exp(-(z + self.shift))), EPS, 1 - EPS)

    def state(self, prefix: str, arrays: Arrays) -> dict[str, Any]:
        """The blend as JSON (its arrays added to `arrays`), for `from_state`."""
        arrays[f"{prefix}.levels"] = self.levels
        meta: dict[str, Any] = {
            name: getattr(self, name)
            for name in ("weight", "reference_rate", "prior", "shift", "hedge")
        }
        for name in _CDFS:
            cdf = getattr(self, name)
            meta[name] = cdf.state(f"{prefix}.{name}", arrays) if cdf is not None else None
        return meta

    @classmethod
    def from_state(cls, meta: dict[str, Any], prefix: str, arrays: Arrays) -> Blend:
        cdfs = {
            name: Ecdf.from_state(meta[name], f"{prefix}.{name}", arrays) if meta[name] else None
            for name in _CDFS
        }
        scalars = {k: meta[k] for k in ("weight", "reference_rate", "prior", "shift", "hedge")}
        return cls(**scalars, levels=arrays[f"{prefix}.levels"], **cdfs)  # type: ignore[arg-type]


def _grid(n: int) -> np.ndarray:
    """The sample's ranks in (0, 1), one per sorted ensemble value."""
    return (np.arange(n) + 0.5) / n


def _shift_to(target: float, z: np.ndarray) -> float:
    """The log-odds shift that makes the mean probability equal target (bisection)."""
    lo, hi = -20.0, 20.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.mean(1 / (1 + np.exp(-(z + mid)))) > target:
            hi = mid
        else:
            lo = mid
    return (lo + hi) / 2
