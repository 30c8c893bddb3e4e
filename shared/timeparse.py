"""Timestamps in the forms clients send: ISO, epoch seconds or ms, dd/mm/yyyy HH:MM, offsets."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

# Text formats tried after ISO 8601, day-first before month-first (most clients are European).
TEXT_FORMATS = (
    "%d/%m/%Y %H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%d.%m.%Y %H:%M",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%Y/%m/%d %H:%M:%S",
    "%d/%m/%Y",
    "%Y%m%d%H%M%S",
)
HOURLY_TOKENS = {"step", "hour", "hours", "heure", "heures"}


def _parse(text: pd.Series, fmt: str) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=fmt == "ISO8601")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return (parsed - pd.Timestamp("1970-01-01")).dt.total_seconds().astype(float)


def detect_format(text: pd.Series) -> str | None:
    """The format that parses most of a sample, or None when none parses any."""
    sample = text.dropna().head(1000)
    best, best_hits = None, 0
    for fmt in ("ISO8601", *TEXT_FORMATS):
        hits = int(_parse(sample, fmt).notna().sum())
        if hits > best_hits:
            best, best_hits = fmt, hits
        if best_hits >= 0.99 * len(sample):
            break
    return best


def _text_to_seconds(text: pd.Series) -> pd.Series:
    fmt = detect_format(text)
    if fmt is None:
        return pd.Series(np.nan, index=text.index)
    return _parse(text, fmt)


def parse_timestamps(series: pd.Series, tokens: list[str] | None = None) -> pd.Series:
    """Seconds as float64 (epoch, or an offset for relative clocks); NaN where unparseable."""
    if pd.api.types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_convert("UTC") if series.dt.tz is not None else series
        stamps = stamps.dt.tz_localize(None) if stamps.dt.tz is not None else stamps
        return (stamps - pd.Timestamp("1970-01-01")).dt.total_seconds()
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        values = series.astype(float)
        finite = values[np.isfinite(values)]
        top = float(finite.abs().max()) if len(finite) else 0.0
        if top > 1e11:  # epoch milliseconds
            return values / 1000.0
        if top < 1e5 and set(tokens or ()) & HOURLY_TOKENS:  # PaySim-style hour steps
            return values * 3600.0
        return values  # epoch seconds, or seconds since some start (TransactionDT)
    text = series.astype("string").str.strip()
    numeric = pd.to_numeric(text, errors="coerce")
    if numeric.notna().mean() > 0.99:
        return parse_timestamps(numeric, tokens)
    return _text_to_seconds(text)
