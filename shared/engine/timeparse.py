"""Timestamps in the forms clients send: ISO, epoch seconds or ms, dd/mm/yyyy HH:MM, offsets.

The format is detected once, on a sample, and then applied to every chunk of a file, so a file
parses the same way however it is chunked.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Text formats tried after ISO 8601, day-first before month-first (most clients are European).
TEXT_FORMATS = (
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%d/%m/%y %H:%M",
    "%m/%d/%y %H:%M",
    "%m/%d/%y %H:%M:%S",
    "%d/%m/%Y",
    "%Y%m%d%H%M%S",
    # What spreadsheets write: "Jan 1, 2024 1:00 PM", "1/31/2024 1:00:00 PM", "01-Jan-2024 13:00".
    "%b %d, %Y %I:%M %p",
    "%b %d, %Y %I:%M:%S %p",
    "%B %d, %Y %I:%M %p",
    "%b %d, %Y",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y %I:%M:%S %p",
    "%d-%b-%Y %H:%M",
    "%d-%b-%Y %H:%M:%S",
    "%d %b %Y %H:%M",
)
HOURLY_TOKENS = {"step", "hour", "hours", "heure", "heures"}
EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class TimeFormat:
    """How to turn one column into seconds: text with a format, or numbers times a scale."""

    kind: str  # "text" | "number" | "datetime" | "parts" | "none"
    fmt: str = ""
    scale: float = 1.0
    parts: tuple[str, ...] = ()  # kind "parts": the year, month, day (and time) columns


def _parse_text(text: pd.Series, fmt: str) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=fmt == "ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return (parsed - EPOCH).dt.total_seconds().to_numpy(np.float64)


def detect_format(values: pd.Series, tokens: list[str] | None = None) -> TimeFormat:
    """The format that reads most of the sample (numbers: epoch s/ms, offsets, hour steps)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return TimeFormat("datetime")
    if pd.api.types.is_bool_dtype(values):
        return TimeFormat("none")
    if pd.api.types.is_numeric_dtype(values):
        numeric = values.astype(float)
    else:
        text = values.astype("string").str.strip()
        numeric = pd.to_numeric(text, errors="coerce")
        if numeric.notna().mean() <= 0.99:
            sample = text[text.fillna("") != ""].head(1000)
            best, best_hits = TimeFormat("none"), 0
            for fmt in ("ISO8601", *TEXT_FORMATS):
                hits = int(np.isfinite(_parse_text(sample, fmt)).sum())
                if hits > best_hits:
                    best, best_hits = TimeFormat("text", fmt), hits
                if best_hits >= 0.99 * len(sample):
                    break
            return best
    finite = numeric[np.isfinite(numeric)]
    top = float(finite.abs().max()) if len(finite) else 0.0
    if top > 1e11:  # epoch milliseconds
        return TimeFormat("number", scale=0.001)
    if top < 1e5 and set(tokens or ()) & HOURLY_TOKENS:  # PaySim-style hour steps
        return TimeFormat("number", scale=3600.0)
    return TimeFormat("number")  # epoch seconds, or seconds since some start (TransactionDT)


def apply_format(values: pd.Series | pa.Array | pa.ChunkedArray, fmt: TimeFormat) -> np.ndarray:
    """Seconds as float64 (epoch, or an offset for relative clocks); NaN where unreadable."""
    if fmt.kind == "none":
        return np.full(len(values), np.nan)
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        fast = _arrow_fast_path(values, fmt)
        if fast is not None:
            return fast
        values = pd.Series(values.to_pylist(), dtype="string")
    if fmt.kind == "datetime":
        stamps = values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz else values
        return (stamps - EPOCH).dt.total_seconds().to_numpy(np.float64)
    if fmt.kind == "number":
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            numbers = values.astype(float)
        else:
            numbers = pd.to_numeric(values.astype("string").str.strip(), errors="coerce")
        return numbers.to_numpy(np.float64) * fmt.scale
    return _parse_text(values.astype("string").str.strip(), fmt.fmt)


def _arrow_fast_path(values: pa.Array | pa.ChunkedArray, fmt: TimeFormat) -> np.ndarray | None:
    """pyarrow's C++ parsers for the common cases; None means use the pandas path."""
    text = pc.utf8_trim_whitespace(values)
    blank = pc.equal(text, "")
    text = pc.if_else(blank, None, text)
    try:
        if fmt.kind == "number":
            out = pc.cast(text, pa.float64())
        elif fmt.fmt == "ISO8601":
            out = pc.cast(pc.cast(text, pa.timestamp("s")), pa.int64())
        else:
            stamps = pc.strptime(text, format=fmt.fmt, unit="s", error_is_null=True)
            out = pc.cast(stamps, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    seconds = out.to_numpy(zero_copy_only=False).astype(np.float64)
    return seconds * fmt.scale if fmt.kind == "number" else seconds


def read_clock(columns: Any, column: str, fmt: TimeFormat) -> np.ndarray:
    """Seconds for the timestamp `column` of a table or frame (`columns[name]` gives a column),
    or for the columns a date is split over."""
    if fmt.kind != "parts":
        return apply_format(columns[column], fmt)
    year, month, day, *clock = [_numbers(columns[name]) for name in fmt.parts[:3]] + [
        _seconds_of_day(columns[name]) for name in fmt.parts[3:]
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dates = pd.to_datetime(
            pd.DataFrame({"year": year, "month": month, "day": day}), errors="coerce"
        )
    seconds = (dates - EPOCH).dt.total_seconds().to_numpy(np.float64)
    return seconds + clock[0] if clock else seconds


def _numbers(values: Any) -> np.ndarray:
    return apply_format(values, TimeFormat("number"))


def _seconds_of_day(values: Any) -> np.ndarray:
    """'06:21', '6:21:30' or an hour number, in seconds since midnight (0 where unreadable)."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = pd.Series(values.to_pylist(), dtype="string")
    text = values.astype("string").str.strip()
    pieces = text.str.split(":", expand=True, n=2).reindex(columns=range(3))
    numbers = pieces.apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    seconds = np.nansum(numbers * np.array([3600.0, 60.0, 1.0]), axis=1)
    return np.where(np.isfinite(numbers[:, 0]), seconds, 0.0)


def parse_timestamps(series: pd.Series, tokens: list[str] | None = None) -> pd.Series:
    """Seconds for a whole column, its format detected from the column itself."""
    values = apply_format(series, detect_format(series, tokens))
    return pd.Series(values, index=series.index)
