"""The file's own evidence beside the reference models: which other columns anomaly detection
may use, how much the reference models can see, and the confidence-weighted blend.

Reference models transfer only as far as they see the file; what they cannot see, only the
file itself can tell. The blend averages the two rankings (the ensemble's and the anomaly
detector's), weighted by that confidence, and maps the blended rank back to probabilities with
the ensemble's own distribution, shifted to an estimated base rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.engine import roles as R
from shared.engine.calibration import EPS, logit
from shared.engine.features import clock_of
from shared.engine.roles import RoleMap, dated_share, to_number
from shared.engine.timeparse import TimeFormat, detect_format

MAX_EXTRA_COLUMNS = 64
ID_UNIQUE_SHARE = 0.95  # a whole-number column almost all of whose values differ is an id
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-empty values parses
EPOCH_FROM = 1e9  # epoch seconds of 2001: a clock above it is made of real dates
YEAR = 365.25 * 86400
FALLBACK_PRIOR = 0.01  # the base rate assumed when the reference models see little of a file
# Without labels a file's fraud rate is known only loosely: the band reaches this factor beyond
# both what the reference models say and the fallback (see rate_band).
BAND_FACTOR = 3.0
# How much a perfect match is trusted against the file's own anomaly ranking. Chosen on the real
# files of ../shared/realdata leaving each file out in turn (benchmarks/real_data.py).
REFERENCE_TRUST = 0.25
# With a file model, the share of the final rank still given to the anomaly rank: the file model
# learns from pseudo-labels, and where it learns their noise the anomaly rank holds. Over seeds
# 0-3 (benchmarks/real_data.py), 0.25 against none: real files 0.931 -> 0.931 of supervised
# (banksim +0.005, card_transdata and tabformer -0.003/-0.004), left-out families 1.003 ->
# 1.008, anonymized files' mean ROC-AUC 0.930 -> 0.938; 0.5 lowered the real files (0.926).
# With the forest's 512-row trees (which lowered PR-AUC), 0.35 against 0.25: real files' PR-AUC
# 0.328 -> 0.334 (banksim 0.282 -> 0.317, card_transdata 0.375 -> 0.366) at ROC-AUC 0.9513 ->
# 0.9503 of supervised (card_transdata -0.005 inside its seed spread, banksim +0.001); left-out
# families ROC 0.9747 -> 0.9757, PR 0.397 -> 0.401; anonymized ROC 0.946 -> 0.948, PR 0.223 ->
# 0.235. 0.5: real ROC 0.947 (card_transdata 0.890), PR 0.340.
ANOMALY_HEDGE = 0.35
TIE_SPREAD = 2.0  # log-odds range given to the ranks when every ensemble value is the same


@dataclass(frozen=True)
class ExtraColumns:
    """The file's columns outside the recognised roles that anomaly detection uses."""

    numeric: list[str]
    text: list[str]  # each value's share of the whole file (a shared device, a rare browser)
    ignored: list[str]
    # Other dates (a sign-up time): the time from each to the row's timestamp, by their format.
    dates: dict[str, TimeFormat] = field(default_factory=dict)

    @property
    def used(self) -> list[str]:
        return [*self.numeric, *self.text, *self.dates]


