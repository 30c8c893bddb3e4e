"""Role inference: every reference schema, and names nobody mapped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.engine import features
from shared.engine import roles as R
from shared.engine.roles import infer_roles, to_number, tokens_of
from shared.engine.timeparse import parse_timestamps
from shared.training.simulator import reference_catalog, simulate, with_rows


@pytest.mark.parametrize("spec", reference_catalog(), ids=lambda s: s.name)
def test_roles_are_found_in_every_reference_schema(spec) -> None:
    frame = simulate(with_rows(spec, 2000))
    expected = {role: spec.column_names()[role] for role in (*spec.roles, R.LABEL)}
    found = infer_roles(frame).columns
    assert {role: found.get(role) for role in expected} == expected
    # A cardholder's gender may fill a free category or channel role, as on the real files
    # (few text values); no other column takes a role the file does not have.
    others = {role: name for role, name in found.items() if role not in expected}
    assert set(others) <= {R.CATEGORY, R.CHANNEL} and set(others.values()) <= {"gender"}


def _frame(**columns: object) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 500
    base = {
        "amount": np.round(rng.lognormal(3, 1, n), 2),
        "ids": [f"C{i % 40:05d}" for i in range(n)],
        "stamps": pd.date_range("2026-01-01", periods=n, freq="17min").strftime(
            "%Y-%m-%dT%H:%M:%S"
        ),
    }
    return pd.DataFrame({name: base[kind] for name, kind in columns.items()})


@pytest.mark.parametrize(
    ("column", "kind", "role"),
    [
        ("Montant_EUR", "amount", R.AMOUNT),
        ("txn_amt", "amount", R.AMOUNT),
        ("Betrag", "amount", R.AMOUNT),
        ("importe_total", "amount", R.AMOUNT),
        ("purchaseValue", "amount", R.AMOUNT),
        ("fecha_hora", "stamps", R.TIMESTAMP),
        ("EventTime", "stamps", R.TIMESTAMP),
        ("Buchungsdatum", "stamps", R.TIMESTAMP),
        ("id_tarjeta", "ids", R.CUSTOMER),
        ("AccountNumber", "ids", R.CUSTOMER),
        ("merchantName", "ids", R.TERMINAL),
        ("beneficiary_iban", "ids", R.TERMINAL),
    ],
)
def test_unseen_names_get_their_role(column: str, kind: str, role: str) -> None:
    assert infer_roles(_frame(**{column: kind})).columns == {role: column}


def test_a_positive_decimal_column_with_an_opaque_name_is_taken_as_the_amount() -> None:
    roles = infer_roles(_frame(v1="amount", ref="ids"))
    assert roles.get(R.AMOUNT) == "v1"


def test_an_identifier_is_never_taken_as_an_amount() -> None:
    frame = pd.DataFrame({"amount_id": np.arange(500), "customer_no": np.arange(500) % 7})
    roles = infer_roles(frame)
    assert R.AMOUNT not in roles
    assert roles.get(R.CUSTOMER) == "customer_no"


def test_a_given_label_wins_and_must_exist() -> None:
    frame = _frame(amt="amount").assign(target_flag=0)
    assert infer_roles(frame, label="target_flag").get(R.LABEL) == "target_flag"
    with pytest.raises(ValueError, match="not in the file"):
        infer_roles(frame, label="nope")


def test_a_word_that_only_begins_like_a_keyword_takes_no_role() -> None:
    """'dist' starts 'distancia' and 'dist1' (distances) but also 'distinct' (a count); a
    user agent names a browser, not a user."""
    rng = np.random.default_rng(0)
    frame = _frame(amt="amount").assign(
        date_of_birth_distinct_emails_4w=rng.integers(0, 30, 500),
        user_agent=[f"Mozilla/5.0 (X11; Linux; build {i % 40})" for i in range(500)],
    )
    roles = infer_roles(frame)
    assert R.DISTANCE not in roles
    assert R.TIMESTAMP not in roles  # nor is a count "of birth dates" a time
    assert roles.get(R.CUSTOMER) is None  # the user agent is no card or account id
    assert (
        infer_roles(_frame(amt="amount").assign(distancia=rng.random(500) * 50)).get(R.DISTANCE)
        == "distancia"
    )


def test_names_split_into_tokens() -> None:
    assert tokens_of("TransactionAmt")[:2] == ["transaction", "amt"]
    assert tokens_of("oldbalanceOrg")[:2] == ["oldbalance", "org"]
    assert tokens_of("TX_DATETIME")[:2] == ["tx", "datetime"]


def test_numbers_are_read_with_decimal_commas_and_spaces() -> None:
    values = to_number(pd.Series(["12,50", "1 234.5", "7", "abc", None]))
    assert values.iloc[:3].tolist() == [12.5, 1234.5, 7.0]
    assert values.iloc[3:].isna().all()


def test_numbers_are_read_with_currency_signs_and_thousands_separators() -> None:
    values = to_number(pd.Series(["$1,234.56", "-$12.00", "€1.234,50", "1,234,567", "£0.99"]))
    assert values.tolist() == [1234.56, -12.0, 1234.5, 1234567.0, 0.99]


@pytest.mark.parametrize(
    ("values", "tokens", "expected"),
    [
        (["2026-01-01 10:00:00", "2026-01-01T11:30:00Z"], None, [1767261600.0, 1767267000.0]),
        (["01/02/2026 10:00", "13/02/2026 10:00"], None, [1769940000.0, 1770976800.0]),
        ([1767261600, 1767267000], None, [1767261600.0, 1767267000.0]),
        ([1767261600000, 1767267000000], None, [1767261600.0, 1767267000.0]),
        ([1, 2], ["step"], [3600.0, 7200.0]),
        (["2/24/15 22:55", "12/31/15 1:05"], None, [1424818500.0, 1451523900.0]),
    ],
)
def test_timestamps_parse_in_the_usual_formats(values, tokens, expected) -> None:
    assert parse_timestamps(pd.Series(values), tokens).tolist() == expected


def test_unparseable_timestamps_are_nan() -> None:
    parsed = parse_timestamps(pd.Series(["2026-01-01 10:00:00", "not a date"]))
    assert parsed.isna().tolist() == [False, True]


def _ledger(rows: int = 400) -> pd.DataFrame:
    """A card file in TabFormer's shape: the date split over Year, Month, Day and Time."""
    rng = np.random.default_rng(3)
    days = pd.Timestamp("2019-03-01") + pd.to_timedelta(np.sort(rng.integers(0, 90, rows)), "D")
    return pd.DataFrame(
        {
            "User": 0,
            "Card": rng.integers(0, 4, rows),
            "Year": days.year,
            "Month": days.month,
            "Day": days.day,
            "Time": [f"{h:02d}:{m:02d}" for h, m in rng.integers(0, [24, 60], (rows, 2))],
            "Amount": [f"${v:.2f}" for v in rng.lognormal(3, 1, rows)],
            "Merchant Name": rng.integers(-(10**18), 10**18, rows),
            "Merchant City": rng.choice(["La Verne", "Monterey Park", "Rome", "Paris"], rows),
            "MCC": rng.choice([5411, 5300, 5812], rows),
            "Is Fraud?": rng.choice(["No", "Yes"], rows, p=[0.99, 0.01]),
        }
    )


