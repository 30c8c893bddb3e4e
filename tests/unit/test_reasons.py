"""Reasons per row: phrases from contributions, and a planted pattern named for its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.engine.reasons import NOTHING_STANDS_OUT, Explainer, join
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.training.simulator import example_spec, simulate, with_rows


def _say(e: Explainer, i: int, value: float) -> tuple[str, str] | None:
    """Input i's value in words, its rarity looked up as the scoring does."""
    share, high = e.rarities(np.array([i]), np.array([value], np.float64))
    return e.say(i, value, float(share[0]), bool(high[0]))


def _explainer(names: list[str], sample: np.ndarray, usual: np.ndarray | None = None) -> Explainer:
    risky = None if usual is None else np.tile(usual, (4, 1))
    return Explainer.fit(names, sample, risky)


def test_phrases_read_as_words_with_numbers_as_people_write_them() -> None:
    rng = np.random.default_rng(0)
    names = ["cust_amount_ratio_prior", "cust_new_terminal", "cust_count_1h", "balance_error"]
    names += ["cust_log_secs_since_prev", "share:browser", "amount", "city_pop", "zip", "V14"]
    sample = np.column_stack(
        [
            rng.lognormal(0, 0.3, 2000),
            rng.random(2000) < 0.1,
            rng.poisson(1, 2000),
            np.zeros(2000),
            rng.uniform(8, 12, 2000),
            rng.uniform(0.1, 0.5, 2000),
            rng.lognormal(4, 1, 2000),
            rng.lognormal(11, 1, 2000),
            rng.integers(10_000, 99_999, 2000),
            rng.normal(0, 1, 2000),
        ]
    )
    e = _explainer(names, sample)

    def say(name: str, value: float) -> str | None:
        phrase = _say(e, names.index(name), value)
        return phrase[1] if phrase else None

    assert say("cust_amount_ratio_prior", 75.0) == "amount 75x this card's earlier average"
    assert say("cust_new_terminal", 1.0) == "first use of this terminal by this card"
    assert say("cust_count_1h", 5.0) == "5 earlier transactions on this card in the last hour"
    assert say("balance_error", -120.5) == "balance does not add up (off by 120.50)"
    assert say("cust_log_secs_since_prev", np.log1p(7200)) == (
        "2 hours after this card's previous transaction"
    )
    assert say("share:browser", 0.25) == "a browser value shared by 25% of the rows"
    assert say("amount", 25_000.0) == ("amount 25,000.00 (fewer than 1 row in 1,000 is this high)")
    assert say("city_pop", 2_500_000.0) == (
        "city_pop far above this file's usual range at 2,500,000 "
        "(fewer than 1 row in 1,000 is this high)"
    )
    assert say("zip", 1001.0) == (
        "zip far below this file's usual range at 1001 (fewer than 1 row in 1,000 is this low)"
    )
    assert say("V14", -1.5) is not None and "e-" not in str(say("V14", -2.9))
    assert say("amount", float("nan")) is None


def test_values_that_argue_for_safety_or_say_nothing_are_not_said() -> None:
    names = ["cust_new_terminal", "is_night", "balance_error", "amount", "V1"]
    sample = np.random.default_rng(1).normal(size=(1000, 5))
    e = _explainer(names, sample)
    for name in ("cust_new_terminal", "is_night", "balance_error"):
        assert _say(e, names.index(name), 0.0) is None  # a terminal used before, daytime, ...
    assert _say(e, names.index("amount"), 0.0) is None  # an ordinary amount is no reason
    assert _say(e, names.index("V1"), 0.1) is None  # inside the column's usual range