def extra_columns(frame: pd.DataFrame, roles: RoleMap) -> ExtraColumns:
    """Classify the non-role columns of a text sample: numbers, categories, or left out."""
    role_columns = set(roles.columns.values()) | set(roles.date_parts)
    numeric: list[str] = []
    text: list[str] = []
    ignored: list[str] = []
    dates: dict[str, TimeFormat] = {}
    clock = _absolute_clock(frame, roles)
    for column in frame.columns:
        if column in role_columns:
            continue
        values = frame[column].astype("string").str.strip()
        present = values[values.fillna("") != ""]
        if len(present) == 0:
            ignored.append(column)
            continue
        unique_share = present.nunique() / len(present)
        parsed = to_number(present)
        textual = parsed.notna().mean() <= 0.5  # numbers stay numbers (an epoch reads as one)
        if R.TIMESTAMP in roles and textual and dated_share(present) > NUMERIC_SHARE:
            dates[column] = detect_format(present)
            continue
        if clock is not None and _near_in_time(parsed, clock):
            dates[column] = TimeFormat("number")  # another date in epoch seconds
            continue
        if parsed.notna().mean() >= NUMERIC_SHARE:
            whole = bool(np.all(np.mod(parsed.dropna(), 1) == 0))
            is_id = whole and unique_share > ID_UNIQUE_SHARE and len(present) > 50
            (ignored if is_id else numeric).append(column)
        elif present.nunique() == len(present) or present.nunique() < 2:
            ignored.append(column)  # every value differs (an id, free text), or one value
        else:
            text.append(column)
    # A wide file keeps its first columns in file order, whatever their kind: the producer's
    # grouping (card, address, e-mail domain, flags) says more than numbers-first would.
    keep = [c for c in frame.columns if c in numeric or c in text][:MAX_EXTRA_COLUMNS]
    ignored += [c for c in numeric + text if c not in keep]
    return ExtraColumns(
        [c for c in numeric if c in keep], [c for c in text if c in keep], ignored, dates
    )


def _absolute_clock(frame: pd.DataFrame, roles: RoleMap) -> np.ndarray | None:
    """The rows' times in epoch seconds, when they are real dates (not an offset from the
    file's start or hour steps)."""
    clock = clock_of(frame, roles)
    clock = clock[np.isfinite(clock)] if clock is not None else None
    return clock if clock is not None and len(clock) and clock.min() > EPOCH_FROM else None


def _near_in_time(parsed: pd.Series, clock: np.ndarray) -> bool:
    """Whole numbers in epoch seconds from ten years before the file's first row to a year
    after its last: a second date written as an epoch (a sign-up time); identifiers and IP
    numbers spread far wider."""
    values = parsed.dropna().to_numpy(np.float64)
    if len(values) < NUMERIC_SHARE * len(parsed) or values.std() == 0:
        return False
    low, high = clock.min() - 10 * YEAR, clock.max() + YEAR
    whole = bool(np.all(np.mod(values, 1) == 0))
    return whole and bool(np.all((values >= low) & (values <= high)))


def reference_confidence(
    similarity: float, roles: RoleMap, extra: ExtraColumns, trust: float = REFERENCE_TRUST
) -> float:
    """How far the reference models can be trusted on this file, in [0, 1]: `trust` times the
    best match's similarity times the share of the file's informative columns they can use."""
    informative = {c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}
    seen = len(informative)
    share = seen / max(1, seen + len(extra.used))
    return float(np.clip(trust * similarity * share, 0.0, 1.0))


def rate_band(estimate: float, reference: float, weight: float) -> tuple[float, float]:
    """A plausible range for the file's fraud rate: from a third of the lowest to three times
    the highest of the estimate, the reference models' own rate and (unless they are fully
    trusted) the fallback rate. Wide on purpose: no label says which of them is right."""
    sources = [estimate, reference] + ([FALLBACK_PRIOR] if weight < 1 else [])
    sources = [s for s in sources if s > 0] or [FALLBACK_PRIOR]
    return min(sources) / BAND_FACTOR, min(1.0, max(sources) * BAND_FACTOR)