def test_a_date_split_over_year_month_day_and_time_is_the_timestamp() -> None:
    frame = _ledger()
    roles = infer_roles(frame)
    assert roles.date_parts == ("Year", "Month", "Day", "Time")
    assert roles.get(R.TIMESTAMP) == "Year"
    assert "date split over Year, Month, Day, Time" in roles.reasons["Time"]
    assert roles.get(R.AMOUNT) == "Amount" and roles.get(R.LABEL) == "Is Fraud?"
    # A city describes the merchant; the merchant's name (an opaque number) identifies it.
    assert roles.get(R.TERMINAL) == "Merchant Name"
    clock = features.clock_of(frame, roles)
    first = pd.Timestamp(
        year=frame["Year"][0], month=frame["Month"][0], day=frame["Day"][0]
    ) + pd.Timedelta(frame["Time"][0] + ":00")
    assert clock[0] == (first - pd.Timestamp("1970-01-01")).total_seconds()
    assert np.isfinite(clock).all()


def test_year_month_day_columns_out_of_range_are_not_a_date() -> None:
    frame = _ledger()
    frame["Month"] = frame["Month"] + 20  # not a month
    roles = infer_roles(frame)
    assert roles.date_parts == () and R.TIMESTAMP not in roles


def test_a_column_with_repeats_is_not_taken_as_the_transaction_id() -> None:
    rows = 3000
    rng = np.random.default_rng(0)
    devices = [f"D{v:06d}" for v in rng.integers(0, 10**6, rows)]
    devices[1] = devices[0]  # a shared device
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, rows).round(2), "device": devices})
    assert R.TX_ID not in infer_roles(frame)
    frame["device"] = [f"D{v:06d}" for v in range(rows)]
    assert infer_roles(frame).get(R.TX_ID) == "device"


