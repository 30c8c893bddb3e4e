"""Column roles (amount, timestamp, customer id, ...) inferred from names and values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shared.engine.timeparse import parse_timestamps

AMOUNT = "amount"
TIMESTAMP = "timestamp"
CUSTOMER = "customer"
TERMINAL = "terminal"
CATEGORY = "category"
CHANNEL = "channel"
TX_TYPE = "tx_type"
BALANCE_BEFORE = "balance_before"
BALANCE_AFTER = "balance_after"
DISTANCE = "distance"
LABEL = "label"
TX_ID = "tx_id"

ROLES: tuple[str, ...] = (AMOUNT, TIMESTAMP, CUSTOMER, TERMINAL, CATEGORY, CHANNEL, TX_TYPE)
ROLES += (BALANCE_BEFORE, BALANCE_AFTER, DISTANCE, LABEL, TX_ID)

# Name keywords per role, across the languages and abbreviations clients use; weight = trust.
KEYWORDS: dict[str, dict[str, float]] = {
    AMOUNT: {
        "amount": 3,
        "amt": 3,
        "montant": 3,
        "importe": 3,
        "betrag": 3,
        "monto": 3,
        "valor": 2,
        "value": 1.5,
        "sum": 1.5,
        "somme": 2,
        "price": 2,
        "prix": 2,
        "transactionamt": 3,
        "total": 1.5,
        "paid": 1.5,
        "spent": 1.5,
        "cost": 1.5,
    },
    TIMESTAMP: {
        "timestamp": 3,
        "datetime": 3,
        "time": 2.5,
        "date": 2.5,
        "dt": 2,
        "horodatage": 3,
        "heure": 2,
        "fecha": 2.5,
        "zeit": 2.5,
        "datum": 2.5,
        "ts": 2,
        "step": 2,
        "created": 1.5,
        "transactiondt": 3,
        "when": 1,
    },
    CUSTOMER: {
        "customer": 3,
        "client": 3,
        "card": 3,
        "carte": 3,
        "cc": 2,
        "account": 2.5,
        "compte": 2.5,
        "user": 2.5,
        "cust": 3,
        "nameorig": 3,
        "orig": 1.5,
        "payer": 2.5,
        "sender": 2.5,
        "holder": 2.5,
        "cardholder": 3,
        "pan": 2,
        "iban": 2,
        "tarjeta": 3,
        "kunde": 3,
        "card1": 3,
        "cliente": 3,
        "src": 1.5,
        "origin": 1.5,
        "consumer": 3,
        "member": 2,
        "subscriber": 2,
    },
    TERMINAL: {
        "terminal": 3,
        "merchant": 3,
        "commercant": 3,
        "marchand": 3,
        "shop": 2.5,
        "store": 2,
        "namedest": 3,
        "dest": 1.5,
        "payee": 2.5,
        "receiver": 2.5,
        "beneficiary": 2.5,
        "beneficiaire": 2.5,
        "atm": 2.5,
        "pos": 1.5,
        "comercio": 3,
        "haendler": 3,
        "vendor": 2.5,
        "retailer": 2.5,
        "seller": 2.5,
        "recipient": 2.5,
        "tpe": 2.5,
        "counterparty": 2,
    },
    CATEGORY: {
        "category": 3,
        "categorie": 3,
        "categoria": 3,
        "mcc": 3,
        "productcd": 3,
        "product": 2,
        "segment": 2,
        "sector": 2,
        "kategorie": 3,
        "industry": 2,
        "rubro": 2.5,
        "rubrique": 2.5,
    },
    CHANNEL: {
        "channel": 3,
        "canal": 3,
        "entry": 2,
        "mode": 1.5,
        "medium": 2,
        "method": 1.5,
        "kanal": 3,
        "online": 1.5,
        "present": 1.5,
    },
    TX_TYPE: {"type": 2, "operation": 2.5, "kind": 1.5, "trantype": 3, "nature": 1.5, "typ": 2},
    BALANCE_BEFORE: {"oldbalanceorg": 3.5, "oldbalance": 3},
    BALANCE_AFTER: {"newbalanceorig": 3.5, "newbalance": 3},
    DISTANCE: {"distance": 3, "dist": 2.5, "km": 1.5, "eloignement": 3, "entfernung": 3},
    LABEL: {
        "fraud": 3,
        "fraude": 3,
        "isfraud": 3.5,
        "label": 2.5,
        "class": 2,
        "target": 2.5,
        "fraudulent": 3,
        "betrug": 3,
        "y": 1,
        "chargeback": 2.5,
        "is": 0.1,
        "outcome": 1.5,
    },
    TX_ID: {
        "transactionid": 3.5,
        "txid": 3.5,
        "trans": 0.5,
        "transaction": 0.5,
        "tx": 0.5,
        "txn": 0.5,
        "num": 0.5,
        "reference": 2,
        "ref": 1.5,
        "operation": 0.3,
        "uuid": 1.5,
    },
}
# Balance columns are named by a balance word plus a direction word ("solde_avant", "bal_after").
BALANCE_WORDS = {"balance", "bal", "solde", "saldo", "kontostand"}
DIRECTION_WORDS = {
    BALANCE_BEFORE: {
        "before",
        "avant",
        "old",
        "prev",
        "previous",
        "initial",
        "opening",
        "antes",
        "vorher",
        "orig",
        "start",
    },
    BALANCE_AFTER: {
        "after",
        "apres",
        "new",
        "final",
        "closing",
        "remaining",
        "despues",
        "nachher",
        "end",
        "dest",
    },
}
# Tokens that mean "identifier": they back up the id roles and rule out the numeric ones.
ID_TOKENS = {"id", "identifier", "num", "number", "no", "nr", "code", "hash", "key", "uuid"}
ID_ROLES = {CUSTOMER, TERMINAL, TX_ID}
NUMERIC_ROLES = {AMOUNT, BALANCE_BEFORE, BALANCE_AFTER, DISTANCE}
CATEGORICAL_ROLES = {CATEGORY, CHANNEL, TX_TYPE}
MIN_SCORE = 1.5
# Words that begin with a keyword but mean something else: a name token matches a keyword by
# its start ("distancia", "destino", "card1"), except these ("date_of_birth_distinct_emails_4w"
# is a count, not a distance).
NOT_PREFIXED = {"distinct", "district", "distribution", "distributor", "cardinality"}
NOT_PREFIXED |= {"timezone", "typeface"}
# Words of an entity's attributes (a merchant's city, a card's zip code, a customer's age, a
# session's browser): they describe the entity, they are not its id.
ATTRIBUTE_TOKENS = {"city", "state", "zip", "country", "region", "postcode", "postal", "ville"}
BIRTH_TOKENS = {"dob", "birth", "birthday", "birthdate", "naissance", "nacimiento", "geburt"}
ATTRIBUTE_TOKENS |= {"pays", "age", "gender", "sex", "useragent"} | BIRTH_TOKENS
# A date split over columns (TabFormer's Year, Month, Day, Time): names and value ranges.
DATE_PART_NAMES = {
    "year": {"year", "yr", "yyyy", "annee", "ano", "jahr"},
    "month": {"month", "mon", "mm", "mois", "mes", "monat"},
    "day": {"day", "dd", "jour", "dia", "tag"},
    "time": {"time", "hour", "hh", "heure", "hora", "zeit", "stunde"},
}
DATE_PART_RANGES = {"year": (1900, 2100), "month": (1, 12), "day": (1, 31), "time": (0, 23)}
CLOCK_TEXT = r"\d{1,2}:\d{2}(:\d{2})?"


@dataclass
class ColumnInfo:
    """What one column looks like, from a sample of its values."""

    name: str
    tokens: list[str]
    numeric_share: float
    integer_share: float
    unique: int
    unique_share: float
    binary: bool
    nonneg_share: float
    datetime_share: float
    low: float = float("nan")
    high: float = float("nan")

    @property
    def is_text(self) -> bool:
        return self.numeric_share < 0.5

    @property
    def epoch_like(self) -> bool:
        """Whole numbers in the range of epoch seconds or milliseconds (2001-2096)."""
        if self.numeric_share < 0.99 or self.unique_share < 0.2:
            return False
        return (self.low >= 1e9 and self.high < 4e9) or (self.low >= 1e12 and self.high < 4e12)


@dataclass
class RoleMap:
    """role -> column, plus why each column got its role."""

    columns: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # A date split over columns (year, month, day and maybe time): the timestamp role then
    # names the year column, and the clock is read from all of them.
    date_parts: tuple[str, ...] = ()

    def get(self, role: str) -> str | None:
        return self.columns.get(role)

    def __contains__(self, role: str) -> bool:
        return role in self.columns

    def to_json(self) -> dict[str, str]:
        return dict(self.columns)


def tokens_of(name: str) -> list[str]:
    """'TransactionAmt' -> ['transaction', 'amt', 'transactionamt']; 'Montant_EUR' -> [...]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name.strip())
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if p]
    joined = re.sub(r"[^a-z0-9]", "", name.lower())
    return [*parts, joined] if joined and joined not in parts else parts


