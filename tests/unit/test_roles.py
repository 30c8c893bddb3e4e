"""Role inference: every reference schema, and names nobody mapped."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.engine import roles as R
from shared.engine.roles import infer_roles, to_number, tokens_of
from shared.engine.timeparse import parse_timestamps
from shared.training.simulator import reference_catalog, simulate, with_rows


@pytest.mark.parametrize("spec", reference_catalog(), ids=lambda s: s.name)
def test_roles_are_found_in_every_reference_schema(spec) -> None:
    frame = simulate(with_rows(spec, 2000))
    expected = {role: spec.column_names()[role] for role in (*spec.roles, R.LABEL)}
    assert infer_roles(frame).columns == expected


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


def test_names_split_into_tokens() -> None:
    assert tokens_of("TransactionAmt")[:2] == ["transaction", "amt"]
    assert tokens_of("oldbalanceOrg")[:2] == ["oldbalance", "org"]
    assert tokens_of("TX_DATETIME")[:2] == ["tx", "datetime"]


def test_numbers_are_read_with_decimal_commas_and_spaces() -> None:
    values = to_number(pd.Series(["12,50", "1 234.5", "7", "abc", None]))
    assert values.iloc[:3].tolist() == [12.5, 1234.5, 7.0]
    assert values.iloc[3:].isna().all()


@pytest.mark.parametrize(
    ("values", "tokens", "expected"),
    [
        (["2026-01-01 10:00:00", "2026-01-01T11:30:00Z"], None, [1767261600.0, 1767267000.0]),
        (["01/02/2026 10:00", "13/02/2026 10:00"], None, [1769940000.0, 1770976800.0]),
        ([1767261600, 1767267000], None, [1767261600.0, 1767267000.0]),
        ([1767261600000, 1767267000000], None, [1767261600.0, 1767267000.0]),
        ([1, 2], ["step"], [3600.0, 7200.0]),
    ],
)
def test_timestamps_parse_in_the_usual_formats(values, tokens, expected) -> None:
    assert parse_timestamps(pd.Series(values), tokens).tolist() == expected


def test_unparseable_timestamps_are_nan() -> None:
    parsed = parse_timestamps(pd.Series(["2026-01-01 10:00:00", "not a date"]))
    assert parsed.isna().tolist() == [False, True]