def test_an_attribute_of_an_entity_is_not_taken_for_its_id() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    frame = pd.DataFrame(
        {
            "customer_age": rng.choice([20, 30, 40, 50, 60], n),
            "merchant_city": rng.choice(["Rome", "Paris", "Lyon"], n),
            "amount": rng.lognormal(3, 1, n).round(2),
        }
    )
    roles = infer_roles(frame)
    assert R.CUSTOMER not in roles and R.TERMINAL not in roles
    frame["customer_id"] = rng.integers(1000, 1300, n)
    assert infer_roles(frame).get(R.CUSTOMER) == "customer_id"


def test_a_decimal_column_is_never_taken_for_an_id() -> None:
    """PaySim's shape: the receiver's balances beside the sender's; `newbalanceDest` (a decimal
    with `dest` in its name) had been taken as the terminal."""
    rng = np.random.default_rng(3)
    n = 3000
    frame = pd.DataFrame(
        {
            "step": rng.integers(1, 700, n),
            "type": rng.choice(["PAYMENT", "TRANSFER", "CASH_OUT"], n),
            "amount": rng.lognormal(8, 1, n).round(2),
            "nameOrig": [f"C{i}" for i in rng.integers(10**8, 10**9, n)],
            "oldbalanceOrg": rng.lognormal(9, 1, n).round(2),
            "newbalanceOrig": rng.lognormal(9, 1, n).round(2),
            "nameDest": [f"M{i}" for i in rng.integers(1000, 1400, n)],
            "oldbalanceDest": rng.lognormal(10, 1, n).round(2),
            "newbalanceDest": rng.lognormal(10, 1, n).round(2),
        }
    )
    roles = infer_roles(frame)
    assert roles.get(R.TERMINAL) == "nameDest" and roles.get(R.CUSTOMER) == "nameOrig"
    decimals = {"oldbalanceDest", "newbalanceDest", "amount", "oldbalanceOrg", "newbalanceOrig"}
    assert not {roles.get(r) for r in (R.CUSTOMER, R.TERMINAL, R.TX_ID)} & decimals
    assert infer_roles(frame.drop(columns=["nameDest"])).get(R.TERMINAL) is None


def test_blank_cells_are_missing_not_text() -> None:
    """A sparse numeric column read as text ("" for a gap) stays numeric: no text role."""
    rng = np.random.default_rng(4)
    n = 2000
    sparse = np.where(rng.random(n) < 0.7, "", rng.integers(0, 5, n).astype(str))
    frame = pd.DataFrame({"amount": rng.lognormal(3, 1, n).round(2).astype(str), "V1": sparse})
    info = R.describe(frame["V1"])
    assert info.numeric_share == 1.0 and not info.is_text
    assert "V1" not in infer_roles(frame).columns.values()


def _bought_after_joining(rng: np.random.Generator) -> tuple[pd.DatetimeIndex, pd.DatetimeIndex]:
    """500 purchase times, and each buyer's sign-up time up to 90 days before."""
    bought = pd.Timestamp("2026-03-01") + pd.to_timedelta(rng.uniform(0, 30, 500), unit="D")
    return bought, bought - pd.to_timedelta(rng.uniform(0.001, 90, 500), unit="D")


def test_of_two_unnamed_date_columns_the_later_one_is_the_timestamp() -> None:
    rng = np.random.default_rng(0)
    bought, joined = _bought_after_joining(rng)
    frame = _frame(valor="amount")
    frame["registo"] = joined.strftime("%Y-%m-%d %H:%M:%S")
    frame["quando"] = bought.strftime("%Y-%m-%d %H:%M:%S")
    assert infer_roles(frame).get(R.TIMESTAMP) == "quando"
    frame["outra"] = (bought + pd.to_timedelta(rng.normal(0, 1, 500), unit="D")).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    assert infer_roles(frame).get(R.TIMESTAMP) is None  # no column is the latest in every row


def test_of_two_time_columns_named_alike_the_later_one_is_the_timestamp() -> None:
    bought, joined = _bought_after_joining(np.random.default_rng(1))
    frame = _frame(amount="amount")
    frame["transaction_time"] = bought.strftime("%Y-%m-%d %H:%M:%S")
    frame["account_created_time"] = joined.strftime("%Y-%m-%d %H:%M:%S")
    roles = infer_roles(frame)
    assert roles.get(R.TIMESTAMP) == "transaction_time"
    assert "latest in every row" in roles.reasons["transaction_time"]
