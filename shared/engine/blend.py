"""The file's own evidence beside the reference models: which other columns anomaly detection
may use, how much the reference models can see, and the confidence-weighted blend.

Reference models transfer only as far as they see the file; what they cannot see, only the
file itself can tell. The blend averages the two rankings (the ensemble's and the anomaly
detector's), weighted by that confidence, and maps the blended rank back to probabilities with
the ensemble's own distribution, shifted to an estimated base rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.engine import roles as R
from shared.engine.calibration import logit
from shared.engine.roles import RoleMap, to_number

MAX_EXTRA_COLUMNS = 64
ID_UNIQUE_SHARE = 0.95  # a whole-number column almost all of whose values differ is an id
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-empty values parses
FALLBACK_PRIOR = 0.01  # the base rate assumed when the reference models see little of a file
# How much a perfect match is trusted against the file's own anomaly ranking. Chosen on the real
# files of ../shared/realdata leaving each file out in turn (benchmarks/real_data.py).
REFERENCE_TRUST = 0.25


@dataclass(frozen=True)
class ExtraColumns:
    """The file's columns outside the recognised roles that anomaly detection uses."""

    numeric: list[str]
    text: list[str]  # each value's share of the whole file (a shared device, a rare browser)
    ignored: list[str]

    @property
    def used(self) -> list[str]:
        return [*self.numeric, *self.text]


def extra_columns(frame: pd.DataFrame, roles: RoleMap) -> ExtraColumns:
    """Classify the non-role columns of a text sample: numbers, categories, or left out."""
    role_columns = set(roles.columns.values())
    numeric: list[str] = []
    text: list[str] = []
    ignored: list[str] = []
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
        if parsed.notna().mean() >= NUMERIC_SHARE:
            whole = bool(np.all(np.mod(parsed.dropna(), 1) == 0))
            is_id = whole and unique_share > ID_UNIQUE_SHARE and len(present) > 50
            (ignored if is_id else numeric).append(column)
        elif present.nunique() == len(present) or present.nunique() < 2:
            ignored.append(column)  # every value differs (an id, free text), or one value
        else:
            text.append(column)
    keep = (numeric + text)[:MAX_EXTRA_COLUMNS]
    ignored += [c for c in numeric + text if c not in keep]
    return ExtraColumns([c for c in numeric if c in keep], [c for c in text if c in keep], ignored)


def reference_confidence(
    similarity: float, roles: RoleMap, extra: ExtraColumns, trust: float = REFERENCE_TRUST
) -> float:
    """How far the reference models can be trusted on this file, in [0, 1]: `trust` times the
    best match's similarity times the share of the file's informative columns they can use."""
    informative = {c for r, c in roles.columns.items() if r not in (R.LABEL, R.TX_ID)}
    seen = len(informative)
    share = seen / max(1, seen + len(extra.used))
    return float(np.clip(trust * similarity * share, 0.0, 1.0))


def _ecdf(sorted_sample: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Mid-rank empirical CDF of values against a sorted sample, in (0, 1)."""
    n = len(sorted_sample)
    lo = np.searchsorted(sorted_sample, values, side="left")
    hi = np.searchsorted(sorted_sample, values, side="right")
    return (lo + hi + 1) / (2 * n + 2)


class Blender:
    """Fitted on a uniform sample of the file: ensemble probabilities and anomaly scores."""

    def __init__(self, weight: float, prior: float, fallback: float = FALLBACK_PRIOR) -> None:
        self.weight = float(np.clip(weight, 0.0, 1.0))
        # Shrink the ensemble's base rate toward the fallback as confidence falls (log scale).
        log_prior = self.weight * np.log(max(prior, 1e-6)) + (1 - self.weight) * np.log(fallback)
        self.prior = float(np.exp(log_prior))
        self.ensemble = np.zeros(1)
        self.anomaly = np.zeros(1)
        self.blended = np.zeros(1)
        self.shift = 0.0

    def fit(self, ensemble: np.ndarray, anomaly: np.ndarray) -> Blender:
        self.ensemble = np.sort(np.asarray(ensemble, np.float64))
        self.anomaly = np.sort(np.asarray(anomaly, np.float64))
        self.blended = np.sort(self._rank(ensemble, anomaly))
        self.shift = self._shift_to(self.prior, self._quantile(_ecdf(self.blended, self.blended)))
        return self

    def _rank(self, ensemble: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        return self.weight * _ecdf(self.ensemble, ensemble) + (1 - self.weight) * _ecdf(
            self.anomaly, anomaly
        )

    def _quantile(self, u: np.ndarray) -> np.ndarray:
        """The ensemble's probability at rank u (its distribution on the sample)."""
        grid = (np.arange(len(self.ensemble)) + 0.5) / len(self.ensemble)
        return np.interp(u, grid, self.ensemble)

    @staticmethod
    def _shift_to(target: float, p: np.ndarray) -> float:
        """The log-odds shift that makes the mean probability equal target (bisection)."""
        z = logit(p)
        lo, hi = -20.0, 20.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if np.mean(1 / (1 + np.exp(-(z + mid)))) > target:
                hi = mid
            else:
                lo = mid
        return (lo + hi) / 2

    def __call__(self, ensemble: np.ndarray, anomaly: np.ndarray) -> np.ndarray:
        """Final probability per row."""
        u = _ecdf(self.blended, self._rank(ensemble, anomaly))
        return 1 / (1 + np.exp(-(logit(self._quantile(u)) + self.shift)))