def test_a_fact_is_said_once_and_one_that_leads_every_risky_row_only_where_it_stands_out() -> None:
    names = ["cust_amount_ratio_7d", "cust_amount_ratio_prior", "cust_new_terminal", "hour"]
    sample = np.random.default_rng(2).uniform(0, 5, (1000, 4))
    # Among the risky rows, `hour` contributes 1.0 as a rule; the others nothing.
    e = _explainer(names, sample, usual=np.array([0.0, 0.0, 0.0, 1.0, 0.0]))
    contribs = np.array([[2.0, 1.9, 0.5, 0.9, 0.0], [0.0, 0.0, 0.0, 1.6, 0.0]])
    values = np.array([[6.9, 6.7, 1.0, 23.0], [1.0, 1.0, 0.0, 3.0]])
    phrases = [[text for _, text in row] for row in e.phrases(contribs, values)]
    # The two ratios say the same thing; the usual hour is not given for the first row.
    assert phrases[0] == [
        "amount 6.9x this card's 7-day average",
        "first use of this terminal by this card",
    ]
    assert phrases[1] == ["at 03:00-03:59"]  # its hour passes the usual contribution
    strange = e.unusual(np.array([[0.1, 4.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), values)
    assert strange == [
        ("card ratio", "unusual for this file: amount 6.7x this card's earlier average"),
        None,
    ]
    assert join(e.phrases(contribs, values), strange) == [
        "unusual for this file: amount 6.7x this card's earlier average; "
        "first use of this terminal by this card",
        "at 03:00-03:59",
    ]
    assert join([[]], [None]) == [NOTHING_STANDS_OUT]


def _planted(path: Path) -> tuple[int, str]:
    """A simulated file plus one card that spends 40 five times, then 3,000 (its row number)."""
    spec = with_rows(example_spec(), 3000)
    frame = simulate(spec, labeled=False)
    names = spec.column_names()
    start = pd.Timestamp("2026-01-03 10:00:00")
    plant = pd.DataFrame(
        {
            names["tx_id"]: [f"PLANT{i}" for i in range(6)],
            names["timestamp"]: [str(start + pd.Timedelta(hours=5 * i)) for i in range(6)],
            names["customer"]: "C_PLANTED",
            names["terminal"]: frame[names["terminal"]].iloc[:6].tolist(),
            names["amount"]: [40.0] * 5 + [3000.0],
            names["category"]: frame[names["category"]].iloc[0],
            names["channel"]: frame[names["channel"]].iloc[0],
        }
    )
    frame = pd.concat([frame.iloc[:1500], plant, frame.iloc[1500:]], ignore_index=True)
    write_csv(frame, path)
    return 1500 + 6, names["tx_id"]  # the 3,000 row's number (1-based)


def test_a_planted_spike_is_explained_by_its_amount_ratio(
    small_library: Path, tmp_path: Path
) -> None:
    src = tmp_path / "planted.csv"
    row, _ = _planted(src)
    out_path = tmp_path / "out.csv"
    result = Pipeline(FolderSource(small_library), ScoreOptions()).run(src, out_path, None)
    out = pd.read_csv(out_path, keep_default_na=False)
    spike = out.loc[out["row_number"] == row].iloc[0]
    assert spike["risk_level"] != "low"
    assert "x this card's" in spike["reasons"], spike["reasons"]
    phrases = [p.removeprefix("unusual for this file: ") for p in spike["reasons"].split("; ")]
    assert len(phrases) == len(set(phrases))  # no fact said twice
    assert sum("x this card's" in p for p in phrases) == 1  # nor two ratios of one fact
    low = out[(out["risk_level"] == "low") & (out["is_anomaly"] == 0)]
    assert (low["reasons"] == "").all()  # only rows worth a look are explained
    riskiest = result.stats["riskiest_rows"]
    assert len(riskiest) == 50
    probabilities = [r["fraud_probability"] for r in riskiest]
    assert probabilities == sorted(probabilities, reverse=True)
    assert probabilities[0] == out["fraud_probability"].max()
    assert all(r["reasons"] for r in riskiest)


def test_reasons_can_be_turned_off(small_library: Path, tmp_path: Path) -> None:
    src = tmp_path / "planted.csv"
    _planted(src)
    out_path = tmp_path / "out.csv"
    result = Pipeline(FolderSource(small_library), ScoreOptions(reasons=False)).run(
        src, out_path, None
    )
    assert "reasons" not in pd.read_csv(out_path).columns
    assert "riskiest_rows" not in result.stats
