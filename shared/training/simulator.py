"""Labeled transaction simulator for the reference library (our own code; no third-party data).

Customers have a home, a spending mean/std and an activity rate; terminals have a place and a
category; legitimate transactions go mostly to terminals near home. Fraud is injected by
scenarios (large amounts, compromised cards and terminals, card-testing bursts, night-time
spikes, far-from-home use, account-emptying transfers) with legitimate look-alikes so that no
single rule separates the classes. Output columns are named and formatted the way different
clients' files differ.

Besides the four base domains, typology families follow published fraud typologies with
mechanics of their own: `card_history` (a fixed amount bar, terminals compromised for weeks at
usual amounts, customers whose purchases are multiplied), `cardholder` (stolen cards used for a
day or two at night in a few merchant categories, with cardholder attributes), `mule_chain`
(a victim's balance transferred to a mule account, which cashes it out) and, for evaluation
only, `signup` (e-commerce purchases right after sign-up, and rings of accounts on one device).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from shared.engine import roles as R

BASE_DOMAINS = ("card_present", "ecommerce", "mobile_money", "atm")
TYPOLOGY_DOMAINS = ("card_history", "cardholder", "mule_chain")
# Simulated for evaluation only: its signal (the time from sign-up) is no reference feature, so
# its models were weak (validation ROC 0.76-0.81) yet matched real files first by their columns.
EVALUATION_DOMAINS = ("signup",)
DOMAINS = BASE_DOMAINS + TYPOLOGY_DOMAINS + EVALUATION_DOMAINS
TYPOLOGY_FROM = 28  # catalog positions from here on cycle over the typology families
START = pd.Timestamp("2026-01-01").value // 10**9  # epoch seconds

MONEY_ROLES = (  # both money families' files: types and balances
    R.TX_ID,
    R.TIMESTAMP,
    R.CUSTOMER,
    R.TERMINAL,
    R.AMOUNT,
    R.TX_TYPE,
    R.BALANCE_BEFORE,
    R.BALANCE_AFTER,
)
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
    "mobile_money": MONEY_ROLES,
    "atm": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.DISTANCE, R.CHANNEL),
    "card_history": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT),
    "cardholder": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.CATEGORY),
    "mule_chain": MONEY_ROLES,
    "signup": (R.TX_ID, R.TIMESTAMP, R.CUSTOMER, R.TERMINAL, R.AMOUNT, R.CHANNEL, R.CATEGORY),
}
OPTIONAL_ROLES = {R.TX_ID, R.CATEGORY, R.CHANNEL, R.DISTANCE}
DOMAIN_SCENARIOS = {
    "card_present": ("large_amount", "compromised_card", "compromised_terminal", "night", "far"),
    "ecommerce": ("large_amount", "compromised_card", "card_testing", "night"),
    "mobile_money": ("emptying", "large_amount", "compromised_card", "night"),
    "atm": ("far", "night", "compromised_card", "card_testing"),
    "card_history": ("over_threshold", "terminal_takeover", "customer_takeover"),
    "cardholder": ("card_episode",),
    "mule_chain": ("mule_chain",),
    "signup": ("bot_signup", "device_ring"),
}
AMOUNT_SCALE = {
    "card_present": 45.0,
    "ecommerce": 70.0,
    "mobile_money": 900.0,
    "atm": 90.0,
    "card_history": 50.0,
    "cardholder": 60.0,
    "mule_chain": 900.0,
    "signup": 35.0,
}
AMOUNT_BAR = 220.0  # card_history: every amount above it is fraud
MOBILE_TYPES = ["PAYMENT", "TRANSFER", "CASH_OUT", "CASH_IN", "DEBIT"]  # mobile-money types
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
    "mobile_money": MOBILE_TYPES,
    "atm": ["withdrawal", "balance", "deposit"],
    "card_history": ["retail"],
    # cardholder: merchant categories, each with its amount factor (below)
    "cardholder": [
        "groceries_store",
        "groceries_online",
        "retail_store",
        "retail_online",
        "other_store",
        "other_online",
        "fuel",
        "restaurants",
        "pharmacy",
        "household",
        "pets",
        "leisure",
        "beauty",
        "travel",
    ],
    "mule_chain": MOBILE_TYPES,
    "signup": ["Chrome", "Safari", "Firefox", "Edge", "Opera"],  # the device's browser
}
CATEGORY_AMOUNT = np.array([1.0, 0.8, 1.3, 1.5, 0.8, 1.0, 0.6, 0.5, 0.6, 1.0, 0.7, 0.8, 0.5, 2.5])
# cardholder: where stolen cards are used, and the thieves' amounts (low, high) there
EPISODE_AMOUNTS = {
    "retail_online": (200.0, 1100.0),
    "groceries_store": (250.0, 400.0),
    "other_online": (10.0, 900.0),
    "retail_store": (300.0, 1000.0),
}
CHANNELS = {
    "card_present": ["chip", "contactless", "swipe", "manual"],
    "ecommerce": ["web", "app", "phone"],
    "atm": ["own_bank", "other_bank", "foreign"],
    "mobile_money": ["app", "ussd"],
    "signup": ["SEO", "Ads", "Direct"],  # where the customer came from
}
# Columns that no role describes, per family: cardholder attributes, the sign-up time.
EXTRA_COLUMNS = {
    "cardholder": ("gender", "birth_year", "home_city_population"),
    "signup": ("registered", "customer_age"),
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
# Catalog positions that use the ledger style (one per base domain), beside the rotating styles.
LEDGER_DATASETS = {4, 14, 17, 27}
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
        domain = (
            BASE_DOMAINS[i % len(BASE_DOMAINS)]
            if i < TYPOLOGY_FROM
            else TYPOLOGY_DOMAINS[(i - TYPOLOGY_FROM) % len(TYPOLOGY_DOMAINS)]
        )
        style = styles[(i + i // len(BASE_DOMAINS)) % len(styles)]
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
    """The example upload (examples/): a seed and column names no reference dataset uses."""
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
    cust_attrs: dict[str, np.ndarray]  # cardholder: gender, birth year, home city population
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
    attrs = _cardholders(np.random.default_rng(spec.seed + 2), n_cust)
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
        cust_attrs=attrs,
        term_xy=term_xy,
        term_cat=rng.integers(0, len(CATEGORIES[spec.domain]), n_term),
        near=near,
        far=far,
    )


def _cardholders(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Cardholder attributes (their own generator, so the other domains' rows stay the same)."""
    return {
        "gender": rng.choice(np.array(["F", "M"]), n),
        "birth_year": rng.integers(1935, 2006, n),
        "home_city_population": np.round(rng.lognormal(9, 2, n)).astype(np.int64) + 20,
    }


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
    if spec.domain == "card_history":  # no trips, no splurges: the amount bar is the rule
        term = w.near[cust, rng.integers(0, w.near.shape[1], n)]
        amount = np.minimum(amount, AMOUNT_BAR)
    else:
        splurge = rng.random(n) < 0.006  # legitimate big purchases
        amount[splurge] *= rng.uniform(3, 8, splurge.sum())
    if spec.domain == "cardholder":
        amount *= CATEGORY_AMOUNT[w.term_cat[term]]
        # look-alikes: honest big buys where thieves shop, and honest night owls
        big = rng.random(n) < 0.01
        term[big], amount[big] = _thief_shops(w, int(big.sum()))
        owl = rng.random(n) < 0.03
        t[owl] = np.floor(t[owl] / 86400) * 86400 + 22 * 3600 + rng.uniform(0, 6 * 3600, owl.sum())
    return {"cust": cust, "term": term, "t": t, "amount": amount, "label": np.zeros(n, np.int8)}


