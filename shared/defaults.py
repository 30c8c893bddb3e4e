"""Scoring defaults and the one risk-threshold check, shared by the settings, the job options
and the engine (a leaf: it imports nothing of ours)."""

from __future__ import annotations

TOP_K = 3  # reference models per ensemble
HIGH_THRESHOLD = 0.5  # fraud_probability from which a row is `high`
MEDIUM_THRESHOLD = 0.1
# At least these riskiest shares are `high`, and `medium` or above, when fewer rows reach the
# thresholds: without labels a file's level is loose, and an analyst needs a list.
MIN_HIGH_SHARE = 0.001
MIN_MEDIUM_SHARE = 0.01
CHUNK_ROWS = 100_000  # rows read, featurised and written at a time
PART_ROWS = 200_000  # rows per part when one file is scored by many workers
SAMPLE_ROWS = 20_000  # the uniform sample that roles, matching and the fitted plan come from


def check_order(medium: float, high: float, names: tuple[str, str]) -> None:
    """ValueError unless 0 <= medium <= high <= 1, naming them as the caller knows them."""
    if medium > high:
        raise ValueError(f"{names[0]} must not exceed {names[1]}")
    if not 0 <= medium <= high <= 1:
        raise ValueError(f"{names[0]} and {names[1]} must lie in [0, 1]")
