"""The reference-data simulator: deterministic, varied like real clients' files."""

from __future__ import annotations

import pandas as pd
import pytest

from shared.engine import roles as R
from shared.engine.roles import infer_roles
from shared.engine.timeparse import parse_timestamps
from shared.library.build import outside_catalog
from shared.training.simulator import (
    AMOUNT_BAR,
    BASE_DOMAINS,
    DOMAIN_ROLES,
    DOMAIN_SCENARIOS,
    EPISODE_AMOUNTS,
    STYLES,
    TYPOLOGY_DOMAINS,
    DatasetSpec,
    example_spec,
    reference_catalog,
    simulate,
    with_rows,
)

CATALOG = reference_catalog()


def test_the_catalog_has_forty_datasets_with_unique_names_and_seeds() -> None:
    assert len(CATALOG) == 40
    assert len({s.name for s in CATALOG}) == 40
    assert len({s.seed for s in CATALOG}) == 40


def test_the_catalog_varies_domain_rate_size_names_and_formats() -> None:
    assert {s.domain for s in CATALOG} == set(BASE_DOMAINS + TYPOLOGY_DOMAINS)
    assert all(0.001 <= s.fraud_rate <= 0.05 for s in CATALOG)
    assert min(s.fraud_rate for s in CATALOG) < 0.002 and max(s.fraud_rate for s in CATALOG) > 0.03
    assert all(10_000 <= s.rows <= 100_000 for s in CATALOG)
    assert {s.style for s in CATALOG} == set(STYLES)
    assert {"iso", "epoch", "dmy"} <= {s.timestamp_format for s in CATALOG}
    assert {"int", "prefixed", "hex"} == {s.id_format for s in CATALOG}
    amount_names = {s.column_names()[R.AMOUNT] for s in CATALOG}
    assert {"TX_AMOUNT", "amount", "montant", "TransactionAmt", "amt"} <= amount_names
    assert len({tuple(s.roles) for s in CATALOG}) > 8  # column subsets differ


def test_the_same_spec_gives_the_same_rows() -> None:
    spec = with_rows(CATALOG[5], 3000)
    pd.testing.assert_frame_equal(simulate(spec), simulate(spec))


def test_another_seed_gives_other_rows() -> None:
    spec = with_rows(CATALOG[5], 3000)
    other = reference_catalog(6, seed=1)[5]
    assert not simulate(spec).equals(simulate(with_rows(other, 3000)))


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_the_fraud_rate_is_what_the_spec_asks(index: int) -> None:
    spec = with_rows(CATALOG[index], 20_000)
    frame = simulate(spec)
    rate = frame[spec.column_names()[R.LABEL]].mean()
    assert abs(rate - spec.fraud_rate) <= max(0.3 * spec.fraud_rate, 0.0005)
    assert len(frame) == pytest.approx(spec.rows, abs=5)


def test_columns_follow_the_spec_names_and_formats() -> None:
    spec = next(s for s in CATALOG if s.timestamp_format == "dmy")
    frame = simulate(with_rows(spec, 2000))
    names = spec.column_names()
    assert list(frame.columns) == [names[r] for r in (*spec.roles, R.LABEL)]
    assert frame[names[R.TIMESTAMP]].str.fullmatch(r"\d\d/\d\d/\d{4} \d\d:\d\d").all()


def test_the_example_upload_is_unlabeled_and_named_like_no_reference() -> None:
    frame = simulate(example_spec(), labeled=False)
    reference_names = {name for s in CATALOG for name in s.column_names().values()}
    assert not set(frame.columns) & reference_names
    assert example_spec().seed not in {s.seed for s in CATALOG}
    assert not any("fraud" in c.lower() for c in frame.columns)


def test_mobile_money_fraud_empties_accounts() -> None:
    spec = with_rows(next(s for s in CATALOG if s.domain == "mobile_money"), 20_000)
    frame = simulate(spec)
    names = spec.column_names()
    emptied = (frame[names[R.BALANCE_AFTER]] == 0) & (frame[names[R.BALANCE_BEFORE]] > 0)
    by_label = emptied.groupby(frame[names[R.LABEL]]).mean()
    assert by_label[1] > 0.05 and by_label[1] > 10 * by_label[0]


