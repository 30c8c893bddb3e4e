"""The scoring pipeline end to end on a small library (models from a folder, no services)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shared.engine import features
from shared.engine import roles as R
from shared.engine.anomaly import AnomalyDetector
from shared.engine.csvio import sniff
from shared.engine.features import FEATURES, build_features
from shared.engine.fileindex import spooled
from shared.engine.options import JobOptions
from shared.engine.pipeline import OUTPUT_COLUMNS, Cancelled, Pipeline, ScoreOptions
from shared.engine.roles import infer_roles
from shared.engine.scoring import inputs
from shared.errors import InputError
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.service.runner import score_options
from shared.settings import Settings
from shared.training.simulator import example_spec, reference_catalog, simulate, with_rows

SPEC = with_rows(example_spec(), 3000)


@pytest.fixture(scope="module")
def upload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "upload.csv"
    write_csv(simulate(SPEC, labeled=False), path)
    return path


def run(source: FolderSource, src: Path, tmp: Path, **options) -> tuple[pd.DataFrame, dict, Path]:
    out, errors = tmp / "out.csv", tmp / "errors.csv"
    result = Pipeline(source, ScoreOptions(**options)).run(src, out, errors)
    return pd.read_csv(out), result.summary(), out


def test_the_output_has_one_row_per_input_row_with_scores(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    out, summary, _ = run(FolderSource(small_library), upload, tmp_path)
    names = SPEC.column_names()
    id_columns = [names[R.TX_ID], names[R.CUSTOMER], names[R.TERMINAL]]
    assert list(out.columns) == ["row_number", *id_columns, *OUTPUT_COLUMNS]
    assert out["row_number"].tolist() == list(range(1, SPEC.rows + 1))
    assert out["fraud_probability"].between(0, 1).all()
    assert set(out["risk_level"]) <= {"high", "medium", "low"}
    assert (out.loc[out["fraud_probability"] >= 0.5, "risk_level"] == "high").all()
    assert out["anomaly_score"].between(0, 1).all() and set(out["is_anomaly"]) <= {0, 1}
    stats = summary["stats"]
    assert stats["total_transactions"] == SPEC.rows and stats["rows_failed"] == 0
    assert stats["high_risk"] + stats["medium_risk"] + stats["low_risk"] == SPEC.rows
    assert stats["anomalies_detected"] == int(out["is_anomaly"].sum()) > 0


def test_the_summary_names_models_weights_and_methods(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    _, summary, _ = run(FolderSource(small_library), upload, tmp_path, top_k=2)
    methods = summary["methods_used"]
    assert methods["top_k_models"] == 2 and len(methods["models"]) == 2
    assert sum(m["weight"] for m in methods["models"]) == pytest.approx(1.0, abs=1e-3)
    assert methods["best_model"] == methods["models"][0]["name"]
    assert 0 < methods["similarity_score"] <= 1
    assert methods["ensemble"] == "weighted_average (logit pooling)"
    assert methods["anomaly_detection"] == "isolation_forest"
    # A weekday holds nothing rare: the forest leaves it out, and the summary says so.
    assert "weekday" in methods["anomaly_inputs_without_rare_values"]
    assert "amount" not in methods["anomaly_inputs_without_rare_values"]
    assert methods["calibration"].startswith("per-model")
    explained = methods["matching"][0]
    best = next(m for m in FolderSource(small_library).models() if m.name == explained["name"])
    amount = SPEC.column_names()[R.AMOUNT]
    assert explained["column_mapping"][amount] == best.column_roles[R.AMOUNT]
    # The upload has a transaction id; it is never reported as a missing model input.
    assert methods["roles"][R.TX_ID] == SPEC.column_names()[R.TX_ID]
    for match in methods["matching"]:
        assert R.TX_ID not in match["model_inputs_missing"]
        assert set(match["model_inputs_missing"]).isdisjoint(methods["roles"])


def test_output_is_identical_across_runs_and_chunk_sizes(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    source = FolderSource(small_library)
    outputs = []
    for i, chunk in enumerate([100_000, 100_000, 1000, 777]):
        folder = tmp_path / str(i)
        folder.mkdir()
        outputs.append(run(source, upload, folder, chunk_rows=chunk)[2].read_bytes())
    assert all(output == outputs[0] for output in outputs[1:])


@pytest.mark.parametrize("partition_rows", [250_000, 700])
def test_history_features_are_exact_across_chunk_boundaries(
    small_library: Path,
    upload: Path,
    tmp_path: Path,
    partition_rows: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pass 1's arrays, read back from disk block by block, are the whole file's features,
    whether the entity history was computed in one partition or in several (put back in file
    order from disk)."""
    whole = pd.read_csv(upload)
    expected = build_features(whole, infer_roles(whole)).to_numpy(np.float32)
    monkeypatch.setattr(features, "PARTITION_ROWS", partition_rows)
    pipeline = Pipeline(FolderSource(small_library), ScoreOptions(chunk_rows=500))
    layout = pipeline.profile(sniff(upload))
    index = pipeline.index(layout, tmp_path / "spool.arrow")

    parts, offset = [], 0
    for table in spooled(tmp_path / "spool.arrow"):
        assert table.num_rows == min(500, SPEC.rows - offset)
        carry = index.carry(slice(offset, offset + table.num_rows))
        parts.append(inputs(layout, table, carry, anomaly=False)[0])
        offset += table.num_rows
    got = np.concatenate(parts)
    np.testing.assert_allclose(got, expected, rtol=1e-5, equal_nan=True)
    assert np.isfinite(got[:, FEATURES.index("cust_count_24h")]).all()