def to_number(series: pd.Series) -> pd.Series:
    """Numbers from numbers or text, including '12,50' (decimal comma) and '1 234.5'."""
    if pd.api.types.is_bool_dtype(series):
        return series.astype(float)
    if pd.api.types.is_numeric_dtype(series):
        return series.astype(float)
    text = series.astype("string").str.strip()
    plain = pd.to_numeric(text, errors="coerce")
    if not (plain.isna() & text.fillna("").ne("")).any():  # plain numbers: nothing to rewrite
        return plain.astype(float)
    text = text.str.replace(r"[\s\u00a0'€$£]", "", regex=True)
    # Thousands separators: "1,234.56" and "1,234,567"; "1.234,56" (a lone "1,234" stays a
    # decimal comma, as most European files mean it).
    comma_thousands = text.str.fullmatch(r"-?\d{1,3}(,\d{3})+\.\d+|-?\d{1,3}(,\d{3}){2,}")
    text = text.where(~comma_thousands.fillna(False), text.str.replace(",", "", regex=False))
    dot_thousands = text.str.fullmatch(r"-?\d{1,3}(\.\d{3})+,\d+").fillna(False)
    text = text.where(~dot_thousands, text.str.replace(".", "", regex=False))
    comma_decimal = text.str.fullmatch(r"-?\d+,\d+").fillna(False)
    text = text.where(~comma_decimal, text.str.replace(",", ".", regex=False))
    return pd.to_numeric(text, errors="coerce").astype(float)


