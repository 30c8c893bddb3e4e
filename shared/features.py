"""Role-based features: the same named features from any schema, NaN where a role is absent.

A model trained on one client's columns can score another's because both are turned into these
features. Per-entity features look only at the entity's earlier transactions (by time, then row
order), as a live system would.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from shared import roles as R
from shared.roles import RoleMap, to_number
from shared.timeparse import parse_timestamps

FEATURE_VERSION = 1
HOUR, DAY, WEEK = 3600.0, 86400.0, 7 * 86400.0

FEATURES: tuple[str, ...] = (
    "amount", "log_amount", "amount_is_round", "amount_cents",
    "hour", "weekday", "is_night",
    "cust_log_secs_since_prev", "cust_count_1h", "cust_count_24h", "cust_count_7d",
    "cust_n_prior", "cust_amount_ratio_7d", "cust_amount_ratio_prior", "cust_new_terminal",
    "cust_small_count_1h",
    "term_count_24h", "term_count_7d", "term_amount_ratio_7d", "term_n_prior",
    "distance", "log_distance",
    "balance_before", "balance_after", "balance_error", "empties_account", "amount_over_balance",
    "tx_type_freq", "category_freq", "channel_freq",
)  # fmt: skip

# Which roles each feature needs (all of them): the basis for "features an upload can fill".
NEEDS: dict[str, tuple[str, ...]] = {
    "amount": (R.AMOUNT,), "log_amount": (R.AMOUNT,), "amount_is_round": (R.AMOUNT,),
    "amount_cents": (R.AMOUNT,),
    "hour": (R.TIMESTAMP,), "weekday": (R.TIMESTAMP,), "is_night": (R.TIMESTAMP,),
    "cust_log_secs_since_prev": (R.CUSTOMER, R.TIMESTAMP),
    "cust_count_1h": (R.CUSTOMER, R.TIMESTAMP), "cust_count_24h": (R.CUSTOMER, R.TIMESTAMP),
    "cust_count_7d": (R.CUSTOMER, R.TIMESTAMP), "cust_n_prior": (R.CUSTOMER,),
    "cust_amount_ratio_7d": (R.CUSTOMER, R.TIMESTAMP, R.AMOUNT),
    "cust_amount_ratio_prior": (R.CUSTOMER, R.AMOUNT),
    "cust_new_terminal": (R.CUSTOMER, R.TERMINAL),
    "cust_small_count_1h": (R.CUSTOMER, R.TIMESTAMP, R.AMOUNT),
    "term_count_24h": (R.TERMINAL, R.TIMESTAMP), "term_count_7d": (R.TERMINAL, R.TIMESTAMP),
    "term_amount_ratio_7d": (R.TERMINAL, R.TIMESTAMP, R.AMOUNT), "term_n_prior": (R.TERMINAL,),
    "distance": (R.DISTANCE,), "log_distance": (R.DISTANCE,),
    "balance_before": (R.BALANCE_BEFORE,), "balance_after": (R.BALANCE_AFTER,),
    "balance_error": (R.BALANCE_BEFORE, R.BALANCE_AFTER, R.AMOUNT),
    "empties_account": (R.BALANCE_BEFORE, R.BALANCE_AFTER, R.AMOUNT),
    "amount_over_balance": (R.BALANCE_BEFORE, R.AMOUNT),
    "tx_type_freq": (R.TX_TYPE,), "category_freq": (R.CATEGORY,), "channel_freq": (R.CHANNEL,),
}  # fmt: skip


CATEGORICAL_FEATURES = {R.TX_TYPE: "tx_type_freq", R.CATEGORY: "category_freq",
                        R.CHANNEL: "channel_freq"}  # fmt: skip


def fillable(roles: set[str]) -> list[str]:
    """The features a file with these roles can provide."""
    return [f for f in FEATURES if set(NEEDS[f]) <= roles]


def _codes(series: pd.Series) -> np.ndarray:
    codes, _ = pd.factorize(series.astype("string"), use_na_sentinel=True)
    return codes.astype(np.int64)


def _entity_history(
    codes: np.ndarray, t: np.ndarray, amount: np.ndarray, windows: dict[str, float]
) -> dict[str, np.ndarray]:
    """Per-row facts about the same entity's earlier rows: counts and amount sums in windows."""
    n = len(codes)
    pos = np.arange(n)
    order = np.lexsort((pos, t, codes))
    c, ts, a = codes[order], t[order], np.nan_to_num(amount[order])
    start = np.r_[True, c[1:] != c[:-1]]
    group_start = np.maximum.accumulate(np.where(start, pos, 0))
    cum = np.r_[0.0, np.cumsum(a)]
    out: dict[str, np.ndarray] = {}
    n_prior = (pos - group_start).astype(np.float64)
    out["n_prior"] = n_prior
    prior_sum = cum[pos] - cum[group_start]
    with np.errstate(invalid="ignore", divide="ignore"):
        out["mean_prior"] = np.where(n_prior > 0, prior_sum / n_prior, np.nan)
    prev_t = np.r_[np.nan, ts[:-1]]
    out["secs_since_prev"] = np.where(start, np.nan, ts - prev_t)
    if windows:
        t0 = np.nanmin(ts) if np.isfinite(ts).any() else 0.0
        key = (c << 36) + np.floor(np.nan_to_num(ts - t0, nan=0.0)).astype(np.int64)
        for name, width in windows.items():
            lo = np.searchsorted(key, key - int(width), side="left")
            lo = np.maximum(lo, group_start)
            count = (pos - lo).astype(np.float64)
            out[f"count_{name}"] = count
            with np.errstate(invalid="ignore", divide="ignore"):
                out[f"mean_{name}"] = np.where(count > 0, (cum[pos] - cum[lo]) / count, np.nan)
    result = {}
    for name, values in out.items():
        back = np.empty(n, dtype=np.float64)
        back[order] = values
        result[name] = back
    return result


