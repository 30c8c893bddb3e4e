"""Labeled transaction simulator for the reference library (our own code; no third-party data).

Customers have a home, a spending mean/std and an activity rate; terminals have a place and a
category; legitimate transactions go mostly to terminals near home. Fraud is injected by
scenarios (large amounts, compromised cards and terminals, card-testing bursts, night-time
spikes, far-from-home use, account-emptying transfers) with legitimate look-alikes so that no
single rule separates the classes. Output columns are named and formatted the way different
clients' files differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from shared.engine import roles as R

DOMAINS = ("card_present", "ecommerce", "mobile_money", "atm")
START = pd.Timestamp("2026-01-01").value // 10**9  # epoch seconds

# Roles each domain's files carry (before some are dropped per dataset), and its fraud scenarios.
DOMAIN_ROLES = {
    "card_present": (
        R.TX_ID,
        R.TIMESTAMP,
        R.CUSTOMER,
        R.TERMINAL,
        R.AMOUNT,
        R.CATEGORY,
        R.CHANNEL,
        R.DISTANCE,
    ),
    "ecommerce": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.CATEGORY, R.CHANNEL),
    "mobile_money": (
        R.TX_ID,
        R.TIMESTAMP,
        R.CUSTOMER,
        R.TERMINAL,
        R.AMOUNT,
        R.TX_TYPE,
        R.BALANCE_BEFORE,
        R.BALANCE_AFTER,
    ),
    "atm": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.DISTANCE, R.CHANNEL),
}
OPTIONAL_ROLES = {R.TX_ID, R.CATEGORY, R.CHANNEL, R.DISTANCE}
DOMAIN_SCENARIOS = {
    "card_present": ("large_amount", "compromised_card", "compromised_terminal", "night", "far"),
    "ecommerce": ("large_amount", "compromised_card", "card_testing", "night"),
    "mobile_money": ("emptying", "large_amount", "compromised_card", "night"),
    "atm": ("far", "night", "compromised_card", "card_testing"),
}
AMOUNT_SCALE = {"card_present": 45.0, "ecommerce": 70.0, "mobile_money": 900.0, "atm": 90.0}
CATEGORIES = {
    "card_present": [
        "grocery",
        "fuel",
        "restaurant",
        "pharmacy",
        "clothing",
        "electronics",
        "travel",
        "entertainment",
    ],
    "ecommerce": ["digital", "fashion", "electronics", "home", "travel", "gaming", "books"],
    "mobile_money": ["PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT"],
    "atm": ["withdrawal", "balance", "deposit"],
}
CHANNELS = {
    "card_present": ["chip", "contactless", "swipe", "manual"],
    "ecommerce": ["web", "app", "phone"],
    "atm": ["own_bank", "other_bank", "foreign"],
    "mobile_money": ["app", "ussd"],
}

# Column names per naming style: how clients' files differ.
STYLES: dict[str, dict[str, str]] = {
    "handbook": {
        R.TX_ID: "TRANSACTION_ID",
        R.TIMESTAMP: "TX_DATETIME",
        R.CUSTOMER: "CUSTOMER_ID",
        R.TERMINAL: "TERMINAL_ID",
        R.AMOUNT: "TX_AMOUNT",
        R.CATEGORY: "MCC",
        R.CHANNEL: "ENTRY_MODE",
        R.DISTANCE: "DIST_FROM_HOME",
        R.TX_TYPE: "TX_TYPE",
        R.BALANCE_BEFORE: "BALANCE_BEFORE",
        R.BALANCE_AFTER: "BALANCE_AFTER",
        R.LABEL: "TX_FRAUD",
    },
    "snake": {
        R.TX_ID: "transaction_id",
        R.TIMESTAMP: "timestamp",
        R.CUSTOMER: "customer_id",
        R.TERMINAL: "merchant_id",
        R.AMOUNT: "amount",
        R.CATEGORY: "category",
        R.CHANNEL: "channel",
        R.DISTANCE: "distance_from_home",
        R.TX_TYPE: "type",
        R.BALANCE_BEFORE: "balance_before",
        R.BALANCE_AFTER: "balance_after",
        R.LABEL: "is_fraud",
    },
    "abbr": {
        R.TX_ID: "trans_num",
        R.TIMESTAMP: "trans_ts",
        R.CUSTOMER: "cc_num",
        R.TERMINAL: "merchant",
        R.AMOUNT: "amt",
        R.CATEGORY: "mcc",
        R.CHANNEL: "pos_mode",
        R.DISTANCE: "dist_km",
        R.TX_TYPE: "tx_type",
        R.BALANCE_BEFORE: "bal_before",
        R.BALANCE_AFTER: "bal_after",
        R.LABEL: "fraud",
    },
    "french": {
        R.TX_ID: "id_transaction",
        R.TIMESTAMP: "date_heure",
        R.CUSTOMER: "id_client",
        R.TERMINAL: "id_commercant",
        R.AMOUNT: "montant",
        R.CATEGORY: "categorie",
        R.CHANNEL: "canal",
        R.DISTANCE: "distance_domicile",
        R.TX_TYPE: "type_operation",
        R.BALANCE_BEFORE: "solde_avant",
        R.BALANCE_AFTER: "solde_apres",
        R.LABEL: "fraude",
    },
    "camel": {
        R.TX_ID: "TransactionID",
        R.TIMESTAMP: "TransactionDT",
        R.CUSTOMER: "card1",
        R.TERMINAL: "MerchantId",
        R.AMOUNT: "TransactionAmt",
        R.CATEGORY: "ProductCD",
        R.CHANNEL: "PaymentChannel",
        R.DISTANCE: "distHome",
        R.TX_TYPE: "TransactionType",
        R.BALANCE_BEFORE: "oldbalanceOrg",
        R.BALANCE_AFTER: "newbalanceOrig",
        R.LABEL: "isFraud",
    },
    "paysim": {
        R.TX_ID: "txId",
        R.TIMESTAMP: "step",
        R.CUSTOMER: "nameOrig",
        R.TERMINAL: "nameDest",
        R.AMOUNT: "amount",
        R.CATEGORY: "category",
        R.CHANNEL: "channel",
        R.DISTANCE: "distance",
        R.TX_TYPE: "type",
        R.BALANCE_BEFORE: "oldbalanceOrg",
        R.BALANCE_AFTER: "newbalanceOrig",
        R.LABEL: "isFraud",
    },
    "ledger": {  # a card ledger export: date split over columns, "$" amounts, "Yes"/"No"
        R.TX_ID: "Transaction",
        R.TIMESTAMP: "Year",  # with Month, Day and Time beside it
        R.CUSTOMER: "Card",
        R.TERMINAL: "Merchant Name",
        R.AMOUNT: "Amount",
        R.CATEGORY: "MCC",
        R.CHANNEL: "Entry Mode",
        R.DISTANCE: "Distance",
        R.TX_TYPE: "Type",
        R.BALANCE_BEFORE: "Balance Before",
        R.BALANCE_AFTER: "Balance After",
        R.LABEL: "Is Fraud?",
    },
}
# Catalog positions that use the ledger style (one per domain), beside the rotating styles.
LEDGER_DATASETS = {4, 14, 17, 31}
STYLE_TIMESTAMPS = {
    "handbook": "iso",
    "snake": "epoch",
    "abbr": "iso",
    "french": "dmy",
    "camel": "offset",
    "paysim": "step",
    "ledger": "split",
}
TIMESTAMP_FORMATS = ("iso", "epoch", "dmy", "offset", "step", "split")
ID_FORMATS = ("int", "prefixed", "hex")


@dataclass(frozen=True)
class DatasetSpec:
    """Everything that makes one simulated dataset; the same spec always gives the same rows."""

    name: str
    domain: str
    seed: int
    rows: int
    fraud_rate: float
    days: int = 60
    style: str = "snake"
    timestamp_format: str = "iso"
    id_format: str = "int"
    roles: tuple[str, ...] = ()
    scenarios: tuple[str, ...] = ()
    names: dict[str, str] = field(default_factory=dict)

    def column_names(self) -> dict[str, str]:
        """role -> column name for this dataset (style names, overridden by `names`)."""
        return {**STYLES[self.style], **self.names}


def reference_catalog(
    count: int = 40, seed: int = 20261129, rows_scale: float = 1.0
) -> list[DatasetSpec]:
    """The reference library's datasets: varied domains, rates, sizes, names and formats."""
    rng = np.random.default_rng(seed)
    styles = [s for s in STYLES if s != "ledger"]
    specs = []
    for i in range(count):
        domain = DOMAINS[i % len(DOMAINS)]
        style = styles[(i + i // len(DOMAINS)) % len(styles)]
        if domain == "mobile_money" and style == "camel" and i % 3 == 0:
            style = "paysim"
        rows = int(round(rng.integers(10_000, 100_001) * rows_scale, -2))
        rate = float(math.exp(rng.uniform(math.log(0.001), math.log(0.05))))
        keep = [r for r in DOMAIN_ROLES[domain] if r not in OPTIONAL_ROLES or rng.random() > 0.3]
        ts_format = (
            STYLE_TIMESTAMPS[style]
            if rng.random() < 0.6
            else str(rng.choice(["iso", "epoch", "dmy"]))
        )
        if i in LEDGER_DATASETS:
            style, ts_format = "ledger", "split"
        specs.append(
            DatasetSpec(
                name=f"{domain}_{style}_{i:02d}",
                domain=domain,
                seed=seed * 100 + i,
                rows=max(rows, 2000),
                fraud_rate=round(rate, 4),
                days=int(rng.integers(30, 121)),
                style=style,
                timestamp_format=ts_format,
                id_format=ID_FORMATS[i % len(ID_FORMATS)],
                roles=tuple(keep),
                scenarios=DOMAIN_SCENARIOS[domain],
            )
        )
    return specs


def example_spec() -> DatasetSpec:
    """The README's example upload: a seed and column names no reference dataset uses."""
    names = {
        R.TX_ID: "ref_operacion",
        R.TIMESTAMP: "fecha_hora",
        R.CUSTOMER: "id_tarjeta",
        R.TERMINAL: "id_comercio",
        R.AMOUNT: "importe_eur",
        R.CATEGORY: "rubro",
        R.CHANNEL: "canal_pago",
    }
    return DatasetSpec(
        name="example_es",
        domain="card_present",
        seed=987_654_321,
        rows=8000,
        fraud_rate=0.01,
        days=30,
        style="snake",
        timestamp_format="iso",
        id_format="prefixed",
        roles=(R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.CATEGORY, R.CHANNEL),
        scenarios=DOMAIN_SCENARIOS["card_present"],
        names=names,
    )


def simulate(spec: DatasetSpec, labeled: bool = True) -> pd.DataFrame:
    """The dataset as a DataFrame with the spec's column names and formats."""
    raw = _simulate_raw(spec)
    return _present(raw, spec, labeled)


# --- the population and legitimate behaviour -------------------------------------------------


@dataclass
class _World:
    rng: np.random.Generator
    spec: DatasetSpec
    cust_xy: np.ndarray
    cust_mean: np.ndarray
    cust_std: np.ndarray
    cust_rate: np.ndarray
    cust_balance: np.ndarray
    term_xy: np.ndarray
    term_cat: np.ndarray
    near: np.ndarray  # (customers, k) nearest terminals
    far: np.ndarray  # (customers, k) farthest terminals


def _world(spec: DatasetSpec) -> _World:
    rng = np.random.default_rng(spec.seed)
    n_cust = max(100, spec.rows // int(rng.integers(15, 50)))
    n_term = max(40, spec.rows // int(rng.integers(40, 160)))
    cust_xy = rng.uniform(0, 100, (n_cust, 2))
    term_xy = rng.uniform(0, 100, (n_term, 2))
    scale = AMOUNT_SCALE[spec.domain]
    cust_mean = scale * rng.lognormal(0, 0.6, n_cust)
    cust_std = cust_mean * rng.uniform(0.2, 0.6, n_cust)
    k = min(10, n_term)
    near = np.empty((n_cust, k), dtype=np.int64)
    far = np.empty((n_cust, k), dtype=np.int64)
    for start in range(0, n_cust, 2000):  # blocks keep the distance matrix small
        block = cust_xy[start : start + 2000]
        dist = np.sqrt(((block[:, None, :] - term_xy[None, :, :]) ** 2).sum(-1)).astype(np.float32)
        near[start : start + 2000] = np.argpartition(dist, k - 1, axis=1)[:, :k]
        far[start : start + 2000] = np.argpartition(-dist, k - 1, axis=1)[:, :k]
    return _World(
        rng=rng,
        spec=spec,
        cust_xy=cust_xy,
        cust_mean=cust_mean,
        cust_std=cust_std,
        cust_rate=rng.gamma(2.0, 1.0, n_cust),
        cust_balance=scale * 20 * rng.lognormal(0, 1, n_cust),
        term_xy=term_xy,
        term_cat=rng.integers(0, len(CATEGORIES[spec.domain]), n_term),
        near=near,
        far=far,
    )


def _time_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.clip(rng.normal(13.5 * 3600, 4.5 * 3600, n), 0, 86399)


def _legit(w: _World, n: int) -> dict[str, np.ndarray]:
    rng, spec = w.rng, w.spec
    p = w.cust_rate / w.cust_rate.sum()
    cust = rng.choice(len(p), n, p=p)
    t = rng.integers(0, spec.days, n) * 86400.0 + _time_of_day(rng, n)
    term = w.near[cust, rng.integers(0, w.near.shape[1], n)]
    travel = rng.random(n) < 0.01  # legitimate trips far from home
    term[travel] = w.far[cust[travel], rng.integers(0, w.far.shape[1], travel.sum())]
    amount = np.abs(rng.normal(w.cust_mean[cust], w.cust_std[cust]))
    splurge = rng.random(n) < 0.006  # legitimate big purchases
    amount[splurge] *= rng.uniform(3, 8, splurge.sum())
    return {"cust": cust, "term": term, "t": t, "amount": amount, "label": np.zeros(n, np.int8)}


# --- fraud scenarios: each returns new rows --------------------------------------------------


def _rows(cust: np.ndarray, term: np.ndarray, t: np.ndarray, amount: np.ndarray) -> dict:
    return {
        "cust": cust,
        "term": term,
        "t": t,
        "amount": amount,
        "label": np.ones(len(cust), np.int8),
    }


def _large_amount(w: _World, n: int) -> dict:
    cust = w.rng.integers(0, len(w.cust_mean), n)
    term = w.near[cust, w.rng.integers(0, w.near.shape[1], n)]
    t = w.rng.integers(0, w.spec.days, n) * 86400.0 + _time_of_day(w.rng, n)
    return _rows(cust, term, t, w.cust_mean[cust] * w.rng.uniform(3, 12, n))


def _campaign(
    w: _World, n: int, sizes: tuple[int, int], mean_size: int, population: int, days: float
) -> tuple[np.ndarray, np.ndarray]:
    """(entity, time) of n fraud rows in runs of `sizes` rows, each on one entity (card or
    terminal) from a random day over the next `days` days."""
    per_run = w.rng.integers(*sizes, max(1, n // mean_size + 1))
    entities = w.rng.integers(0, population, len(per_run))
    entity = np.repeat(entities, per_run)[:n]
    start = np.repeat(w.rng.integers(0, w.spec.days, len(per_run)) * 86400.0, per_run)[:n]
    return entity, start + w.rng.uniform(0, days * 86400, len(entity))


def _compromised_card(w: _World, n: int) -> dict:
    """A stolen card: a run of inflated purchases anywhere over the next days."""
    cust, t = _campaign(w, n, (3, 12), 6, len(w.cust_mean), 7)
    term = w.rng.integers(0, len(w.term_xy), len(cust))
    return _rows(cust, term, t, w.cust_mean[cust] * w.rng.uniform(1.5, 5, len(cust)))


def _compromised_terminal(w: _World, n: int) -> dict:
    """A skimmed terminal: many strangers' cards, slightly inflated amounts, for a period."""
    term, t = _campaign(w, n, (5, 30), 15, len(w.term_xy), 3)
    cust = w.rng.integers(0, len(w.cust_mean), len(term))
    return _rows(cust, term, t, w.cust_mean[cust] * w.rng.uniform(1.2, 3, len(term)))


def _card_testing(w: _World, n: int) -> dict:
    """Bursts of tiny amounts within minutes, to test stolen card numbers."""
    per_burst = w.rng.integers(4, 15, max(1, n // 8 + 1))
    cards = w.rng.integers(0, len(w.cust_mean), len(per_burst))
    cust = np.repeat(cards, per_burst)[:n]
    start = w.rng.integers(0, w.spec.days, len(per_burst)) * 86400.0 + _time_of_day(
        w.rng, len(per_burst)
    )
    t = np.repeat(start, per_burst)[:n] + w.rng.uniform(0, 1800, len(cust))
    term = np.repeat(w.rng.integers(0, len(w.term_xy), len(per_burst)), per_burst)[:n]
    return _rows(cust, term, t, w.rng.uniform(0.5, 3.0, len(cust)).round(2))


def _night(w: _World, n: int) -> dict:
    cust = w.rng.integers(0, len(w.cust_mean), n)
    term = w.rng.integers(0, len(w.term_xy), n)
    t = w.rng.integers(0, w.spec.days, n) * 86400.0 + w.rng.uniform(0, 5 * 3600, n)
    return _rows(cust, term, t, w.cust_mean[cust] * w.rng.uniform(1.2, 4, n))


def _far(w: _World, n: int) -> dict:
    cust = w.rng.integers(0, len(w.cust_mean), n)
    term = w.far[cust, w.rng.integers(0, w.far.shape[1], n)]
    t = w.rng.integers(0, w.spec.days, n) * 86400.0 + _time_of_day(w.rng, n)
    return _rows(cust, term, t, w.cust_mean[cust] * w.rng.uniform(1, 3, n))


def _emptying(w: _World, n: int) -> dict:
    """Account takeover: a transfer or cash-out of the whole balance (marked for _present)."""
    rows = _large_amount(w, n)
    rows["amount"] = w.cust_balance[rows["cust"]] * w.rng.uniform(0.6, 1.4, n)
    rows["empties"] = np.ones(n, bool)
    return rows


SCENARIOS = {
    "large_amount": _large_amount,
    "compromised_card": _compromised_card,
    "compromised_terminal": _compromised_terminal,
    "card_testing": _card_testing,
    "night": _night,
    "far": _far,
    "emptying": _emptying,
}


def _simulate_raw(spec: DatasetSpec) -> pd.DataFrame:
    w = _world(spec)
    n_fraud = max(2, round(spec.rows * spec.fraud_rate))
    shares = w.rng.dirichlet(np.ones(len(spec.scenarios)) * 2)
    counts = np.maximum(1, np.round(shares * n_fraud).astype(int))
    parts = [_legit(w, spec.rows - int(counts.sum()))]
    for scenario, count in zip(spec.scenarios, counts, strict=True):
        rows = SCENARIOS[scenario](w, int(count))
        rows.setdefault("empties", np.zeros(len(rows["cust"]), bool))
        parts.append(rows)
    parts[0]["empties"] = np.zeros(len(parts[0]["cust"]), bool)
    frame = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    frame["t"] = np.clip(frame["t"], 0, spec.days * 86400 - 1)
    frame = frame.sort_values("t", kind="stable").reset_index(drop=True)
    frame.attrs["world"] = w
    return frame


# --- presentation: the client's columns and formats ------------------------------------------


def _ids(values: np.ndarray, fmt: str, prefix: str, salt: int) -> pd.Series:
    if fmt == "int":
        return pd.Series(values.astype(np.int64) * 7 + 100_000 + salt)
    if fmt == "prefixed":
        return pd.Series(np.char.add(prefix, (values.astype(np.int64) + 10**8).astype(str)))
    mixed = (
        values.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    ) >> np.uint64(4)
    return pd.Series(np.char.mod("%015x", mixed))


def _timestamps(t: np.ndarray, fmt: str) -> pd.Series:
    if fmt == "offset":
        return pd.Series((t + 86400).astype(np.int64))
    if fmt == "step":
        return pd.Series((t // 3600 + 1).astype(np.int64))
    epoch = (START + t).astype(np.int64)
    if fmt == "epoch":
        return pd.Series(epoch)
    stamps = pd.to_datetime(epoch, unit="s")
    pattern = {"iso": "%Y-%m-%d %H:%M:%S", "dmy": "%d/%m/%Y %H:%M"}[fmt]
    return pd.Series(stamps.strftime(pattern))


def _present(raw: pd.DataFrame, spec: DatasetSpec, labeled: bool) -> pd.DataFrame:
    w: _World = raw.attrs["world"]
    rng = np.random.default_rng(spec.seed + 1)
    names = spec.column_names()
    cust, term = raw["cust"].to_numpy(), raw["term"].to_numpy()
    amount = raw["amount"].to_numpy()
    if spec.domain == "atm":
        amount = np.maximum(20, np.round(amount / 20) * 20)
        small = raw["label"].to_numpy() == 1
        amount[small & (raw["amount"].to_numpy() < 5)] = 20
    n = len(raw)
    columns: dict[str, pd.Series] = {}
    split: dict[str, pd.Series] = {}
    for role in spec.roles:
        if role == R.TX_ID:
            columns[role] = _ids(np.arange(n) + 1, spec.id_format, "T", 11)
        elif role == R.TIMESTAMP and spec.timestamp_format == "split":
            split = _split_date(raw["t"].to_numpy())  # placed where the timestamp would be
            columns[role] = split.pop("Year")
        elif role == R.TIMESTAMP:
            columns[role] = _timestamps(raw["t"].to_numpy(), spec.timestamp_format)
        elif role == R.CUSTOMER:
            columns[role] = _ids(cust, spec.id_format, "C", 3)
        elif role == R.TERMINAL:
            columns[role] = _ids(term, spec.id_format, "M", 5)
        elif role == R.AMOUNT and spec.style == "ledger":
            columns[role] = pd.Series(np.char.mod("$%.2f", np.round(amount, 2)))
        elif role == R.AMOUNT:
            columns[role] = pd.Series(np.round(amount, 2))
        elif role == R.CATEGORY:
            columns[role] = pd.Series(np.array(CATEGORIES[spec.domain])[w.term_cat[term]])
        elif role == R.CHANNEL:
            options = np.array(CHANNELS[spec.domain])
            pick = rng.choice(len(options), n, p=_channel_mix(len(options)))
            fraud = raw["label"].to_numpy() == 1
            pick[fraud] = rng.choice(len(options), int(fraud.sum()))  # fraud ignores habits
            columns[role] = pd.Series(options[pick])
        elif role == R.DISTANCE:
            d = np.sqrt(((w.cust_xy[cust] - w.term_xy[term]) ** 2).sum(1)) * 3.0
            columns[role] = pd.Series(np.round(d, 2))
    if spec.domain == "mobile_money":
        columns.update(_balances(raw, amount, spec, rng))
        columns = {r: c for r, c in columns.items() if r in spec.roles or r == R.AMOUNT}
    if labeled:
        label = raw["label"].astype(np.int64)
        columns[R.LABEL] = label.map({0: "No", 1: "Yes"}) if spec.style == "ledger" else label
    ordered = [r for r in (*spec.roles, R.LABEL) if r in columns]
    frame = pd.DataFrame({names[r]: columns[r].to_numpy() for r in ordered})
    if spec.timestamp_format == "split" and R.TIMESTAMP in spec.roles:
        at = list(frame.columns).index(names[R.TIMESTAMP]) + 1
        for offset, part in enumerate(("Month", "Day", "Time")):
            frame.insert(at + offset, part, split[part].to_numpy())
    return frame


def _split_date(t: np.ndarray) -> dict[str, pd.Series]:
    """Year, Month, Day and Time ("HH:MM") columns of a ledger export."""
    stamps = pd.to_datetime((START + t).astype(np.int64), unit="s")
    return {
        "Year": pd.Series(stamps.year),
        "Month": pd.Series(stamps.month),
        "Day": pd.Series(stamps.day),
        "Time": pd.Series(stamps.strftime("%H:%M")),
    }


def _channel_mix(k: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, k + 1)
    return weights / weights.sum()


def _balances(
    raw: pd.DataFrame, amount: np.ndarray, spec: DatasetSpec, rng: np.random.Generator
) -> dict[str, pd.Series]:
    """Mobile-money types and balances; fraud empties the account by transfer or cash-out."""
    w: _World = raw.attrs["world"]
    n = len(raw)
    types = np.array(CATEGORIES["mobile_money"])
    kind = rng.choice(len(types), n, p=[0.35, 0.12, 0.3, 0.2, 0.03])
    before = w.cust_balance[raw["cust"].to_numpy()] * rng.uniform(0.3, 1.5, n)
    empties = raw["empties"].to_numpy()
    fraud = raw["label"].to_numpy() == 1
    kind[fraud] = rng.choice([1, 2], int(fraud.sum()))
    amount = amount.copy()
    before[empties] = amount[empties]
    after = np.where(kind == 3, before + amount, np.maximum(before - amount, 0.0))
    # Many real ledgers carry no balance for some accounts; and some honest users empty theirs.
    unknown = rng.random(n) < 0.15
    before[unknown] = 0.0
    after[unknown] = 0.0
    honest_empty = (~fraud) & (rng.random(n) < 0.004) & np.isin(kind, [1, 2])
    before[honest_empty] = amount[honest_empty]
    after[honest_empty] = 0.0
    return {
        R.TX_TYPE: pd.Series(types[kind]),
        R.BALANCE_BEFORE: pd.Series(np.round(before, 2)),
        R.BALANCE_AFTER: pd.Series(np.round(after, 2)),
    }


def with_rows(spec: DatasetSpec, rows: int) -> DatasetSpec:
    return replace(spec, rows=rows)