def test_ledger_datasets_split_the_date_and_write_dollars_and_yes_no() -> None:
    ledgers = [s for s in CATALOG if s.style == "ledger"]
    assert {s.domain for s in ledgers} == set(BASE_DOMAINS)
    frame = simulate(with_rows(ledgers[0], 2000))
    year = list(frame.columns).index("Year")
    assert list(frame.columns)[year : year + 4] == ["Year", "Month", "Day", "Time"]
    assert frame["Amount"].str.fullmatch(r"\$\d+\.\d{2}").all()
    assert set(frame["Is Fraud?"]) == {"No", "Yes"}
    roles = infer_roles(frame)
    assert roles.date_parts == ("Year", "Month", "Day", "Time")
    assert roles.get(R.LABEL) == "Is Fraud?" and roles.get(R.AMOUNT) == "Amount"


def _family(domain: str, rows: int = 20_000) -> tuple[pd.DataFrame, dict[str, str]]:
    spec = next((s for s in CATALOG if s.domain == domain), None) or DatasetSpec(
        name=domain,
        domain=domain,
        seed=5,
        rows=rows,
        fraud_rate=0.02,
        roles=DOMAIN_ROLES[domain],
        scenarios=DOMAIN_SCENARIOS[domain],
    )
    spec = with_rows(spec, rows)
    return simulate(spec), spec.column_names()


def test_the_first_positions_of_the_catalog_keep_the_base_domains() -> None:
    assert [s.domain for s in CATALOG[:8]] == [*BASE_DOMAINS, *BASE_DOMAINS]
    assert [s.domain for s in CATALOG[-3:]] == list(TYPOLOGY_DOMAINS)


def test_card_history_fraud_is_above_the_bar_or_looks_like_usual_spending() -> None:
    frame, names = _family("card_history")
    amount, fraud = frame[names[R.AMOUNT]], frame[names[R.LABEL]] == 1
    assert (amount[amount > AMOUNT_BAR].index.isin(frame.index[fraud])).all()
    assert amount[~fraud].max() <= AMOUNT_BAR
    # a compromised terminal's fraud is at usual amounts: many fraud rows lie below the bar
    assert (amount[fraud] < AMOUNT_BAR).mean() > 0.2


def test_cardholder_fraud_comes_at_night_in_few_categories_with_attributes_beside() -> None:
    frame, names = _family("cardholder")
    assert {"gender", "birth_year", "home_city_population"} <= set(frame.columns)
    fraud = frame[names[R.LABEL]] == 1
    hour = parse_timestamps(frame[names[R.TIMESTAMP]]) % 86400 // 3600
    night = (hour >= 22) | (hour < 4)
    assert night[fraud].mean() > 0.6 and night[~fraud].mean() < 0.15
    if R.CATEGORY in names and names[R.CATEGORY] in frame.columns:
        assert frame.loc[fraud, names[R.CATEGORY]].isin(list(EPISODE_AMOUNTS)).mean() > 0.8
    older = frame["birth_year"] < 1966  # thieves favour older cardholders
    assert older[fraud].mean() > older[~fraud].mean()


def test_a_mule_chain_transfers_a_balance_and_cashes_the_same_amount_out() -> None:
    frame, names = _family("mule_chain")
    fraud = frame[frame[names[R.LABEL]] == 1]
    kinds = fraud[names[R.TX_TYPE]]
    assert set(kinds) == {"TRANSFER", "CASH_OUT"}
    out = fraud[kinds == "CASH_OUT"][names[R.AMOUNT]].sort_values().to_numpy()
    sent = fraud[kinds == "TRANSFER"][names[R.AMOUNT]].sort_values().to_numpy()
    assert len(out) == len(sent) and (out == sent).all()
    assert fraud[names[R.CUSTOMER]].value_counts().max() >= 3  # a mule cashes out many thefts


def test_signup_fraud_buys_right_after_sign_up_or_shares_a_device() -> None:
    frame, names = _family("signup")
    fraud = frame[names[R.LABEL]] == 1
    when = parse_timestamps(frame[names[R.TIMESTAMP]])
    hours = (when - parse_timestamps(frame["registered"])) / 3600
    assert (hours > 0).all()
    assert (hours[fraud] < 1 / 30).mean() > 0.1 and (hours[~fraud] < 1 / 30).mean() == 0
    accounts = frame.groupby(names[R.TERMINAL])[names[R.CUSTOMER]].transform("nunique")
    assert (accounts[fraud] >= 4).mean() > 0.1 and (accounts[~fraud] >= 4).mean() < 0.01


def test_model_folders_outside_the_catalog_are_named(tmp_path) -> None:
    for name in (CATALOG[0].name, "atm_french_27", "my_own_model", "no_manifest"):
        (tmp_path / name).mkdir()
        if name != "no_manifest":
            (tmp_path / name / "manifest.json").write_text("{}")
    assert outside_catalog(tmp_path, 40) == ["atm_french_27", "my_own_model"]