def _thief_shops(w: _World, n: int) -> tuple[np.ndarray, np.ndarray]:
    """cardholder: (terminal, amount) where and how much stolen cards are used."""
    names = np.array(CATEGORIES["cardholder"])
    targets = list(EPISODE_AMOUNTS)
    where = w.rng.choice(len(targets), n, p=[0.4, 0.3, 0.2, 0.1])
    term = np.empty(n, np.int64)
    amount = np.empty(n)
    for j, target in enumerate(targets):
        at = where == j
        shops = np.flatnonzero(names[w.term_cat] == target)
        if not len(shops):
            shops = np.arange(len(w.term_xy))
        term[at] = w.rng.choice(shops, int(at.sum()))
        amount[at] = w.rng.uniform(*EPISODE_AMOUNTS[target], int(at.sum()))
    return term, amount


def _legit_signup(w: _World, n: int) -> dict[str, np.ndarray]:
    """One purchase per new account, weeks after sign-up, on the customer's own device (a few
    devices are shared within a household)."""
    rng = w.rng
    cust = rng.choice(10**9, n, replace=False)
    term = rng.choice(10**9, n, replace=False)
    shared = rng.random(n) < 0.03
    term[shared] = term[rng.integers(0, n, int(shared.sum()))]
    t = rng.integers(0, w.spec.days, n) * 86400.0 + _time_of_day(rng, n)
    amount = AMOUNT_SCALE["signup"] * rng.lognormal(0, 0.6, n)
    rows = {"cust": cust, "term": term, "t": t, "amount": amount, "label": np.zeros(n, np.int8)}
    rows["signup"] = t - np.maximum(3600.0, rng.exponential(40 * 86400.0, n))
    return rows


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
    w: _World,
    n: int,
    sizes: tuple[int, int],
    mean_size: int,
    population: int,
    days: float,
    daytime: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(entity, time) of n fraud rows in runs of `sizes` rows, each on one entity (card or
    terminal) from a random day over the next `days` days (at usual hours when `daytime`)."""
    per_run = w.rng.integers(*sizes, max(1, n // mean_size + 1))
    entities = w.rng.integers(0, population, len(per_run))
    entity = np.repeat(entities, per_run)[:n]
    start = np.repeat(w.rng.integers(0, w.spec.days, len(per_run)) * 86400.0, per_run)[:n]
    if daytime:
        day = w.rng.integers(0, max(1, int(days)), len(entity)) * 86400.0
        return entity, start + day + _time_of_day(w.rng, len(entity))
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


def _over_threshold(w: _World, n: int) -> dict:
    """card_history: a purchase above the fixed amount bar."""
    rows = _large_amount(w, n)
    rows["amount"] = AMOUNT_BAR * w.rng.uniform(1.0, 2.0, n)
    return rows


def _terminal_takeover(w: _World, n: int) -> dict:
    """card_history: a compromised terminal; its usual customers' purchases there for four
    weeks are fraud, at their usual amounts."""
    term, t = _campaign(w, n, (10, 60), 30, len(w.term_xy), 28, daytime=True)
    cust = w.rng.integers(0, len(w.cust_mean), len(term))
    for k in np.unique(term):
        regulars = np.flatnonzero((w.near == k).any(axis=1))
        at = term == k
        if len(regulars):
            cust[at] = w.rng.choice(regulars, int(at.sum()))
    amount = np.minimum(np.abs(w.rng.normal(w.cust_mean[cust], w.cust_std[cust])), AMOUNT_BAR)
    return _rows(cust, term, t, amount)


def _customer_takeover(w: _World, n: int) -> dict:
    """card_history: a compromised customer; purchases over two weeks at their usual places,
    amounts multiplied by five."""
    cust, t = _campaign(w, n, (2, 10), 5, len(w.cust_mean), 14, daytime=True)
    term = w.near[cust, w.rng.integers(0, w.near.shape[1], len(cust))]
    amount = 5 * np.abs(w.rng.normal(w.cust_mean[cust], w.cust_std[cust]))
    return _rows(cust, term, t, amount)


def _card_episode(w: _World, n: int) -> dict:
    """cardholder: a stolen card used for a day or two, mostly at night, online and at a few
    kinds of shop, at the thief's amounts (older cardholders are targeted more)."""
    age_weight = np.where(w.cust_attrs["birth_year"] < 1966, 2.0, 1.0)
    age_weight /= age_weight.sum()
    per_run = w.rng.integers(2, 11, max(1, n // 5 + 1))
    cards = w.rng.choice(len(age_weight), len(per_run), p=age_weight)
    cust = np.repeat(cards, per_run)[:n]
    start = np.repeat(w.rng.integers(0, w.spec.days, len(per_run)) * 86400.0, per_run)[:n]
    night = w.rng.random(len(cust)) < 0.75
    clock = np.where(
        night, (22 * 3600 + w.rng.uniform(0, 6 * 3600, len(cust))), _time_of_day(w.rng, len(cust))
    )
    t = start + w.rng.integers(0, 2, len(cust)) * 86400.0 + clock
    term, amount = _thief_shops(w, len(cust))
    testing = w.rng.random(len(cust)) < 0.15  # a small purchase first, to try the card
    amount[testing] = w.rng.uniform(1, 20, int(testing.sum()))
    return _rows(cust, term, t, amount)


def _mule_chain(w: _World, n: int) -> dict:
    """mule_chain: a victim's balance transferred to a mule account, which cashes the same
    amount out within the hour (two rows per theft; a few mules take many thefts)."""
    pairs = max(1, n // 2)
    victim = w.rng.integers(0, len(w.cust_mean), pairs)
    mules = w.rng.choice(len(w.cust_mean), max(3, len(w.cust_mean) // 300), replace=False)
    mule = mules[w.rng.integers(0, len(mules), pairs)]
    t = w.rng.integers(0, w.spec.days, pairs) * 86400.0 + w.rng.uniform(0, 86400, pairs)
    amount = w.cust_balance[victim] * w.rng.uniform(0.95, 1.0, pairs)
    agent = w.rng.integers(0, len(w.term_xy), pairs)
    rows = _rows(
        np.r_[victim, mule],
        np.r_[len(w.term_xy) + mule, agent],  # the transfer's destination is the mule
        np.r_[t, t + w.rng.uniform(60, 3600, pairs)],
        np.r_[amount, amount],
    )
    rows["empties"] = np.ones(2 * pairs, bool)
    transfer, cash_out = MOBILE_TYPES.index("TRANSFER"), MOBILE_TYPES.index("CASH_OUT")
    rows["kind"] = np.r_[np.full(pairs, transfer), np.full(pairs, cash_out)]
    return rows


def _bot_signup(w: _World, n: int) -> dict:
    """signup: a purchase seconds after the account was made, at any hour."""
    rows = _legit_signup(w, n)
    rows["t"] = w.rng.integers(0, w.spec.days, n) * 86400.0 + w.rng.uniform(0, 86400, n)
    rows["signup"] = rows["t"] - w.rng.uniform(1, 120, n)
    rows["label"] = np.ones(n, np.int8)
    return rows


def _device_ring(w: _World, n: int) -> dict:
    """signup: a ring of new accounts on one device, each buying within days of sign-up."""
    rows = _legit_signup(w, n)
    per_ring = w.rng.integers(4, 21, max(1, n // 10 + 1))
    rows["term"] = np.repeat(w.rng.choice(10**9, len(per_ring)), per_ring)[:n]
    start = np.repeat(w.rng.integers(0, w.spec.days, len(per_ring)) * 86400.0, per_ring)[:n]
    rows["t"] = start + w.rng.uniform(0, 3 * 86400, n)
    rows["signup"] = rows["t"] - w.rng.exponential(2 * 86400.0, n)
    rows["label"] = np.ones(n, np.int8)
    return rows


SCENARIOS = {
    "large_amount": _large_amount,
    "compromised_card": _compromised_card,
    "compromised_terminal": _compromised_terminal,
    "card_testing": _card_testing,
    "night": _night,
    "far": _far,
    "emptying": _emptying,
    "over_threshold": _over_threshold,
    "terminal_takeover": _terminal_takeover,
    "customer_takeover": _customer_takeover,
    "card_episode": _card_episode,
    "mule_chain": _mule_chain,
    "bot_signup": _bot_signup,
    "device_ring": _device_ring,
}


def _simulate_raw(spec: DatasetSpec) -> pd.DataFrame:
    w = _world(spec)
    n_fraud = max(2, round(spec.rows * spec.fraud_rate))
    shares = w.rng.dirichlet(np.ones(len(spec.scenarios)) * 2)
    counts = np.maximum(1, np.round(shares * n_fraud).astype(int))
    legit = _legit_signup if spec.domain == "signup" else _legit
    parts = [legit(w, spec.rows - int(counts.sum()))]
    for scenario, count in zip(spec.scenarios, counts, strict=True):
        parts.append(SCENARIOS[scenario](w, int(count)))
    for rows in parts:
        n = len(rows["cust"])
        rows.setdefault("empties", np.zeros(n, bool))
        rows.setdefault("kind", np.full(n, -1))  # a mobile-money type, or -1: drawn later
        rows.setdefault("signup", np.full(n, np.nan))
    frame = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    gap = frame["t"] - frame["signup"]  # sign-up to purchase stays as drawn
    frame["t"] = np.clip(frame["t"], 0, spec.days * 86400 - 1)
    frame["signup"] = frame["t"] - gap
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
        elif role == R.CATEGORY:  # signup's devices lie outside the terminals: wrap around
            kinds = w.term_cat[term % len(w.term_cat)]
            columns[role] = pd.Series(np.array(CATEGORIES[spec.domain])[kinds])
        elif role == R.CHANNEL:
            options = np.array(CHANNELS[spec.domain])
            pick = rng.choice(len(options), n, p=_channel_mix(len(options)))
            fraud = raw["label"].to_numpy() == 1
            pick[fraud] = rng.choice(len(options), int(fraud.sum()))  # fraud ignores habits
            columns[role] = pd.Series(options[pick])
        elif role == R.DISTANCE:
            d = np.sqrt(((w.cust_xy[cust] - w.term_xy[term]) ** 2).sum(1)) * 3.0
            columns[role] = pd.Series(np.round(d, 2))
    if spec.domain in ("mobile_money", "mule_chain"):
        columns.update(_balances(raw, amount, spec, rng))
        columns = {r: c for r, c in columns.items() if r in spec.roles or r == R.AMOUNT}
    extras = _extras(raw, spec, rng)
    if labeled:
        label = raw["label"].astype(np.int64)
        columns[R.LABEL] = label.map({0: "No", 1: "Yes"}) if spec.style == "ledger" else label
    ordered = [r for r in (*spec.roles, R.LABEL) if r in columns]
    frame = pd.DataFrame({names[r]: columns[r].to_numpy() for r in ordered})
    for offset, (name, values) in enumerate(extras.items()):
        frame.insert(len(spec.roles) + offset, name, values)
    if spec.timestamp_format == "split" and R.TIMESTAMP in spec.roles:
        at = list(frame.columns).index(names[R.TIMESTAMP]) + 1
        for offset, part in enumerate(("Month", "Day", "Time")):
            frame.insert(at + offset, part, split[part].to_numpy())
    return frame


def _extras(raw: pd.DataFrame, spec: DatasetSpec, rng: np.random.Generator) -> dict:
    """The family's columns that no role describes (placed before the label)."""
    if spec.domain == "cardholder":
        attrs = raw.attrs["world"].cust_attrs
        cust = raw["cust"].to_numpy()
        return {name: attrs[name][cust] for name in EXTRA_COLUMNS["cardholder"]}
    if spec.domain == "signup":
        registered = _timestamps(raw["signup"].to_numpy(), spec.timestamp_format).to_numpy()
        when, age = EXTRA_COLUMNS["signup"]
        return {when: registered, age: rng.integers(18, 76, len(raw))}
    return {}


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
    types = np.array(MOBILE_TYPES)
    kind = rng.choice(len(types), n, p=[0.35, 0.12, 0.3, 0.2, 0.03])
    before = w.cust_balance[raw["cust"].to_numpy()] * rng.uniform(0.3, 1.5, n)
    empties = raw["empties"].to_numpy()
    fraud = raw["label"].to_numpy() == 1
    kind[fraud] = rng.choice([1, 2], int(fraud.sum()))
    chosen = raw["kind"].to_numpy() >= 0  # a scenario's own type (mule chains)
    kind[chosen] = raw["kind"].to_numpy()[chosen]
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
