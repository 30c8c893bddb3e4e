"""Why a row is risky, in words an analyst reads.

The largest positive per-input contributions (XGBoost's `pred_contribs`) of the model that
ranked the row, each said with the row's own value and how rare it is in this file, and for
rows the anomaly detector flags, the input that lies furthest from the file's typical value.
An `Explainer` is fitted on the file's sample: each input's quantiles (to say "1 row in 40 is
this high") and its usual contribution among the sample's riskiest rows, so that a fact which
leads every flagged row is given only where it stands out. A fact is said once (inputs that
say the same thing share a family), and a value that argues for safety is not said at all.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from shared.engine.features import CATEGORICAL_FEATURES, SHARE_PREFIX, SINCE_PREFIX

MAX_REASONS = 3
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
SEPARATOR = "; "
UNUSUAL = "unusual for this file: "
NOTHING_STANDS_OUT = "no single value stands out: ranked by how its values combine"
QUANTILES = np.linspace(0, 1, 1001)  # each input's sample quantiles, 0.1% apart
RARE = 0.1  # a value in the top or bottom 10% of the file is worth saying
FAR = 0.01  # ... in the top or bottom 1%, far from its usual range
USUAL_CONTRIBUTION = 0.75  # a fact is given where its contribution passes this quantile
CODE_TOKENS = {"zip", "postal", "postcode", "code", "id", "num", "number"}
Phrase = tuple[str, str]  # (family, text): one fact per family in a row's reasons
Rarity = tuple[float, str]  # (share of the file's rows at least this far out, "high" or "low")


def _num(v: float) -> str:
    """A number with thousands separators and sensible precision, never in e-notation."""
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 1:
        return f"{v:,.2f}".rstrip("0").rstrip(".")
    if a == 0:
        return "0"
    decimals = min(8, 2 - math.floor(math.log10(a)))
    return f"{v:.{decimals}f}".rstrip("0").rstrip(".")


def _money(v: float) -> str:
    return f"{v:,.2f}"


def _pct(share: float) -> str:
    p = 100 * share
    if p >= 10:
        return f"{p:.0f}%"
    if p >= 1:
        return f"{p:.1f}%"
    return f"{p:.2f}%" if p >= 0.01 else "under 0.01%"


def _times(v: float) -> str:
    return f"{v:.1f}x" if v < 10 else f"{v:,.0f}x"


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds / size
            return f"{n:.0f} {unit}{'s' if round(n) != 1 else ''}"
    return f"{seconds:.0f} s"


def _count(v: float, what: str) -> str:
    n = round(v)
    return f"{n:,} earlier transaction{'s' if n != 1 else ''} {what}"


def _one_in(rarity: Rarity) -> str:
    share, side = rarity
    if share <= 1 / len(QUANTILES):
        return f"fewer than 1 row in {len(QUANTILES) - 1:,} is this {side}"
    return f"1 row in {round(1 / share):,} is this {side}"


def _rare(label: str, value: str, rarity: Rarity | None, side: str | None = None) -> str | None:
    """`label value (1 row in N is this high)` for a rare value (on `side`, if given)."""
    if rarity is None or rarity[0] > RARE or (side and rarity[1] != side):
        return None
    return f"{label} {value} ({_one_in(rarity)})"  # never "; ": it separates the facts


Say = Callable[[float, Rarity | None], str | None]
# Input -> (family, how to say a value of it). A phrase of None: nothing worth saying.
PHRASES: dict[str, tuple[str, Say]] = {
    "amount": ("amount", lambda v, r: _rare("amount", _money(v), r, "high")),
    "log_amount": ("amount", lambda v, r: _rare("amount", _money(math.expm1(v)), r, "high")),
    "amount_is_round": ("round", lambda v, r: "a round amount" if v else None),
    "amount_cents": ("round", lambda v, r: None),  # cents give an analyst nothing to act on
    "hour": ("time", lambda v, r: f"at {int(v):02d}:00-{int(v):02d}:59"),
    "weekday": ("weekday", lambda v, r: "on a " + WEEKDAYS[int(v) % 7]),
    "is_night": ("time", lambda v, r: "at night" if v else None),
    "cust_log_secs_since_prev": (
        "pace",
        lambda v, r: f"{_duration(math.expm1(v))} after this card's previous transaction",
    ),
    "cust_count_1h": ("card count", lambda v, r: _count(v, "on this card in the last hour")),
    "cust_count_24h": ("card count", lambda v, r: _count(v, "on this card in the last 24 hours")),
    "cust_count_7d": ("card count", lambda v, r: _count(v, "on this card in the last 7 days")),
    "cust_n_prior": ("card count", lambda v, r: _count(v, "on this card in the file")),
    "cust_amount_ratio_7d": (
        "card ratio",
        lambda v, r: f"amount {_times(v)} this card's 7-day average" if v > 1 else None,
    ),
    "cust_amount_ratio_prior": (
        "card ratio",
        lambda v, r: f"amount {_times(v)} this card's earlier average" if v > 1 else None,
    ),
    "cust_new_terminal": (
        "new terminal",
        lambda v, r: "first use of this terminal by this card" if v else None,
    ),
    "cust_small_count_1h": (
        "small amounts",
        lambda v, r: f"{round(v):,} small amounts on this card in the last hour" if v else None,
    ),
    "term_count_24h": (
        "terminal count",
        lambda v, r: _count(v, "at this terminal in the last 24 hours"),
    ),
    "term_count_7d": (
        "terminal count",
        lambda v, r: _count(v, "at this terminal in the last 7 days"),
    ),
    "term_amount_ratio_7d": (
        "terminal ratio",
        lambda v, r: f"amount {_times(v)} this terminal's 7-day average" if v > 1 else None,
    ),
    "term_n_prior": ("terminal count", lambda v, r: _count(v, "at this terminal in the file")),
    "distance": ("distance", lambda v, r: _rare("distance", _num(v), r, "high")),
    "log_distance": ("distance", lambda v, r: _rare("distance", _num(math.expm1(v)), r, "high")),
    "balance_before": ("balance", lambda v, r: _rare("balance before", _money(v), r)),
    "balance_after": ("balance", lambda v, r: _rare("balance after", _money(v), r)),
    "balance_error": (
        "balance",
        lambda v, r: f"balance does not add up (off by {_money(abs(v))})" if v else None,
    ),
    "empties_account": ("balance", lambda v, r: "empties the account" if v else None),
    "amount_over_balance": (
        "balance",
        lambda v, r: f"amount {_times(v)} the balance" if v > 1 else None,
    ),
    f"{SHARE_PREFIX}customer": ("card share", lambda v, r: f"a card with {_pct(v)} of the rows"),
    f"{SHARE_PREFIX}terminal": (
        "terminal share",
        lambda v, r: f"a terminal with {_pct(v)} of the rows",
    ),
}
SHARES = set(CATEGORICAL_FEATURES.values())  # said with the role's column name


def _phraser(name: str, label: str) -> tuple[str, Say]:
    """The family of an input and how to say its (finite) values; `label` is the column an
    input comes from, as the file names it."""
    if name in PHRASES:
        return PHRASES[name]
    if name in SHARES or name.startswith(SHARE_PREFIX):
        return name, lambda v, r: f"a {label} value shared by {_pct(v)} of the rows"
    if name.startswith(SINCE_PREFIX):
        return (
            name,
            lambda v, r: (
                f"{_duration(math.expm1(abs(v)))} {'after' if v >= 0 else 'before'} {label}"
            ),
        )
    code = bool(set(label.lower().replace("-", "_").split("_")) & CODE_TOKENS)
    return name, lambda v, r: _beyond(label, f"{v:.0f}" if code and v == int(v) else _num(v), r)


def _beyond(label: str, value: str, rarity: Rarity | None) -> str | None:
    """A column's value beyond its usual range in this file, and how rare that is."""
    if rarity is None or rarity[0] > RARE:
        return None
    far = "far " if rarity[0] <= FAR else ""
    where = "above" if rarity[1] == "high" else "below"
    return f"{label} {far}{where} this file's usual range at {value} ({_one_in(rarity)})"


