"""Reasons per row: phrases from contributions, and a planted pattern named for its row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.engine.reasons import describe, from_contributions, join, unusual
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.training.simulator import example_spec, simulate, with_rows


def test_phrases_read_as_words() -> None:
    assert describe("cust_amount_ratio_prior", 75.0) == "amount 75x this card's earlier average"
    assert describe("cust_new_terminal", 1.0) == "first use of this terminal by this card"
    assert describe("cust_count_1h", 5.0) == "5 earlier transactions on this card in the last hour"
    assert describe("balance_error", -120.5) == "balance does not add up (off by 120.50)"
    assert describe("cust_log_secs_since_prev", np.log1p(7200)) == (
        "2 hours after this card's previous transaction"
    )
    assert describe("share:browser", 0.25) == "browser value shared by 25.00% of rows"
    assert describe("V14", -3.25) == "V14 = -3.25"
    assert describe("amount", float("nan")) is None


def test_the_largest_positive_contributions_come_first() -> None:
    names = ["amount", "cust_new_terminal", "cust_count_1h"]
    contribs = np.array([[0.5, 2.0, -1.0, 0.1], [-0.2, -0.1, -0.3, 0.0]])
    values = np.array([[3000.0, 1.0, 9.0], [20.0, 0.0, 0.0]])
    phrases = from_contributions(contribs, values, names)
    assert phrases == [["first use of this terminal by this card", "amount 3,000.00"], []]
    strange = unusual(np.array([[0.1, 0.0, 4.0], [0.0, 0.0, 0.0]]), values, names)
    assert strange == [
        "unusual for this file: 9 earlier transactions on this card in the last hour",
        None,
    ]
    assert join(phrases, strange) == [
        "unusual for this file: 9 earlier transactions on this card in the last hour; "
        "first use of this terminal by this card; amount 3,000.00",
        "",
    ]


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