def test_unreadable_amounts_go_to_the_errors_file(small_library: Path, tmp_path: Path) -> None:
    frame = simulate(SPEC, labeled=False).astype({SPEC.column_names()[R.AMOUNT]: str})
    amount = SPEC.column_names()[R.AMOUNT]
    frame.loc[[4, 9], amount] = ["twelve", ""]
    src = tmp_path / "bad.csv"
    write_csv(frame, src)
    out, summary, _ = run(FolderSource(small_library), src, tmp_path)
    errors = pd.read_csv(tmp_path / "errors.csv")
    assert errors["row_number"].tolist() == [5, 10]
    assert set(errors["column"]) == {amount}
    assert summary["stats"]["rows_failed"] == 2
    assert len(out) == SPEC.rows - 2 and not {5, 10} & set(out["row_number"])


def test_a_file_without_an_amount_is_ranked_by_its_own_evidence(
    small_library: Path, tmp_path: Path
) -> None:
    """No reference model learnt without amounts: the file's other columns (times, numbers)
    rank the rows, the summary says so, and every row is scored."""
    frame = simulate(SPEC, labeled=False).drop(columns=[SPEC.column_names()[R.AMOUNT]])
    rng = np.random.default_rng(3)
    odd = frame.index[::150]  # 20 rows far out on two numbers that only this file has
    for column in ("velocity_6h", "email_similarity"):
        frame[column] = rng.normal(0, 1, len(frame)).round(3)
        frame.loc[odd, column] = 40.0
    src = tmp_path / "no_amount.csv"
    write_csv(frame, src)
    out, summary, _ = run(FolderSource(small_library), src, tmp_path)
    methods, stats = summary["methods_used"], summary["stats"]
    assert len(out) == len(frame) and stats["rows_failed"] == 0
    assert methods["models"] == [] and methods["best_model"] is None
    assert methods["blend"]["reference_weight"] == 0.0 and methods["blend"]["file_model"]
    assert any("no amount column" in w for w in methods["warnings"])
    assert out["is_anomaly"].mean() == pytest.approx(0.01, abs=0.005)
    assert out.loc[odd, "is_anomaly"].mean() >= 0.8
    top = out["fraud_probability"].rank(ascending=False)
    assert (top[odd] <= len(frame) * 0.1).mean() >= 0.8
    assert stats["estimated_fraud_rate"] == pytest.approx(0.01, rel=0.2)
    assert stats["riskiest_rows"][0]["amount"] is None
    json.dumps(summary, allow_nan=False)  # what the API sends: valid JSON, no NaN


def test_a_file_without_an_amount_is_refused_naming_what_was_expected(
    small_library: Path, tmp_path: Path
) -> None:
    src = tmp_path / "noamount.csv"
    src.write_text("customer_id,merchant_id,comment\nC1,M1,hello\nC2,M2,bye\n")
    with pytest.raises(InputError, match=r"no amount-like column found.*found: customer_id"):
        Pipeline(FolderSource(small_library)).run(src, tmp_path / "o.csv")
    assert not (tmp_path / "o.csv").exists()


