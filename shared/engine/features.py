"""Role-based features: the same named features from any schema, NaN where a role is absent.

A model trained on one client's columns can score another's because both are turned into these
features. Per-entity features look only at the entity's earlier transactions (by time, then row
order), as a live system would.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from shared.engine import roles as R
from shared.engine.roles import RoleMap, to_number
from shared.engine.timeparse import TimeFormat, parse_timestamps, read_clock

FEATURE_VERSION = 1
HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0

FEATURES: tuple[str, ...] = (
    "amount",
    "log_amount",
    "amount_is_round",
    "amount_cents",
    "hour",
    "weekday",
    "is_night",
    "cust_log_secs_since_prev",
    "cust_count_1h",
    "cust_count_24h",
    "cust_count_7d",
    "cust_n_prior",
    "cust_amount_ratio_7d",
    "cust_amount_ratio_prior",
    "cust_new_terminal",
    "cust_small_count_1h",
    "term_count_24h",
    "term_count_7d",
    "term_amount_ratio_7d",
    "term_n_prior",
    "distance",
    "log_distance",
    "balance_before",
    "balance_after",
    "balance_error",
    "empties_account",
    "amount_over_balance",
    "tx_type_freq",
    "category_freq",
    "channel_freq",
)

# Which roles each feature needs (all of them): the basis for "features an upload can fill".
NEEDS: dict[str, tuple[str, ...]] = {
    "amount": (R.AMOUNT,),
    "log_amount": (R.AMOUNT,),
    "amount_is_round": (R.AMOUNT,),
    "amount_cents": (R.AMOUNT,),
    "hour": (R.TIMESTAMP,),
    "weekday": (R.TIMESTAMP,),
    "is_night": (R.TIMESTAMP,),
    "cust_log_secs_since_prev": (R.CUSTOMER, R.TIMESTAMP),
    "cust_count_1h": (R.CUSTOMER, R.TIMESTAMP),
    "cust_count_24h": (R.CUSTOMER, R.TIMESTAMP),
    "cust_count_7d": (R.CUSTOMER, R.TIMESTAMP),
    "cust_n_prior": (R.CUSTOMER,),
    "cust_amount_ratio_7d": (R.CUSTOMER, R.TIMESTAMP, R.AMOUNT),
    "cust_amount_ratio_prior": (R.CUSTOMER, R.AMOUNT),
    "cust_new_terminal": (R.CUSTOMER, R.TERMINAL),
    "cust_small_count_1h": (R.CUSTOMER, R.TIMESTAMP, R.AMOUNT),
    "term_count_24h": (R.TERMINAL, R.TIMESTAMP),
    "term_count_7d": (R.TERMINAL, R.TIMESTAMP),
    "term_amount_ratio_7d": (R.TERMINAL, R.TIMESTAMP, R.AMOUNT),
    "term_n_prior": (R.TERMINAL,),
    "distance": (R.DISTANCE,),
    "log_distance": (R.DISTANCE,),
    "balance_before": (R.BALANCE_BEFORE,),
    "balance_after": (R.BALANCE_AFTER,),
    "balance_error": (R.BALANCE_BEFORE, R.BALANCE_AFTER, R.AMOUNT),
    "empties_account": (R.BALANCE_BEFORE, R.BALANCE_AFTER, R.AMOUNT),
    "amount_over_balance": (R.BALANCE_BEFORE, R.AMOUNT),
    "tx_type_freq": (R.TX_TYPE,),
    "category_freq": (R.CATEGORY,),
    "channel_freq": (R.CHANNEL,),
}


# Anomaly inputs that are a non-role column's (or a card's, a terminal's) value shares are
# named by this prefix and the column or role: `share:device_id`.
SHARE_PREFIX = "share:"
# An other date column's anomaly input (the time from it to the row): `since:signup_time`.
SINCE_PREFIX = "since:"
CATEGORICAL_FEATURES = {
    R.TX_TYPE: "tx_type_freq",
    R.CATEGORY: "category_freq",
    R.CHANNEL: "channel_freq",
}


def fillable(roles: set[str]) -> list[str]:
    """The features a file with these roles can provide."""
    return [f for f in FEATURES if set(NEEDS[f]) <= roles]


def _entity_history(
    codes: np.ndarray,
    seconds: np.ndarray,
    t: np.ndarray | None = None,
    amount: np.ndarray | None = None,
    windows: dict[str, float] | None = None,
    sums: dict[str, tuple[np.ndarray, str]] | None = None,
    first_of: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-row facts about the same entity's earlier rows, from one sort of (entity, time).

    Always n_prior; with t, secs_since_prev; with amount, mean_prior (of amount); per window
    count_<w>; per named sum, the value summed over its window; with first_of (a sub-key such
    as the terminal), first_seen: 1 where the (entity, sub-key) pair appears for the first
    time. Rows sort by entity, then
    whole seconds, then file order; a window holds the earlier rows less than `width` seconds
    before.
    """
    n = len(codes)
    pos = np.arange(n)
    key = (codes.astype(np.int64) << 36) + seconds
    order = np.argsort(key, kind="stable")
    k, c = key[order], codes[order]
    start = np.r_[True, c[1:] != c[:-1]]
    group_start = np.maximum.accumulate(np.where(start, pos, 0))
    n_prior = (pos - group_start).astype(np.float64)
    out: dict[str, np.ndarray] = {"n_prior": n_prior}
    if first_of is not None:
        pair = c.astype(np.int64) * (1 << 31) + first_of[order]
        out["first_seen"] = (~pd.Series(pair).duplicated().to_numpy()).astype(np.float64)
    if t is not None:
        ts = t[order]
        out["secs_since_prev"] = np.where(start, np.nan, ts - np.r_[np.nan, ts[:-1]])
    cums: dict[int, np.ndarray] = {}

    def cumulative(values: np.ndarray) -> np.ndarray:
        if id(values) not in cums:
            cums[id(values)] = np.r_[0.0, np.cumsum(np.nan_to_num(values[order]), dtype=float)]
        return cums[id(values)]

    with np.errstate(invalid="ignore", divide="ignore"):
        if amount is not None:
            cum = cumulative(amount)
            out["mean_prior"] = np.where(
                n_prior > 0, (cum[pos] - cum[group_start]) / n_prior, np.nan
            )
        lows = {}
        for window, width in (windows or {}).items():
            lows[window] = np.maximum(np.searchsorted(k, k - int(width), side="left"), group_start)
            out[f"count_{window}"] = (pos - lows[window]).astype(np.float64)
        for name, (values, window) in (sums or {}).items():
            cum = cumulative(values)
            out[name] = cum[pos] - cum[lows[window]]
    result = {}
    for name in list(out):
        back = np.empty(n, dtype=np.float32)  # float32 like the feature matrix: half the memory
        back[order] = out.pop(name)
        result[name] = back
    return result


