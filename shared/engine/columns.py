"""The file's columns outside the recognised roles: which of them anomaly detection and the
file model may use (numbers, categories, other dates) and which are left out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.engine import roles as R
from shared.engine.features import clock_of
from shared.engine.roles import RoleMap, dated_share, to_number
from shared.engine.timeparse import TimeFormat, detect_format

MAX_EXTRA_COLUMNS = 64
ID_UNIQUE_SHARE = 0.95  # a whole-number column almost all of whose values differ is an id
NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-empty values parses
EPOCH_FROM = 1e9  # epoch seconds of 2001: a clock above it is made of real dates
YEAR = 365.25 * 86400


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