def test_regional_formats_score_like_the_plain_file(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    frame = pd.read_csv(upload, dtype=str)
    amount = SPEC.column_names()[R.AMOUNT]
    frame[amount] = frame[amount].str.replace(".", ",", regex=False)
    regional = tmp_path / "regional.csv.gz"
    text = frame.to_csv(index=False, sep=";")
    regional.write_bytes(gzip.compress(("\ufeff" + text).encode("utf-8")))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, _, _ = run(FolderSource(small_library), upload, tmp_path / "a")
    other, _, _ = run(FolderSource(small_library), regional, tmp_path / "b")
    np.testing.assert_allclose(other["fraud_probability"], plain["fraud_probability"])


def test_keep_columns_copies_every_input_column(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    out, _, _ = run(FolderSource(small_library), upload, tmp_path, keep_columns=True)
    assert list(out.columns) == [
        "row_number",
        *pd.read_csv(upload, nrows=1).columns,
        *OUTPUT_COLUMNS,
    ]


def test_cancelling_stops_at_a_chunk_boundary_and_leaves_no_output(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 2

    pipeline = Pipeline(
        FolderSource(small_library), ScoreOptions(chunk_rows=500), cancelled=cancelled
    )
    with pytest.raises(Cancelled):
        pipeline.run(upload, tmp_path / "out.csv")
    assert not list(tmp_path.iterdir())


def test_progress_reports_each_stage(small_library: Path, upload: Path, tmp_path: Path) -> None:
    seen = []
    Pipeline(
        FolderSource(small_library),
        ScoreOptions(chunk_rows=1000),
        progress=lambda stage, done, total: seen.append((stage, done, total)),
    ).run(upload, tmp_path / "o.csv")
    stages = [s for s, _, _ in seen]
    assert stages.index("matching") < stages.index("scoring") < stages.index("writing")
    assert ("writing", SPEC.rows, SPEC.rows) in seen
    # Rows read, then rows scored and written, chunk by chunk (not 0% then done).
    assert [d for s, d, _ in seen if s == "reading" and d] == [1000, 2000, 3000]
    assert [(d, t) for s, d, t in seen if s == "scoring"] == [
        (1000, 3000),
        (2000, 3000),
        (3000, 3000),
    ]


def test_usage_is_recorded_for_the_chosen_models(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    source = FolderSource(small_library)
    _, summary, _ = run(source, upload, tmp_path)
    assert source.used == [[m["name"] for m in summary["methods_used"]["models"]]]


def test_the_anomaly_detector_flags_blatant_outliers() -> None:
    rng = np.random.default_rng(0)
    sample = rng.normal(0, 1, (5000, len(FEATURES))).astype(np.float32)
    sample[:, 3] = np.nan  # a feature the file lacks
    detector = AnomalyDetector(contamination=0.01).fit(sample)
    scores = detector.score(sample)
    assert 0.005 < detector.flags(scores).mean() < 0.02
    outlier = np.full((1, len(FEATURES)), 25.0, dtype=np.float32)
    assert detector.flags(detector.score(outlier))[0]


def test_matching_prefers_models_of_the_same_shape(small_library: Path) -> None:
    from shared.engine.matching import match_models, sample_quantiles

    mobile = with_rows(reference_catalog(3)[2], 3000)
    frame = simulate(mobile, labeled=False)
    roles = infer_roles(frame)
    matrix = build_features(frame, roles).to_numpy(np.float32)
    ranked = match_models(
        FolderSource(small_library).models(), roles.to_json(), sample_quantiles(matrix)
    )
    assert ranked[0].name.startswith("mobile_money")
    assert all(0 <= m.similarity <= 1 for m in ranked)


def test_columns_no_model_knows_lower_the_reference_weight_and_raise_a_warning(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    _, plain, _ = run(FolderSource(small_library), upload, tmp_path)
    frame = simulate(SPEC, labeled=False)
    rng = np.random.default_rng(0)
    for i in range(28):
        frame[f"V{i + 1}"] = rng.normal(0, 1, len(frame)).round(4)
    wide_file = tmp_path / "wide.csv"
    write_csv(frame, wide_file)
    _, wide, _ = run(FolderSource(small_library), wide_file, tmp_path)
    plain_weight = plain["methods_used"]["blend"]["reference_weight"]
    wide_weight = wide["methods_used"]["blend"]["reference_weight"]
    assert 0 < wide_weight < plain_weight / 3
    assert plain["methods_used"]["columns"]["anomaly_only"] == []
    assert not any("of the file's" in w for w in plain["methods_used"]["warnings"])
    assert len(wide["methods_used"]["columns"]["anomaly_only"]) == 28
    assert any("28 of the file's" in w for w in wide["methods_used"]["warnings"])
    stats = wide["stats"]
    assert stats["expected_frauds"] == pytest.approx(
        stats["estimated_fraud_rate"] * stats["total_transactions"], rel=0.01
    )


def test_an_alert_budget_marks_that_share_of_rows_high(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    out, summary, _ = run(FolderSource(small_library), upload, tmp_path, alert_rate=0.02)
    high = out["risk_level"] == "high"
    assert 0.01 <= high.mean() <= 0.03
    threshold = summary["methods_used"]["risk_thresholds"]["high"]
    assert (out.loc[high, "fraud_probability"] >= threshold - 1e-6).all()
    assert (out.loc[~high, "fraud_probability"] < threshold + 1e-6).all()
    with pytest.raises(InputError, match="alert_rate"):
        ScoreOptions(alert_rate=0.7)


def test_when_no_row_reaches_high_the_riskiest_share_is_high(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    """A file whose probabilities all stay below the high threshold still gives a list."""
    out, summary, _ = run(
        FolderSource(small_library), upload, tmp_path, high_threshold=0.999, min_high_share=0.01
    )
    thresholds = summary["methods_used"]["risk_thresholds"]
    assert thresholds["high_from"] == "riskiest share" and thresholds["high"] < 0.999
    assert 0.005 <= (out["risk_level"] == "high").mean() <= 0.015
    assert thresholds["medium"] <= thresholds["high"]
    out, summary, _ = run(
        FolderSource(small_library), upload, tmp_path, high_threshold=0.999, min_high_share=0.0
    )
    assert summary["methods_used"]["risk_thresholds"]["high_from"] == "threshold"
    assert (out["risk_level"] == "high").sum() == 0


def test_when_few_rows_reach_medium_the_riskiest_share_is_medium(
    small_library: Path, upload: Path, tmp_path: Path
) -> None:
    """Probabilities that stay low (a file whose rate is above the assumed 1%) still give a
    `medium` queue as long as the anomaly flags', not only the `high` list."""
    options = {"high_threshold": 0.999, "medium_threshold": 0.99, "min_high_share": 0.0}
    out, summary, _ = run(
        FolderSource(small_library), upload, tmp_path, **options, min_medium_share=0.05
    )
    thresholds = summary["methods_used"]["risk_thresholds"]
    assert thresholds["medium_from"] == "riskiest share" and thresholds["medium"] < 0.99
    assert thresholds["high_from"] == "threshold" and (out["risk_level"] == "high").sum() == 0
    assert 0.04 <= (out["risk_level"] == "medium").mean() <= 0.06
    medium = out["risk_level"] == "medium"
    assert out.loc[medium, "fraud_probability"].min() >= out.loc[~medium, "fraud_probability"].max()
    out, summary, _ = run(
        FolderSource(small_library), upload, tmp_path, **options, min_medium_share=0.0
    )
    assert summary["methods_used"]["risk_thresholds"]["medium_from"] == "threshold"
    assert (out["risk_level"] == "medium").sum() == 0


def test_a_job_that_sets_its_thresholds_keeps_them() -> None:
    settings = Settings(risk_min_high_share=0.002, risk_min_medium_share=0.02)
    assert score_options(JobOptions(), settings).min_high_share == 0.002
    assert score_options(JobOptions(high_threshold=0.7), settings).min_high_share == 0.0
    assert score_options(JobOptions(), settings).min_medium_share == 0.02
    assert score_options(JobOptions(medium_threshold=0.2), settings).min_medium_share == 0.0


def test_a_time_ordered_file_is_flagged_evenly_from_first_rows_to_last(
    small_library: Path, tmp_path: Path
) -> None:
    frame = simulate(with_rows(example_spec(), 30_000), labeled=False)
    path = tmp_path / "ordered.csv"
    write_csv(frame, path)  # the simulator writes rows in time order
    out, _, _ = run(FolderSource(small_library), path, tmp_path, sample_rows=5_000)
    thirds = np.array_split(out["is_anomaly"].to_numpy(), 3)
    assert 0.005 <= out["is_anomaly"].mean() <= 0.02
    assert all(0.002 <= part.mean() <= 0.03 for part in thirds)
