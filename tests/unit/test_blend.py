"""The file's own evidence: whole-file anomaly flags, confidence-weighted blending, warnings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest

from shared.engine import roles as R
from shared.engine.anomaly import SCREEN_TAIL, AnomalyDetector, tail
from shared.engine.blend import BAND_FACTOR, TIE_SPREAD, Blend, rate_band
from shared.engine.columns import MAX_EXTRA_COLUMNS, ExtraColumns, extra_columns
from shared.engine.matching import Match
from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.engine.roles import RoleMap
from shared.engine.weighting import ANOMALY_HEDGE, weigh
from shared.library.folder import FolderSource


def test_flags_fitted_on_a_uniform_sample_mark_about_one_percent_of_a_time_ordered_file() -> None:
    rng = np.random.default_rng(1)
    # A time-ordered file whose history features grow with time: the first rows see no history.
    history = np.linspace(0, 500, 200_000)[:, None] + rng.normal(0, 5, (200_000, 1))
    x = np.hstack([history, rng.normal(0, 1, (200_000, 2))])
    uniform = x[np.sort(rng.choice(len(x), 20_000, replace=False))]
    detector = AnomalyDetector().fit(uniform)
    assert 0.005 <= detector.flags(detector.score(x)).mean() <= 0.02
    first_rows = AnomalyDetector().fit(x[:20_000])  # the failure the uniform sample avoids
    assert first_rows.flags(first_rows.score(x)).mean() > 0.05


@pytest.mark.parametrize(
    "kind",
    [
        "normal",
        "lognormal",
        "uniform",
        "flag_35",
        "flag_10",
        "flag_2",
        "flag_half_percent",
        "weekday",
    ],
)
def test_one_input_tail_matches_sklearns_isolation_forest(kind: str) -> None:
    rng = np.random.default_rng(3)
    values = {
        "normal": rng.normal(0, 1, 2_000),
        "lognormal": rng.lognormal(0, 1.5, 2_000) * 1e6,  # scale-free
        "uniform": rng.uniform(0, 1, 2_000),
        "flag_35": (rng.random(2_000) < 0.35) * 1.0,
        "flag_10": (rng.random(2_000) < 0.10) * 1.0,
        "flag_2": (rng.random(2_000) < 0.02) * 1.0,
        "flag_half_percent": (rng.random(2_000) < 0.005) * 1.0,
        "weekday": rng.integers(0, 7, 2_000) * 1.0,
    }[kind]
    forest = IsolationForest(n_estimators=300, max_samples=256, random_state=0)
    scores = -forest.fit(values[:, None]).score_samples(values[:, None])
    expected = scores.max() - np.median(scores)
    ours = np.mean([tail(values, seed) for seed in range(5)])
    assert ours == pytest.approx(expected, abs=0.03)


def test_the_forest_scores_as_sklearns_score_samples() -> None:
    """Scoring runs the forest's XGBoost copy: same scores, to float32 rounding."""
    rng = np.random.default_rng(8)
    x = np.column_stack([rng.lognormal(size=4_000), rng.normal(size=4_000), rng.random(4_000)])
    detector = AnomalyDetector().fit(x)
    prepared = detector.prepare(x)
    expected = -detector.forest.score_samples(prepared)
    assert np.allclose(detector.score(x), expected, rtol=0, atol=1e-6)
    assert np.array_equal(np.argsort(detector.score(x)[:50]), np.argsort(expected[:50]))


def test_a_value_on_a_split_goes_the_way_sklearn_sends_it() -> None:
    """sklearn sends `x <= threshold` left, XGBoost `x < split`: rows exactly on each tree's
    root threshold (as float32) and one float32 step either side score as sklearn scores them."""
    rng = np.random.default_rng(9)
    x = np.column_stack([rng.normal(size=2_000), rng.normal(size=2_000)])
    detector = AnomalyDetector(trees=20).fit(x)
    rows = []
    for estimator in detector.forest.estimators_:
        tree = estimator.tree_
        on = np.float32(tree.threshold[0])
        if on > tree.threshold[0]:
            on = np.nextafter(on, np.float32(-np.inf))
        down, up = np.float32(-np.inf), np.float32(np.inf)
        for value in (np.nextafter(on, down), on, np.nextafter(on, up)):
            row = np.zeros(2, np.float32)
            row[tree.feature[0]] = value
            rows.append(row)
    prepared = np.array(rows, np.float32)
    expected = -detector.forest.score_samples(prepared)
    assert np.allclose(detector.forest_score(prepared), expected, rtol=0, atol=1e-6)