def describe(series: pd.Series, sample: int = 5000) -> ColumnInfo:
    """Profile a column from (a sample of) its non-empty values."""
    values = series.dropna()
    if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        values = values[values.astype("string").str.strip() != ""]  # a blank cell is missing
    if len(values) > sample:
        values = values.sample(sample, random_state=0)
    n = max(len(values), 1)
    numbers = to_number(values)
    numeric = numbers.notna()
    finite = numbers[numeric]
    integer = (finite == np.round(finite)).sum() if len(finite) else 0
    uniques = values.astype(str).nunique()
    binary = bool(len(finite) and set(np.unique(finite)) <= {0.0, 1.0} and numeric.mean() > 0.99)
    if not binary and not pd.api.types.is_numeric_dtype(values):
        lowered = set(values.astype(str).str.lower().unique())
        binary = bool(lowered) and lowered <= {"true", "false", "yes", "no", "oui", "non", "0", "1"}
    datetime_share = 0.0
    if numeric.mean() < 0.5 and values.dtype != bool:
        datetime_share = dated_share(values)
    return ColumnInfo(
        name=str(series.name),
        tokens=tokens_of(str(series.name)),
        numeric_share=float(numeric.mean()) if len(values) else 0.0,
        integer_share=float(integer / max(len(finite), 1)),
        unique=int(uniques),
        unique_share=float(uniques / n),
        binary=binary,
        nonneg_share=float((finite >= 0).mean()) if len(finite) else 0.0,
        datetime_share=datetime_share,
        low=float(finite.min()) if len(finite) else float("nan"),
        high=float(finite.max()) if len(finite) else float("nan"),
    )


def dated_share(values: pd.Series) -> float:
    """The share of (the first 500 of) a text column's values that read as dates or times."""
    from shared.engine.timeparse import parse_timestamps

    head = values.head(500)
    text = head.astype("string")
    # Every format read needs two runs of digits, or one of 4+ digits alone: a column of ids,
    # names or categories skips trying each format (the same answer, 0, sooner).
    if not (text.str.contains(r"\d\D+\d").any() or text.str.fullmatch(r"\s*\d{4,}\s*").any()):
        return 0.0
    return float(parse_timestamps(head).notna().mean())