PARTITION_ROWS = 250_000


def _partition(job: dict[str, Any], idx: np.ndarray) -> dict[str, Any]:
    """An entity kind's arrays (and its sums' values) for the rows `idx`."""
    options: dict[str, Any] = {}
    for name, value in job.items():
        if isinstance(value, np.ndarray):
            options[name] = value[idx]
        elif name == "sums":
            options[name] = {k: (v[idx], w) for k, (v, w) in value.items()}
        else:
            options[name] = value
    return options


def frequencies(series: pd.Series) -> dict[str, float]:
    """Each value's share of all rows (the file-level encoding of a categorical role)."""
    counts = series.astype("string").value_counts(dropna=True)
    return (counts / len(series)).to_dict()


def apply_frequencies(series: pd.Series, shares: dict[str, float]) -> np.ndarray:
    return series.astype("string").map(shares).astype(float).to_numpy()


def row_features(
    n: int,
    amount: np.ndarray | None,
    t: np.ndarray | None,
    distance: np.ndarray | None = None,
    before: np.ndarray | None = None,
    after: np.ndarray | None = None,
    freqs: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Features that need only the row itself (plus file-level category shares)."""
    nan = np.full(n, np.nan)
    amount = nan if amount is None else amount
    f: dict[str, np.ndarray] = {"amount": amount, "log_amount": np.log1p(np.clip(amount, 0, None))}
    cents = np.round(np.abs(amount) * 100) % 100
    f["amount_cents"] = cents
    f["amount_is_round"] = np.where(np.isnan(amount), np.nan, (cents == 0).astype(float))
    if t is not None:
        secs = np.mod(t, DAY)
        f["hour"] = secs / HOUR
        f["weekday"] = np.floor(np.mod(t / DAY + 3, 7))  # 1970-01-01 was a Thursday
        f["is_night"] = np.where(np.isnan(t), np.nan, (secs < 6 * HOUR).astype(float))
    if distance is not None:
        f["distance"], f["log_distance"] = distance, np.log1p(np.clip(distance, 0, None))
    before = nan if before is None else before
    after = nan if after is None else after
    f["balance_before"], f["balance_after"] = before, after
    with np.errstate(invalid="ignore", divide="ignore"):
        f["balance_error"] = before - amount - after
        f["empties_account"] = np.where(
            np.isnan(before) | np.isnan(after), np.nan, ((after == 0) & (before > 0)) * 1.0
        )
        f["amount_over_balance"] = np.where(before > 0, amount / before, np.nan)
    f.update(freqs or {})
    return f


def _history_jobs(
    cust: np.ndarray | None,
    term: np.ndarray | None,
    clock: np.ndarray | None,
    amount: np.ndarray,
    has_time: bool,
) -> dict[str, dict[str, Any]]:
    """What to count for each entity kind: per card, per terminal."""
    jobs: dict[str, dict[str, Any]] = {}
    if cust is not None:
        jobs["cust"] = {"codes": cust, "t": clock, "amount": amount}
        if has_time:
            small = (amount < 5).astype(np.float32)  # (a NaN amount is not small)
            jobs["cust"]["windows"] = {"1h": HOUR, "24h": DAY, "7d": WEEK}
            jobs["cust"]["sums"] = {"amount_7d": (amount, "7d"), "small_1h": (small, "1h")}
        if term is not None:
            jobs["cust"]["first_of"] = term
    if term is not None:
        jobs["term"] = {"codes": term}
        if has_time:
            jobs["term"]["windows"] = {"24h": DAY, "7d": WEEK}
            jobs["term"]["sums"] = {"amount_7d": (amount, "7d")}
    return jobs


def _f32(values: np.ndarray) -> np.ndarray:
    """As float32, the per-row arrays' type (made at once: a large file's float64 copies would
    all be alive together)."""
    return values.astype(np.float32, copy=False)


def entity_parts(
    cust: np.ndarray | None,
    term: np.ndarray | None,
    t: np.ndarray | None,
    amount: np.ndarray | None,
) -> Iterator[tuple[str, np.ndarray, dict[str, np.ndarray]]]:
    """Per-customer and per-terminal history over the whole file (ids as integer codes), one
    entity partition at a time: the kind, the partition's row numbers and its features as
    float32. Partitions (code modulo P) never share an entity, so each is exact and the
    temporaries are sized by the partition, not by the file; two are computed at a time (the
    sorts release the GIL)."""
    n = len(cust) if cust is not None else len(term) if term is not None else 0
    if n == 0:
        return
    amount = np.full(n, np.nan) if amount is None else amount
    has_time = t is not None and bool(np.isfinite(t).any())
    if has_time:
        assert t is not None
        finite = np.isfinite(t)
        seconds = np.floor(np.where(finite, t - np.min(t[finite]), 0.0)).astype(np.int64)
        clock = t
    else:
        seconds, clock = np.arange(n, dtype=np.int64), None
    parts = max(1, int(np.ceil(n / PARTITION_ROWS)))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for kind, job in _history_jobs(cust, term, clock, amount, has_time).items():
            job["seconds"] = seconds
            one = partial(_kind_partition, kind, job, job["codes"] % parts, amount, has_time)
            yield from pool.map(one, range(parts))


def _kind_partition(
    kind: str,
    job: dict[str, Any],
    bucket: np.ndarray,
    amount: np.ndarray,
    has_time: bool,
    part: int,
) -> tuple[str, np.ndarray, dict[str, np.ndarray]]:
    """One partition's rows and features of an entity kind."""
    idx = np.flatnonzero(bucket == part)
    history = _entity_history(**_partition(job, idx))
    return kind, idx, dict(_named(kind, history, amount[idx], has_time))