class _Ecdf:
    """Mid-rank empirical CDF of a sample, in (0, 1): ties share their mean rank, so a value
    equal to many sample values (an isotonic calibrator's steps) sits in their middle.

    Continuous, so that the file's rows between two sample values (fifty of them, in a file of
    a million rows and a sample of 20,000) keep their order: linear between the sample's
    values, and past its ends on toward 0 and 1 (hyperbolically, in units of the mean gap
    between the last ten values, so that no distance runs into the end)."""

    def __init__(self, sample: np.ndarray) -> None:
        values, counts = np.unique(sample, return_counts=True)
        n = len(sample)
        self.values = values
        self.mid = (2 * (np.cumsum(counts) - counts) + counts + 1) / (2 * n + 2)
        gaps = np.diff(values)
        self.gaps = (gaps[:10].mean(), gaps[-10:].mean()) if len(gaps) else (1.0, 1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, np.float64)
        u = np.interp(x, self.values, self.mid)
        low, high = self.values[0], self.values[-1]
        below = self.mid[0] / (1 + np.maximum(low - x, 0) / self.gaps[0])
        above = 1 - (1 - self.mid[-1]) / (1 + np.maximum(x - high, 0) / self.gaps[1])
        return np.where(x < low, below, np.where(x > high, above, u))


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


class Blender:
    """Fitted on a uniform sample of the file: ensemble probabilities and anomaly scores."""

    def __init__(self, weight: float, prior: float, fallback: float = FALLBACK_PRIOR) -> None:
        self.weight = float(np.clip(weight, 0.0, 1.0))
        self.reference_rate = float(prior)
        # Shrink the ensemble's base rate toward the fallback as confidence falls (log scale).
        log_prior = self.weight * np.log(max(prior, 1e-6)) + (1 - self.weight) * np.log(fallback)
        self.prior = float(np.exp(log_prior))

    def fit(self, ensemble: np.ndarray, anomaly: np.ndarray) -> Blender:
        ensemble, anomaly = np.asarray(ensemble, np.float64), np.asarray(anomaly, np.float64)
        self.ensemble_cdf = _Ecdf(ensemble)
        self.anomaly_cdf = _Ecdf(anomaly)
        blended = np.sort(self._rank(ensemble, anomaly))  # row by row: the pairs stay together
        self.blended_cdf = _Ecdf(blended)
        self.grid = (np.arange(len(ensemble)) + 0.5) / len(ensemble)
        self.levels = spread_ties(logit(np.sort(ensemble)))
        self.shift = self._shift_to(
            self.prior, np.interp(self.blended_cdf(blended), self.grid, self.levels)
        )
        return self

    def _rank(self, ensemble: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        w = self.weight
        return w * self.ensemble_cdf(ensemble) + (1 - w) * self.anomaly_cdf(anomaly)

    @staticmethod
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

    def adapt(self, sample_scores: np.ndarray, sample_anomaly: np.ndarray) -> None:
        """Rank rows by a file model's scores instead (its out-of-fold scores on the sample),
        hedged with the anomaly rank."""
        self.model_cdf = _Ecdf(np.sort(np.asarray(sample_scores, np.float64)))
        self.adapted_cdf = _Ecdf(np.sort(self.hedged(sample_scores, sample_anomaly)))

    def hedged(self, scores: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Each row's hedged rank from its file-model and anomaly scores (for `from_hedged`)."""
        model_rank = self.model_cdf(np.asarray(scores, np.float64))
        anomaly_rank = self.anomaly_cdf(np.asarray(anomaly, np.float64))
        return (1 - ANOMALY_HEDGE) * model_rank + ANOMALY_HEDGE * anomaly_rank

    def from_hedged(self, hedged: np.ndarray) -> np.ndarray:
        """Final probability per row from its hedged rank."""
        return self._probability(self.adapted_cdf(hedged))

    def adapted(self, scores: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Final probability per row from the file model's scores and the anomaly scores."""
        return self.from_hedged(self.hedged(scores, anomaly))

    def __call__(self, ensemble: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Final probability per row from its blended rank."""
        return self._probability(self.blended_cdf(self._rank(ensemble, anomaly)))

    def _probability(self, u: np.ndarray) -> np.ndarray:
        """The ensemble's probability at rank u (its ties spread), its odds multiplied to bring
        the mean to the estimated rate."""
        return np.clip(
            1 / (1 + np.exp(-(_extended(u, self.grid, self.levels) + self.shift))), EPS, 1 - EPS
        )