def name_score(tokens: list[str], role: str) -> float:
    keywords = KEYWORDS[role]
    score = 0.0
    balance_word = any(t in BALANCE_WORDS for t in tokens)
    if role in DIRECTION_WORDS and balance_word and set(tokens) & DIRECTION_WORDS[role]:
        score = 3.0
    for token in tokens:
        if token in keywords:
            score = max(score, keywords[token])
        elif token not in NOT_PREFIXED:
            for keyword, weight in keywords.items():
                if (len(keyword) >= 5 and keyword in token) or (
                    len(keyword) >= 4 and token.startswith(keyword)
                ):
                    score = max(score, weight * 0.8)
    has_id = any(t in ID_TOKENS for t in tokens)
    if role in ID_ROLES and has_id:
        score += 1.0 if score else 0.0
        if role == TX_ID and any(t in ("transaction", "tx", "txn", "trans") for t in tokens):
            score = max(score, 3.0)
    if role in NUMERIC_ROLES | {TIMESTAMP, LABEL} and has_id:
        score -= 2.0
    if role in ID_ROLES and any(t in ATTRIBUTE_TOKENS for t in tokens):
        score = 0.0
    if role == TIMESTAMP and any(t in BIRTH_TOKENS for t in tokens):
        score = 0.0  # a cardholder's birth date is not the transaction's time
    return score


def value_fit(info: ColumnInfo, role: str, rows: int) -> float:
    """Multiplier in [0, 1]: do the values look like this role's values?"""
    if role == LABEL:
        return 1.0 if info.binary else 0.0
    if role in NUMERIC_ROLES:
        if info.numeric_share < 0.9 or info.binary:
            return 0.0
        return 1.0 if info.nonneg_share > 0.9 or role == BALANCE_AFTER else 0.5
    if role == TIMESTAMP:
        if info.datetime_share > 0.5:  # most read as dates (the rest: warned about, not read)
            return 1.0
        return 0.8 if info.numeric_share > 0.95 and info.unique > 10 else 0.0
    if role in ID_ROLES:
        if info.binary or info.unique < 3:
            return 0.0
        if info.numeric_share > 0.95 and info.integer_share < 0.99:
            return 0.0  # a decimal column (a balance, an amount, a coordinate) is no id
        if role == TX_ID:
            return 1.0 if info.unique_share > 0.95 else 0.2
        return 1.0 if info.unique_share < 0.95 or info.unique > 1000 else 0.6
    if role in CATEGORICAL_ROLES:
        if info.numeric_share > 0.95 and info.integer_share < 0.99:
            return 0.0
        return 1.0 if info.unique <= max(200, 0.01 * rows) and info.unique >= 2 else 0.1
    return 1.0


def infer_roles(frame: pd.DataFrame, label: str | None = None) -> RoleMap:
    """Give each role the column whose name and values fit it best (one role per column)."""
    if label is not None and label not in frame.columns:
        raise ValueError(f"label column {label!r} not in the file's columns")
    infos = {str(c): describe(frame[c]) for c in frame.columns}
    rows = len(frame)
    candidates: list[tuple[float, str, str]] = []
    for name, info in infos.items():
        if name == label:
            continue
        for role in ROLES:
            if role == LABEL and label is not None:
                continue
            score = name_score(info.tokens, role) * value_fit(info, role, rows)
            if score >= MIN_SCORE:
                candidates.append((score, role, name))
    latest = _latest_of_tied_times(candidates, frame)
    result = RoleMap()
    if label is not None:
        result.columns[LABEL] = label
        result.reasons[label] = "given as the label"
    for score, role, name in sorted(candidates, key=lambda c: (-c[0], c[1], c[2])):
        if role in result.columns or name in result.reasons:
            continue
        result.columns[role] = name
        why = f"{role}: name and values fit (score {score:.1f})"
        if role == TIMESTAMP and name == latest:
            why += ", the latest in every row of the time columns named alike"
        result.reasons[name] = why
    if TIMESTAMP not in result:
        _date_parts(result, frame, infos)
    _fallbacks(result, infos, rows, frame)
    return result


def _date_parts(result: RoleMap, frame: pd.DataFrame, infos: dict[str, ColumnInfo]) -> None:
    """A date split over year, month and day columns (and maybe a time or hour column)."""
    found: dict[str, str] = {}
    for part, words in DATE_PART_NAMES.items():
        for name, info in infos.items():
            if name in result.reasons or name in found.values() or not set(info.tokens) & words:
                continue
            low, high = DATE_PART_RANGES[part]
            whole = info.numeric_share > 0.99 and info.integer_share > 0.999
            if whole and low <= info.low and info.high <= high:
                found[part] = name
                break
            if part == "time" and info.is_text:
                values = frame[name].dropna().astype(str).str.strip().head(500)
                if len(values) and values.str.fullmatch(CLOCK_TEXT).mean() > 0.99:
                    found[part] = name
                    break
    if not {"year", "month", "day"} <= found.keys():
        return
    parts = tuple(found[p] for p in DATE_PART_NAMES if p in found)
    result.columns[TIMESTAMP] = found["year"]
    result.date_parts = parts
    for name in parts:
        result.reasons[name] = "timestamp: a date split over " + ", ".join(parts)