def entity_features(
    cust: np.ndarray | None,
    term: np.ndarray | None,
    t: np.ndarray | None,
    amount: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Per-customer and per-terminal history over the whole file, as float32 (`entity_parts`
    put together in memory)."""
    out: dict[str, np.ndarray] = {}
    n = len(cust) if cust is not None else len(term) if term is not None else 0
    for _, idx, features in entity_parts(cust, term, t, amount):
        for name, values in features.items():
            if name not in out:
                out[name] = np.empty(n, np.float32)
            out[name][idx] = values
    return out


def _named(
    kind: str, h: dict[str, np.ndarray], amount: np.ndarray, has_time: bool
) -> Iterator[tuple[str, np.ndarray]]:
    """An entity kind's features from its history (`h`, emptied as they go)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        yield f"{kind}_n_prior", _f32(h.pop("n_prior"))
        if kind == "cust":
            yield "cust_amount_ratio_prior", _f32(amount / h.pop("mean_prior"))
        if has_time:
            if kind == "cust":
                yield "cust_log_secs_since_prev", _f32(np.log1p(h.pop("secs_since_prev")))
            for w in ("1h", "24h") if kind == "cust" else ("24h",):
                yield f"{kind}_count_{w}", _f32(h.pop(f"count_{w}"))
            count_7d = h.pop("count_7d")
            yield f"{kind}_count_7d", _f32(count_7d)
            mean_7d = np.where(count_7d > 0, h.pop("amount_7d") / count_7d, np.nan)
            yield f"{kind}_amount_ratio_7d", _f32(amount / mean_7d)
            if kind == "cust":
                yield "cust_small_count_1h", _f32(h.pop("small_1h"))
        if "first_seen" in h:
            yield "cust_new_terminal", _f32(h.pop("first_seen"))


def assemble(parts: dict[str, np.ndarray], n: int, roles: set[str]) -> np.ndarray:
    """The (n, len(FEATURES)) float32 matrix; a feature whose roles are missing stays NaN."""
    matrix = np.full((n, len(FEATURES)), np.nan, dtype=np.float32)
    for i, name in enumerate(FEATURES):
        if name in parts and set(NEEDS[name]) <= roles:
            values = np.array(parts[name], dtype=np.float64)
            values[~np.isfinite(values)] = np.nan
            matrix[:, i] = values
    return matrix


def codes(series: pd.Series) -> np.ndarray:
    """Integer codes for ids (equal ids, equal codes)."""
    values, _ = pd.factorize(series.astype("string"), use_na_sentinel=True)
    return values.astype(np.int64)


def clock_of(frame: pd.DataFrame, roles: RoleMap) -> np.ndarray | None:
    """The timestamp column in seconds, or None when the file has none."""
    column = roles.get(R.TIMESTAMP)
    if column is None:
        return None
    if roles.date_parts:
        return read_clock(frame, column, TimeFormat("parts", parts=roles.date_parts))
    return parse_timestamps(frame[column], R.tokens_of(column)).to_numpy()


def build_features(
    frame: pd.DataFrame, roles: RoleMap, t: np.ndarray | None = None
) -> pd.DataFrame:
    """The FEATURES of each row of a whole file, as float32, NaN where the file lacks a role.

    `t` is clock_of(frame, roles) when the caller already has it.
    """
    n = len(frame)

    def number(role: str) -> np.ndarray | None:
        return to_number(frame[roles.get(role)]).to_numpy() if role in roles else None

    amount = number(R.AMOUNT)
    if t is None:
        t = clock_of(frame, roles)
    freqs = {
        name: apply_frequencies(frame[roles.get(role)], frequencies(frame[roles.get(role)]))
        for role, name in CATEGORICAL_FEATURES.items()
        if role in roles
    }
    parts = row_features(
        n, amount, t, number(R.DISTANCE), number(R.BALANCE_BEFORE), number(R.BALANCE_AFTER), freqs
    )
    cust = codes(frame[roles.get(R.CUSTOMER)]) if R.CUSTOMER in roles else None
    term = codes(frame[roles.get(R.TERMINAL)]) if R.TERMINAL in roles else None
    parts.update(entity_features(cust, term, t, amount))
    matrix = assemble(parts, n, set(roles.columns))
    return pd.DataFrame(matrix, columns=list(FEATURES), index=frame.index)
