"""Role-based features: correct per-entity history, NaN (never zero) where a role is absent."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shared.engine import features
from shared.engine import roles as R
from shared.engine.features import FEATURES, build_features, entity_features, fillable
from shared.engine.roles import RoleMap


def roles(**columns: str) -> RoleMap:
    return RoleMap(columns=dict(columns))


@pytest.fixture
def frame() -> pd.DataFrame:
    # Card A: 10:00, 10:30, 12:00 (next day 09:00); card B: 10:10. Rows deliberately unsorted.
    return pd.DataFrame(
        {
            "ts": [
                "2026-01-05 10:30:00",
                "2026-01-05 10:00:00",
                "2026-01-05 10:10:00",
                "2026-01-05 12:00:00",
                "2026-01-06 09:00:00",
            ],
            "card": ["A", "A", "B", "A", "A"],
            "shop": ["s1", "s1", "s1", "s2", "s1"],
            "amt": [20.0, 10.0, 5.0, 90.0, 1.5],
        }
    )


def test_entity_history_counts_only_earlier_rows(frame: pd.DataFrame) -> None:
    f = build_features(frame, roles(timestamp="ts", customer="card", terminal="shop", amount="amt"))
    assert f["cust_n_prior"].tolist() == [1, 0, 0, 2, 3]
    assert f["cust_count_1h"].tolist() == [1, 0, 0, 0, 0]
    assert f["cust_count_24h"].tolist() == [1, 0, 0, 2, 3]  # 09:00 next day: all three within 24h
    assert f["cust_log_secs_since_prev"].iloc[0] == pytest.approx(np.log1p(1800))
    assert np.isnan(f["cust_log_secs_since_prev"].iloc[1])
    assert f["cust_amount_ratio_prior"].iloc[3] == pytest.approx(90 / 15)
    assert f["cust_new_terminal"].tolist() == [0, 1, 1, 1, 0]
    assert f["term_n_prior"].tolist() == [2, 0, 1, 0, 3]


def test_calendar_features(frame: pd.DataFrame) -> None:
    f = build_features(frame, roles(timestamp="ts", amount="amt"))
    assert f["hour"].tolist() == pytest.approx([10.5, 10.0, 10 + 1 / 6, 12.0, 9.0], rel=1e-5)
    assert f["weekday"].iloc[0] == 0  # 2026-01-05 is a Monday
    assert f["is_night"].sum() == 0


def test_features_a_file_cannot_provide_are_nan_not_zero(frame: pd.DataFrame) -> None:
    f = build_features(frame[["amt"]], roles(amount="amt"))
    assert list(f.columns) == list(FEATURES)
    assert f["amount"].tolist() == [20.0, 10.0, 5.0, 90.0, 1.5]
    provided = set(fillable({R.AMOUNT}))
    for name in FEATURES:
        if name not in provided:
            assert f[name].isna().all(), name


def test_without_a_clock_row_order_stands_in_for_entity_history(frame: pd.DataFrame) -> None:
    f = build_features(frame, roles(customer="card", amount="amt"))
    assert f["cust_n_prior"].tolist() == [0, 1, 0, 2, 3]
    assert f["cust_count_24h"].isna().all()


def test_balance_features_spot_an_emptied_account() -> None:
    frame = pd.DataFrame({"amt": [100.0, 30.0], "old": [100.0, 200.0], "new": [0.0, 170.0]})
    f = build_features(frame, roles(amount="amt", balance_before="old", balance_after="new"))
    assert f["empties_account"].tolist() == [1.0, 0.0]
    assert f["balance_error"].tolist() == [0.0, 0.0]
    assert f["amount_over_balance"].tolist() == pytest.approx([1.0, 0.15])


def test_the_output_is_float32_in_input_order(frame: pd.DataFrame) -> None:
    f = build_features(frame, roles(timestamp="ts", customer="card", amount="amt"))
    assert (f.dtypes == np.float32).all()
    assert f.index.tolist() == frame.index.tolist()


def test_entity_history_is_the_same_in_any_number_of_entity_partitions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(3)
    n = 5000
    cust, term = rng.integers(0, 300, n).astype(np.int32), rng.integers(0, 40, n).astype(np.int32)
    t = np.sort(rng.uniform(0, 30 * 86400, n))[rng.permutation(n)]  # rows out of time order
    t[::97] = np.nan
    amount = np.round(rng.lognormal(3, 1, n), 2)
    whole = entity_features(cust, term, t, amount)
    monkeypatch.setattr(features, "PARTITION_ROWS", 600)  # 9 partitions per entity kind
    parts = list(features.entity_parts(cust, term, t, amount))
    assert len(parts) == 18 and all(len(idx) < n for _, idx, _ in parts)
    split = entity_features(cust, term, t, amount)
    assert list(split) == list(whole) and len(whole) == 13
    for name, values in whole.items():
        assert values.dtype == np.float32
        np.testing.assert_array_equal(split[name], values, err_msg=name)