def _fallbacks(
    result: RoleMap, infos: dict[str, ColumnInfo], rows: int, frame: pd.DataFrame
) -> None:
    """Value-based guesses for roles the names did not reveal (files named in any language)."""

    def free() -> list[ColumnInfo]:
        return [info for name, info in infos.items() if name not in result.reasons]

    def assign(role: str, info: ColumnInfo, why: str) -> None:
        result.columns[role] = info.name
        result.reasons[info.name] = f"{role}: {why}"

    if TIMESTAMP not in result:
        dated = [i for i in free() if i.datetime_share > 0.95] or [
            i for i in free() if i.epoch_like
        ]
        if len(dated) == 1:
            assign(TIMESTAMP, dated[0], "values are dates or epoch times")
        elif latest := _latest_date(frame, [i.name for i in dated]):
            assign(TIMESTAMP, infos[latest], "the latest of several date columns in every row")
    for role in (BALANCE_BEFORE, BALANCE_AFTER):  # a balance word whose direction we missed
        if role not in result:
            named = [i for i in free() if i.numeric_share > 0.9 and set(i.tokens) & BALANCE_WORDS]
            if named:
                assign(role, named[0], "a balance column (direction from column order)")
    if AMOUNT not in result:
        money = [
            i
            for i in free()
            if i.numeric_share > 0.99
            and not i.binary
            and i.nonneg_share > 0.99
            and i.integer_share < 0.9
            and i.unique_share > 0.05
            and not any(t in ID_TOKENS for t in i.tokens)
        ]
        if len(money) == 1:
            assign(AMOUNT, money[0], "the only positive decimal column")
    if TX_ID not in result:
        unique = [i for i in free() if i.unique_share == 1.0 and _id_values(i) and rows >= 50]
        if len(unique) == 1:
            assign(TX_ID, unique[0], "a unique identifier per row")
    repeated = sorted(
        (
            i
            for i in free()
            if _id_values(i)
            and i.unique >= 30
            and i.unique_share < 0.95
            and not set(i.tokens) & ATTRIBUTE_TOKENS
        ),
        key=lambda i: -i.unique,
    )
    for role in (CUSTOMER, TERMINAL):  # cards/accounts usually outnumber merchants
        if role not in result and repeated:
            assign(role, repeated.pop(0), "repeated identifiers (by number of distinct values)")
    labels = [i for i in free() if i.is_text and 2 <= i.unique <= 50 and not i.binary]
    for role in (CATEGORY, CHANNEL, TX_TYPE):
        if role not in result and labels:
            assign(role, labels.pop(0), "a text column with few distinct values")


def _latest_of_tied_times(candidates: list[tuple[float, str, str]], frame: pd.DataFrame) -> str:
    """Two time columns named alike (`account_created_time`, `transaction_time`): the later in
    every row wins the tie (its score raised a hair, in place), not the first in alphabetical
    order. Its name, or "" when there is no such tie."""
    times = [(score, name) for score, role, name in candidates if role == TIMESTAMP]
    top = max((score for score, _ in times), default=0.0)
    tied = [name for score, name in times if score == top]
    latest = (_latest_date(frame, tied) if len(tied) > 1 else None) or ""
    for i, (score, role, name) in enumerate(candidates):
        if role == TIMESTAMP and name == latest:
            candidates[i] = (score + 1e-6, role, name)
    return latest


def _latest_date(frame: pd.DataFrame, names: list[str]) -> str | None:
    """Of several date columns, the one at or after all the others in 95% of rows (a purchase
    after its account's sign-up), if exactly one is."""
    head = frame.head(2000)
    times = {name: parse_timestamps(head[name].astype("string")).to_numpy() for name in names}
    latest = [
        name
        for name in names
        if all(np.mean(times[name] >= times[other]) >= 0.95 for other in names if other != name)
    ]
    return latest[0] if len(latest) == 1 else None


def _id_values(info: ColumnInfo) -> bool:
    """Values that look like identifiers: text, or whole numbers named or sized like ids."""
    if info.binary or info.epoch_like or info.datetime_share > 0.5:
        return False
    if info.is_text:
        return True
    named = any(t in ID_TOKENS for t in info.tokens)
    return info.integer_share > 0.999 and (named or info.low >= 1000)