def frequencies(series: pd.Series) -> dict[str, float]:
    """Each value's share of the column (the file-level encoding of a categorical role)."""
    return series.astype("string").value_counts(normalize=True, dropna=True).to_dict()


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


def entity_features(
    cust: np.ndarray | None,
    term: np.ndarray | None,
    t: np.ndarray | None,
    amount: np.ndarray | None,
) -> dict[str, np.ndarray]:
    """Per-customer and per-terminal history over the whole file (ids as integer codes)."""
    f: dict[str, np.ndarray] = {}
    n = len(cust) if cust is not None else len(term) if term is not None else 0
    if n == 0:
        return f
    amount = np.full(n, np.nan) if amount is None else amount
    has_time = t is not None and bool(np.isfinite(t).any())
    clock = t if has_time else np.arange(n, dtype=np.float64)
    if cust is not None:
        windows = {"1h": HOUR, "24h": DAY, "7d": WEEK} if has_time else {}
        h = _entity_history(cust, clock, amount, windows)
        f["cust_n_prior"] = h["n_prior"]
        with np.errstate(invalid="ignore", divide="ignore"):
            f["cust_amount_ratio_prior"] = amount / h["mean_prior"]
            if has_time:
                f["cust_log_secs_since_prev"] = np.log1p(h["secs_since_prev"])
                for w in ("1h", "24h", "7d"):
                    f[f"cust_count_{w}"] = h[f"count_{w}"]
                f["cust_amount_ratio_7d"] = amount / h["mean_7d"]
                small = np.where(amount < 5, 1.0, 0.0)
                hs = _entity_history(cust, clock, small, {"1h": HOUR})
                f["cust_small_count_1h"] = hs["mean_1h"] * hs["count_1h"]
        if term is not None:
            pair = cust * (1 << 31) + term
            f["cust_new_terminal"] = (
                _entity_history(pair, clock, amount, {})["n_prior"] == 0
            ) * 1.0
    if term is not None:
        windows = {"24h": DAY, "7d": WEEK} if has_time else {}
        h = _entity_history(term, clock, amount, windows)
        f["term_n_prior"] = h["n_prior"]
        if has_time:
            f["term_count_24h"], f["term_count_7d"] = h["count_24h"], h["count_7d"]
            with np.errstate(invalid="ignore", divide="ignore"):
                f["term_amount_ratio_7d"] = amount / h["mean_7d"]
    return f


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
    return _codes(series)


def build_features(frame: pd.DataFrame, roles: RoleMap) -> pd.DataFrame:
    """The FEATURES of each row of a whole file, as float32, NaN where the file lacks a role."""
    n = len(frame)

    def number(role: str) -> np.ndarray | None:
        return to_number(frame[roles.get(role)]).to_numpy() if role in roles else None

    amount = number(R.AMOUNT)
    t = None
    if R.TIMESTAMP in roles:
        column = roles.get(R.TIMESTAMP)
        t = parse_timestamps(frame[column], R.tokens_of(column)).to_numpy()
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
