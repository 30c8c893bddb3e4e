"""Why a row is risky, in words an analyst reads.

The largest positive per-feature contributions (XGBoost's `pred_contribs`) of the model that
ranked the row, each phrased with the row's own value, and for rows the anomaly detector flags,
the input that lies furthest from the file's typical value.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from shared.engine.features import SHARE_PREFIX

MAX_REASONS = 3
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SEPARATOR = "; "


def _duration(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:.0f} {unit}{'s' if round(n) != 1 else ''}"
    return f"{seconds:.0f} s"


def _times(v: float) -> str:
    return f"{v:.1f}x" if v < 10 else f"{v:,.0f}x"


def _count(v: float, what: str) -> str:
    n = round(v)
    return f"{n} earlier transaction{'s' if n != 1 else ''} {what}"


# Feature name -> phrase for the row's value of it.
PHRASES: dict[str, Callable[[float], str]] = {
    "amount": lambda v: f"amount {v:,.2f}",
    "log_amount": lambda v: f"amount {math.expm1(v):,.2f}",
    "amount_is_round": lambda v: "round amount" if v else "amount not round",
    "amount_cents": lambda v: f"amount's cents .{int(v):02d}",
    "hour": lambda v: f"at {int(v):02d}:00-{int(v):02d}:59",
    "weekday": lambda v: "on a " + WEEKDAYS[int(v) % 7],
    "is_night": lambda v: "at night" if v else "in the daytime",
    "cust_log_secs_since_prev": lambda v: (
        f"{_duration(math.expm1(v))} after this card's previous transaction"
    ),
    "cust_count_1h": lambda v: _count(v, "on this card in the last hour"),
    "cust_count_24h": lambda v: _count(v, "on this card in the last 24 hours"),
    "cust_count_7d": lambda v: _count(v, "on this card in the last 7 days"),
    "cust_n_prior": lambda v: _count(v, "on this card in the file"),
    "cust_amount_ratio_7d": lambda v: f"amount {_times(v)} this card's 7-day average",
    "cust_amount_ratio_prior": lambda v: f"amount {_times(v)} this card's earlier average",
    "cust_new_terminal": lambda v: (
        "first use of this terminal by this card" if v else "a terminal this card used before"
    ),
    "cust_small_count_1h": lambda v: f"{round(v)} small amounts on this card in the last hour",
    "term_count_24h": lambda v: _count(v, "at this terminal in the last 24 hours"),
    "term_count_7d": lambda v: _count(v, "at this terminal in the last 7 days"),
    "term_amount_ratio_7d": lambda v: f"amount {_times(v)} this terminal's 7-day average",
    "term_n_prior": lambda v: _count(v, "at this terminal in the file"),
    "distance": lambda v: f"distance {v:,.1f}",
    "log_distance": lambda v: f"distance {math.expm1(v):,.1f}",
    "balance_before": lambda v: f"balance before {v:,.2f}",
    "balance_after": lambda v: f"balance after {v:,.2f}",
    "balance_error": lambda v: (
        f"balance does not add up (off by {abs(v):,.2f})" if v else "balance adds up"
    ),
    "empties_account": lambda v: "empties the account" if v else "leaves money in the account",
    "amount_over_balance": lambda v: f"amount {_times(v)} the balance",
    "tx_type_freq": lambda v: f"transaction type of {v:.1%} of rows",
    "category_freq": lambda v: f"category of {v:.1%} of rows",
    "channel_freq": lambda v: f"channel of {v:.1%} of rows",
    f"{SHARE_PREFIX}customer": lambda v: f"card in {v:.2%} of rows",
    f"{SHARE_PREFIX}terminal": lambda v: f"terminal in {v:.2%} of rows",
}


def phraser(name: str) -> Callable[[float], str]:
    """How to say an input's (finite) value in words."""
    phrase = PHRASES.get(name)
    if phrase is not None:
        return phrase
    if name.startswith(SHARE_PREFIX):
        return lambda v: f"{name[len(SHARE_PREFIX) :]} value shared by {v:.2%} of rows"
    if name.startswith("since:"):
        return lambda v: (
            f"{_duration(math.expm1(abs(v)))} {'after' if v >= 0 else 'before'} {name[6:]}"
        )
    return lambda v: f"{name} = {v:,.4g}"


def describe(name: str, value: float) -> str | None:
    """One input's value in words; None where the row has no value for it."""
    return phraser(name)(value) if math.isfinite(value) else None


UNUSUAL = "unusual for this file: "


def from_contributions(
    contribs: np.ndarray, values: np.ndarray, names: list[str], top: int = MAX_REASONS
) -> list[list[str]]:
    """Per row, the phrases of its `top` largest positive contributions, largest first.

    `contribs` is (rows, len(names) + 1): XGBoost's contributions with the bias last.
    """
    contribs = contribs[:, : len(names)]
    if not len(contribs) or not len(names):
        return [[] for _ in range(len(contribs))]
    k = min(len(names), top + 2)  # a few spare: two inputs may say the same thing
    best = np.argpartition(-contribs, k - 1, axis=1)[:, :k]
    ranked = np.argsort(-np.take_along_axis(contribs, best, axis=1), axis=1, kind="stable")
    best = np.take_along_axis(best, ranked, axis=1)
    # Plain lists from here: element access on numpy arrays costs more than the phrasing.
    rows_best = best.tolist()
    rows_contribs = np.take_along_axis(contribs, best, axis=1).tolist()
    rows_values = np.take_along_axis(values, best, axis=1).tolist()
    say = [phraser(name) for name in names]
    finite = math.isfinite
    out: list[list[str]] = []
    for chosen, amounts, row_values in zip(rows_best, rows_contribs, rows_values, strict=True):
        phrases: list[str] = []
        for i, amount, value in zip(chosen, amounts, row_values, strict=True):
            if amount <= 0 or len(phrases) == top:
                break
            if finite(value):
                phrase = say[i](value)
                if phrase not in phrases:
                    phrases.append(phrase)
        out.append(phrases)
    return out


def unusual(deviation: np.ndarray, values: np.ndarray, names: list[str]) -> list[str | None]:
    """Per row, the input furthest from the file's typical value (a scaled deviation)."""
    if not len(deviation) or not deviation.shape[1]:
        return [None] * len(deviation)
    far = np.abs(deviation)
    where = np.argmax(far, axis=1)
    rows = np.arange(len(far))
    out: list[str | None] = []
    for i, distance, value in zip(
        where.tolist(), far[rows, where].tolist(), values[rows, where].tolist(), strict=True
    ):
        phrase = describe(names[i], value) if distance > 0 else None
        out.append(UNUSUAL + phrase if phrase else None)
    return out


def join(model: list[list[str]], anomaly: list[str | None] | None = None) -> list[str]:
    """The reasons cell of each row: the anomaly's first (it is the rarer fact), then the model's,
    at most MAX_REASONS."""
    cells = []
    for i, phrases in enumerate(model):
        first = anomaly[i] if anomaly is not None else None
        merged = ([first] if first else []) + [
            phrase for phrase in phrases if not first or not first.endswith(phrase)
        ]
        cells.append(SEPARATOR.join(merged[:MAX_REASONS]))
    return cells