@dataclass(frozen=True, eq=False)
class Explainer:
    """How to say why a row ranked where it did, for one model's inputs, fitted on the sample."""

    names: tuple[str, ...]
    labels: tuple[str, ...]  # each input as the file names it (a share's column, a date's)
    quantiles: np.ndarray  # (inputs, len(QUANTILES)): each input's sample quantiles, NaN if none
    usual: np.ndarray  # per input: its contribution that USUAL_CONTRIBUTION of risky rows reach

    @classmethod
    def fit(
        cls,
        names: list[str],
        sample: np.ndarray,
        risky_contributions: np.ndarray | None,
        role_columns: dict[str, str] | None = None,
    ) -> Explainer:
        """`sample`: the inputs' values on the file's sample; `risky_contributions`: the
        model's contributions on the sample's riskiest rows (None: every fact counts);
        `role_columns`: the file's column of each role, to name a category's share by it."""
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an input with no values: NaN
            quantiles = np.nanquantile(sample.astype(np.float64), QUANTILES, axis=0).T
        usual = np.zeros(len(names))
        if risky_contributions is not None and len(risky_contributions):
            usual = np.quantile(risky_contributions[:, : len(names)], USUAL_CONTRIBUTION, axis=0)
            usual = np.maximum(usual, 0.0)
        labels = tuple(label_of(name, role_columns or {}) for name in names)
        return cls(tuple(names), labels, quantiles, usual)

    @cached_property
    def _phrasers(self) -> list[tuple[str, Say]]:
        return [_phraser(name, label) for name, label in zip(self.names, self.labels, strict=True)]

    def rarities(self, inputs: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each (input, value) pair: the share of the file's rows as high (or as low) as
        the value, and whether it is the high side (NaN where the input has no values)."""
        share = np.full(inputs.shape, np.nan)
        high_side = np.zeros(inputs.shape, bool)
        n = self.quantiles.shape[1]
        for i in np.unique(inputs):
            q, where = self.quantiles[i], inputs == i
            if not np.isfinite(q[0]):
                continue
            v = values[where]
            high = (n - np.searchsorted(q, v, side="left")) / n
            low = np.searchsorted(q, v, side="right") / n
            share[where], high_side[where] = np.minimum(high, low), high <= low
        return share, high_side

    def say(self, i: int, value: float, share: float = np.nan, high: bool = True) -> Phrase | None:
        """Input i's value in words, with its family (`share` of rows as far out, on the high
        side or not); None where nothing is worth saying."""
        if not math.isfinite(value):
            return None
        family, say = self._phrasers[i]
        rarity = (share, "high" if high else "low") if math.isfinite(share) else None
        text = say(value, rarity)
        return (family, text) if text else None

    def phrases(
        self, contribs: np.ndarray, values: np.ndarray, top: int = MAX_REASONS
    ) -> list[list[Phrase]]:
        """Per row, its facts by how far each input's contribution passes its usual one,
        largest first (one per family); a row where none passes gets its largest fact.
        `contribs` has the bias last."""
        contribs = contribs[:, : len(self.names)]
        if not len(contribs) or not len(self.names):
            return [[] for _ in range(len(contribs))]
        positive = np.where(contribs > 0, contribs, -np.inf)
        out = self._said(positive - self.usual, values, top)
        bare = [i for i, said in enumerate(out) if not said]
        if bare:
            for i, first in zip(bare, self._said(positive[bare], values[bare], 1), strict=True):
                out[i] = first
        return out

    def _said(self, score: np.ndarray, values: np.ndarray, top: int) -> list[list[Phrase]]:
        """Per row, up to `top` facts of the inputs with a positive `score`, highest first."""
        k = min(len(self.names), top + 4)  # spares: some say nothing, some share a family
        best = np.argpartition(-score, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(score, best, axis=1), axis=1, kind="stable")
        best = np.take_along_axis(best, order, axis=1)
        at_best = np.take_along_axis(values, best, axis=1).astype(np.float64)
        share, high = self.rarities(best, at_best)
        rows = zip(
            best.tolist(),
            np.take_along_axis(score, best, axis=1).tolist(),
            at_best.tolist(),
            share.tolist(),
            high.tolist(),
            strict=True,
        )
        out = []
        for chosen, scores, row_values, row_share, row_high in rows:
            said: list[Phrase] = []
            for i, margin, value, rare, up in zip(
                chosen, scores, row_values, row_share, row_high, strict=True
            ):
                if margin <= 0 or len(said) == top:
                    break
                phrase = self.say(i, value, rare, up)
                if phrase and phrase[0] not in {f for f, _ in said}:
                    said.append(phrase)
            out.append(said)
        return out

    def unusual(self, deviation: np.ndarray, values: np.ndarray) -> list[Phrase | None]:
        """Per row, the input furthest from the file's typical value (a scaled deviation): what
        makes the row an anomaly, however many flagged rows share it."""
        if not len(deviation) or not deviation.shape[1]:
            return [None] * len(deviation)
        far = np.abs(deviation)
        where = np.argmax(far, axis=1)
        rows = np.arange(len(far))
        out: list[Phrase | None] = []
        at = values[rows, where].astype(np.float64)
        share, high = self.rarities(where, at)
        for i, distance, value, rare, up in zip(
            where.tolist(),
            far[rows, where].tolist(),
            at.tolist(),
            share.tolist(),
            high.tolist(),
            strict=True,
        ):
            phrase = self.say(i, value, rare, up) if distance > 0 else None
            out.append((phrase[0], UNUSUAL + phrase[1]) if phrase else None)
        return out

    def state(self, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
        arrays[f"{prefix}.quantiles"], arrays[f"{prefix}.usual"] = self.quantiles, self.usual
        return {"names": list(self.names), "labels": list(self.labels)}

    @classmethod
    def from_state(
        cls, meta: dict[str, Any], prefix: str, arrays: dict[str, np.ndarray]
    ) -> Explainer:
        quantiles, usual = arrays[f"{prefix}.quantiles"], arrays[f"{prefix}.usual"]
        return cls(tuple(meta["names"]), tuple(meta["labels"]), quantiles, usual)


def label_of(name: str, role_columns: dict[str, str]) -> str:
    """An input as the file names it: a share's or a date's column, a role's column."""
    role = {feature: role for role, feature in CATEGORICAL_FEATURES.items()}.get(name)
    if role is not None:
        return role_columns.get(role, name)
    for prefix in (SHARE_PREFIX, SINCE_PREFIX):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def join(model: list[list[Phrase]], anomaly: list[Phrase | None] | None = None) -> list[str]:
    """The reasons cell of each row: the anomaly's first (it is the rarer fact), then the
    model's facts of other families, at most MAX_REASONS (or NOTHING_STANDS_OUT)."""
    cells = []
    for i, phrases in enumerate(model):
        first = anomaly[i] if anomaly is not None else None
        merged = [first] if first else []
        merged += [p for p in phrases if not first or p[0] != first[0]]
        cells.append(SEPARATOR.join(text for _, text in merged[:MAX_REASONS]) or NOTHING_STANDS_OUT)
    return cells
