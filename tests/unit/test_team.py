"""Team models: trained on a team's labels over every usable column, leading the files of
their schema, trusted as far as they proved themselves, at the team's own fraud level."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from shared.engine.calibration import Stack
from shared.engine.options import ScoreOptions
from shared.engine.pipeline import Pipeline, ScoreResult
from shared.engine.plan import FittedPlan
from shared.library.build import write_csv
from shared.library.folder import FolderSource
from shared.training.automl import TrainingError
from shared.training.simulator import example_spec, simulate, with_rows
from shared.training.team import train_team

OPTIONS = ScoreOptions(threads=2)


@pytest.fixture(scope="module")
def halves(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A simulated file with a column only the team's labels explain (`risk_note`: higher for
    fraud), cut in two in file order: the first half labeled, the second not."""
    folder = tmp_path_factory.mktemp("team")
    spec = example_spec()
    label = spec.column_names()["label"]
    frame = simulate(with_rows(spec, 6000))
    rng = np.random.default_rng(1)
    y = frame[label].astype(int).to_numpy()
    frame["risk_note"] = (rng.normal(size=len(frame)) + 2.5 * y).round(3)
    half = len(frame) // 2
    first, second = folder / "first.csv", folder / "second.csv"
    write_csv(frame.iloc[:half], first)
    write_csv(frame.iloc[half:].drop(columns=[label]), second)
    return {"folder": folder, "first": first, "second": second, "label": label, "y": y[half:]}


@pytest.fixture(scope="module")
def library_with_team(small_library: Path, halves: dict[str, object]) -> Path:
    """The small library and the team model trained on the first half, in one folder."""
    root = Path(str(halves["folder"])) / "models"
    shutil.copytree(small_library, root)
    first, label = Path(str(halves["first"])), str(halves["label"])
    train_team(first, "team-tx", root, FolderSource(small_library), label, OPTIONS)
    return root


def scored(
    source: Path, upload: Path, out: Path, **options: object
) -> tuple[ScoreResult, np.ndarray]:
    opts = ScoreOptions(threads=2, **options)  # type: ignore[arg-type]
    result = Pipeline(FolderSource(source), opts).run(upload, out)
    return result, pd.read_csv(out)["fraud_probability"].to_numpy()


def test_the_team_model_leads_its_schema_ranks_better_and_sets_the_level(
    small_library: Path, library_with_team: Path, halves: dict[str, object], tmp_path: Path
) -> None:
    upload, y = Path(str(halves["second"])), np.asarray(halves["y"])
    free, p_free = scored(small_library, upload, tmp_path / "free.csv")
    led, p_team = scored(library_with_team, upload, tmp_path / "team.csv")
    assert free.methods_used["team_model"] is None
    assert free.stats["fraud_rate_level"] == "estimated"
    team = led.methods_used["team_model"]
    assert team["name"] == "team-tx" and team["coverage"] >= 0.9
    assert team["team_weight"] > team["evidence_weight"] >= 0
    assert "leads" in team["reason"] and "ROC" in team["reason"]
    assert led.stats["fraud_rate_level"] == "team labels"
    assert roc_auc_score(y, p_team) > roc_auc_score(y, p_free) + 0.02
    assert 0.67 <= p_team.mean() / y.mean() <= 1.5


def test_a_file_of_another_schema_is_not_led_by_the_team_model(
    library_with_team: Path, halves: dict[str, object], tmp_path: Path
) -> None:
    other = pd.read_csv(Path(str(halves["second"])), dtype=str)
    other = other.drop(columns=["risk_note"]).rename(columns=lambda c: f"x_{c}")
    upload = tmp_path / "other.csv"
    write_csv(other, upload)
    result, _ = scored(library_with_team, upload, tmp_path / "out.csv")
    assert result.methods_used["team_model"] is None


def test_a_plan_led_by_a_team_model_scores_identically_once_saved_and_loaded(
    library_with_team: Path, halves: dict[str, object], tmp_path: Path
) -> None:
    upload = Path(str(halves["second"]))
    result, _ = scored(library_with_team, upload, tmp_path / "a.csv", chunk_rows=700)
    assert result.plan is not None and result.plan.team is not None
    result.plan.save(tmp_path / "plan.zip")
    source = FolderSource(library_with_team)
    plan = FittedPlan.load(tmp_path / "plan.zip", source, upload)
    Pipeline(source, plan.options).run(upload, tmp_path / "b.csv", plan=plan)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_a_stated_fraud_rate_sets_the_mean_probability(
    small_library: Path, halves: dict[str, object], tmp_path: Path
) -> None:
    upload = Path(str(halves["second"]))
    result, p = scored(small_library, upload, tmp_path / "out.csv", expected_fraud_rate=0.05)
    assert result.stats["fraud_rate_level"] == "stated"
    assert p.mean() == pytest.approx(0.05, rel=0.1)


def test_the_stack_weighs_only_what_proved_itself_and_never_negatively() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.05).astype(int)
    useful = np.clip(0.05 + 0.4 * y + rng.normal(0, 0.1, len(y)), 0.001, 0.999)
    noise = rng.uniform(0.001, 0.999, len(y))
    rank = (np.argsort(np.argsort(useful)) + 0.5) / len(y)
    stack = Stack.fit(noise, rank, y)
    assert stack.team < 0.05 < stack.evidence
    against = Stack.fit(1 - useful, np.full(len(y), 0.5), y)  # worse than nothing: weight 0
    assert against.team == 0.0
    assert Stack.fit(useful, rank, y).team > 0.5


def test_too_few_labels_are_refused_with_how_many_are_needed(
    small_library: Path, halves: dict[str, object], tmp_path: Path
) -> None:
    frame = pd.read_csv(Path(str(halves["first"])), dtype=str)
    label = str(halves["label"])
    frame[label] = "0"
    frame.loc[frame.index[:3], label] = "1"
    path = tmp_path / "few.csv"
    write_csv(frame, path)
    with pytest.raises(TrainingError, match=r"3 fraud .* at least 10"):
        train_team(path, "few", tmp_path / "models", FolderSource(small_library), label, OPTIONS)
    assert not (tmp_path / "models" / "few").exists()


def test_the_label_column_is_found_by_its_name_when_not_given(halves: dict[str, object]) -> None:
    from shared.training.team import design, labels_of

    found = design(Path(str(halves["first"])), None)
    assert found.layout.roles.get("label") == halves["label"]
    assert len(labels_of(found)) == len(found.x) == 3000
    assert halves["label"] not in found.names