def test_inputs_without_rare_values_are_left_out_of_the_forest() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    x = np.column_stack(
        [
            rng.lognormal(3, 1, n),  # an amount: a long tail
            rng.integers(0, 7, n),  # a weekday: nothing rare
            rng.random(n) < 0.4,  # a flag on 40% of rows
            rng.random(n) < 0.01,  # a flag on 1% of rows: rare
            np.full(n, 5.0),  # one value
        ]
    ).astype(np.float64)
    assert tail(x[:2_000, 1]) < SCREEN_TAIL < tail(x[:2_000, 0])
    assert AnomalyDetector().fit(x).columns.tolist() == [0, 3]
    # When nothing is rare the forest still gets every input, so that rows can be flagged.
    calm = AnomalyDetector().fit(x[:, [1, 2]])
    assert calm.columns.tolist() == [0, 1]
    assert 0.005 <= calm.flags(calm.score(x[:, [1, 2]])).mean() <= 0.1


def test_reference_weight_falls_with_the_share_of_columns_the_models_cannot_see() -> None:
    roles = RoleMap({R.AMOUNT: "amount", R.TIMESTAMP: "time", R.CUSTOMER: "card"})
    none = ExtraColumns([], [], [])
    wide = ExtraColumns([f"V{i}" for i in range(28)], [], [])

    def reference(similarity: float, extra: ExtraColumns) -> float:
        best = Match("m", similarity, 1.0, 1.0, 1.0, 0.9)
        return weigh([best], roles, extra, trust=1.0).reference

    assert reference(0.8, none) == pytest.approx(0.8)
    assert reference(0.8, wide) == pytest.approx(0.8 * 3 / 31)
    assert reference(0.2, none) < reference(0.8, none)
    assert weigh([], roles, none).reference == 0.0


def test_the_blend_explanation_states_the_numbers_it_uses() -> None:
    roles = RoleMap({R.AMOUNT: "amount", R.TIMESTAMP: "time", R.CUSTOMER: "card"})
    wide = ExtraColumns(["V1", "V2", "V3"], [], [])
    weights = weigh([Match("m", 0.8, 1.0, 1.0, 1.0, 0.9)], roles, wide, trust=0.25)
    text = weights.explain(True, 0.03, 0.5)
    assert weights.reference == pytest.approx(0.25 * 0.8 * 0.5)
    assert text["reference_weight"] == round(weights.reference, 4)
    assert "0.100 = trust 0.25 x best similarity 0.800" in text["reason"]
    assert "reference models read 0.500" in text["reason"]
    assert f"({1 - ANOMALY_HEDGE:.0%} of the rank" in text["file_model_reason"]


def test_a_file_models_rank_is_hedged_with_the_anomaly_rank() -> None:
    rng = np.random.default_rng(5)
    ensemble, anomaly = rng.beta(1, 60, 20_000), rng.uniform(0, 1, 20_000)
    model = rng.uniform(0, 1, 20_000)  # the file model's out-of-fold scores
    blender = Blend.fit(0.1, float(ensemble.mean()), ensemble, anomaly)
    blender = blender.with_file_model(model, anomaly)
    p = blender.adapted(model, anomaly)

    def rank(v: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(v))

    # The file model leads (1 - ANOMALY_HEDGE of the rank), the anomaly rank still counts: for
    # two independent uniform ranks, a weighted sum correlates with each as its weight / norm.
    norm = np.hypot(1 - ANOMALY_HEDGE, ANOMALY_HEDGE)
    assert ANOMALY_HEDGE < 0.5
    assert np.corrcoef(rank(p), rank(model))[0, 1] == pytest.approx(
        (1 - ANOMALY_HEDGE) / norm, abs=0.03
    )
    assert np.corrcoef(rank(p), rank(anomaly))[0, 1] == pytest.approx(
        ANOMALY_HEDGE / norm, abs=0.03
    )
    tied = blender.adapted(np.full(2, 0.5), np.array([0.1, 0.9]))
    assert tied[1] > tied[0]
    assert p.mean() == pytest.approx(blender.prior, rel=0.05)


def test_blend_follows_its_weight_and_keeps_the_mean_at_the_estimated_rate() -> None:
    rng = np.random.default_rng(2)
    ensemble = rng.beta(1, 60, 20_000)
    anomaly = rng.uniform(0, 1, 20_000)
    trusted = Blend.fit(1.0, float(ensemble.mean()), ensemble, anomaly)
    assert np.corrcoef(trusted(ensemble, anomaly), ensemble)[0, 1] > 0.95
    untrusted = Blend.fit(0.0, float(ensemble.mean()), ensemble, anomaly)
    p = untrusted(ensemble, anomaly)
    assert np.corrcoef(np.argsort(np.argsort(p)), np.argsort(np.argsort(anomaly)))[0, 1] > 0.99
    # With no trust the base rate falls back to the conservative prior.
    assert untrusted.prior == pytest.approx(0.01)
    assert p.mean() == pytest.approx(untrusted.prior, rel=0.05)


def test_other_columns_are_numbers_or_shares_and_ids_are_left_out() -> None:
    n = 400
    frame = pd.DataFrame(
        {
            "amount": [f"{v:.2f}" for v in np.linspace(1, 100, n)],
            "user_id": [str(100_000 + i) for i in range(n)],
            "V1": [f"{v:.3f}" for v in np.sin(np.arange(n))],
            "device": [f"d{i % 150}" for i in range(n)],
            "note": [f"free text {i}" for i in range(n)],
            "browser": ["Chrome", "Safari"] * (n // 2),
        },
        dtype="string",
    )
    extra = extra_columns(frame, RoleMap({R.AMOUNT: "amount"}))
    assert extra.numeric == ["V1"]
    assert extra.text == ["device", "browser"]
    assert extra.ignored == ["user_id", "note"]


def test_a_wide_file_keeps_its_first_columns_in_file_order() -> None:
    """Past MAX_EXTRA_COLUMNS, the text columns early in the file (an e-mail domain, flags)
    are kept and the last numeric ones left out, not every text column."""
    n = 300
    rng = np.random.default_rng(5)
    columns = {"amount": rng.lognormal(3, 1, n).round(2).astype(str)}
    columns["email_domain"] = rng.choice(["gmail.com", "yahoo.com", "mail.ru"], n)
    columns |= {f"C{j}": rng.integers(0, 9, n).astype(str) for j in range(MAX_EXTRA_COLUMNS)}
    columns["M1"] = rng.choice(["T", "F"], n)
    extra = extra_columns(pd.DataFrame(columns, dtype="string"), RoleMap({R.AMOUNT: "amount"}))
    assert extra.text == ["email_domain"]
    assert len(extra.used) == MAX_EXTRA_COLUMNS
    assert extra.ignored == [f"C{MAX_EXTRA_COLUMNS - 1}", "M1"]


@pytest.mark.parametrize("levels", [(0.01, 0.02, 0.3), (0.05,)])
def test_a_coarse_ensemble_does_not_tie_the_rows_the_ranking_tells_apart(levels) -> None:
    """An ensemble with a few distinct values (isotonic steps, one coarse column) gives the
    scale, not the order: every row the anomaly rank tells apart keeps its own probability."""
    rng = np.random.default_rng(6)
    n = 4_000
    ensemble = rng.choice(levels, n)
    anomaly = rng.normal(size=n)
    blender = Blend.fit(0.0, float(ensemble.mean()), ensemble, anomaly)
    p = blender(ensemble, anomaly)
    assert len(np.unique(p)) == n
    assert np.array_equal(np.argsort(p), np.argsort(anomaly))
    assert p.mean() == pytest.approx(blender.prior, rel=0.05)
    odds = p / (1 - p)
    spread = odds.max() / odds.min()  # the ensemble's own scale; a narrow one where it has none
    assert spread <= np.exp(TIE_SPREAD) * 1.01 if len(levels) == 1 else spread > 20


def test_a_rare_category_stands_out_once_its_share_is_read_as_surprisal() -> None:
    """Shares of 0.2% lie packed beside 1-5% and far from the common 85%: as -log(share) most
    of the rare category's rows are isolated and flagged (0.56-0.73 over seeds 0-2 with
    512-row sub-samples, above 0.8 with 256), as a plain share few are (0.12-0.20)."""
    rng = np.random.default_rng(7)
    n = 20_000
    categories = rng.choice(6, n, p=[0.85, 0.05, 0.05, 0.035, 0.013, 0.002])
    share = np.bincount(categories, minlength=6)[categories] / n
    x = np.column_stack([share, rng.normal(size=(n, 5))])
    rare = categories == 5
    plain = AnomalyDetector().fit(x)
    surprisal = AnomalyDetector().fit(x, np.array([True] + [False] * 5))
    flagged = surprisal.flags(surprisal.score(x))[rare].mean()
    assert flagged > 0.5
    assert flagged > 3 * plain.flags(plain.score(x))[rare].mean()


def test_rows_between_and_beyond_the_sample_keep_their_order() -> None:
    """Fitted on a sample of 1,000, a file 50 times larger keeps every row apart, the rows
    past the sample's riskiest too (they head the riskiest-rows table)."""
    rng = np.random.default_rng(9)
    ensemble, anomaly = rng.beta(0.5, 30, 1_000), rng.normal(size=1_000)
    blender = Blend.fit(0.0, float(ensemble.mean()), ensemble, anomaly)
    rows = np.sort(rng.normal(size=50_000) * 1.5)  # wider than the sample at both ends
    p = blender(np.full(len(rows), float(np.median(ensemble))), rows)
    assert np.all(np.diff(p[len(p) // 2 :]) > 0)  # the riskier half (the bottom meets EPS)
    assert (rows > anomaly.max()).sum() > 10 and p[-1] < 1


def test_rows_keep_their_pairs_of_scores_in_rank_and_in_the_mean() -> None:
    rng = np.random.default_rng(3)
    signal = rng.uniform(0, 1, 5_000)
    ensemble, anomaly = 0.001 + signal**6 / 2, signal + 0.3  # both rank the rows alike
    for weight in (0.0, 0.3, 1.0):
        blender = Blend.fit(weight, float(ensemble.mean()), ensemble, anomaly)
        p = blender(ensemble, anomaly)
        assert np.corrcoef(np.argsort(np.argsort(p)), np.argsort(np.argsort(signal)))[0, 1] > 0.999
        assert p.mean() == pytest.approx(blender.prior, rel=0.05)  # fitted on the same pairs


def test_another_date_becomes_the_time_from_it_to_the_row(
    small_library: Path, tmp_path: Path
) -> None:
    """A sign-up time is read as how long before the purchase it came (account age): the
    purchases a second after sign-up are flagged, and the reason says so."""
    n = 1500
    rng = np.random.default_rng(1)
    purchase = pd.Timestamp("2015-06-01") + pd.to_timedelta(rng.integers(0, 10**7, n), "s")
    age = np.where(np.arange(n) < 8, 1, rng.integers(86400, 90 * 86400, n))  # 8 at once
    signup = purchase - pd.to_timedelta(age, "s")
    frame = pd.DataFrame(
        {
            "user_id": np.arange(n) + 1000,
            "signup_time": signup.strftime("%m/%d/%y %H:%M:%S"),
            "purchase_time": purchase.strftime("%m/%d/%y %H:%M:%S"),
            "purchase_value": rng.integers(10, 100, n),
        }
    )
    roles = RoleMap({R.AMOUNT: "purchase_value", R.TIMESTAMP: "purchase_time"})
    extra = extra_columns(frame.astype("string"), roles)
    assert list(extra.dates) == ["signup_time"] and extra.used == ["signup_time"]
    path = tmp_path / "shop.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out.csv"
    result = Pipeline(FolderSource(small_library), ScoreOptions()).run(path, out)
    assert result.methods_used["columns"]["anomaly_only"] == ["signup_time"]
    scored = pd.read_csv(out, keep_default_na=False)
    assert scored["is_anomaly"][:8].all()
    assert scored["reasons"][:8].str.contains("unusual for this file: 1 s after signup_time").all()


def test_a_sign_up_time_in_epoch_seconds_is_a_date_and_an_ip_number_is_not() -> None:
    n = 800
    rng = np.random.default_rng(2)
    purchase = 1_700_000_000 + rng.integers(0, 30 * 86400, n)
    frame = pd.DataFrame(
        {
            "when": purchase,
            "joined": purchase - rng.integers(1, 90 * 86400, n),
            "ip_number": rng.integers(16_777_216, 4_294_967_295, n),
            "paid": np.round(rng.lognormal(3, 1, n), 2),
        }
    ).astype("string")
    extra = extra_columns(frame, RoleMap({R.AMOUNT: "paid", R.TIMESTAMP: "when"}))
    assert list(extra.dates) == ["joined"] and "ip_number" in extra.ignored
    offsets = frame.assign(when=(purchase - purchase.min()).astype(str))  # no real dates
    extra = extra_columns(offsets, RoleMap({R.AMOUNT: "paid", R.TIMESTAMP: "when"}))
    assert not extra.dates


def test_the_rate_band_spans_the_sources_and_a_factor_beyond() -> None:
    low, high = rate_band(0.02, 0.05, 0.3)
    assert low == pytest.approx(0.01 / BAND_FACTOR) and high == pytest.approx(0.05 * BAND_FACTOR)
    assert rate_band(0.02, 0.05, 1.0) == pytest.approx((0.02 / 3, 0.15))  # fully trusted
    assert rate_band(0.6, 0.6, 1.0)[1] == 1.0
