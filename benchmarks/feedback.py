"""Learning from a team's outcomes, on real files split in time (evaluation only; see
../shared/realdata).

    .venv/bin/python -m benchmarks.feedback [--dir ../shared/realdata] [--quick]

Each labeled file is ordered by its time column (file order where it has none) and cut in two
halves. The first half's labels train a team model through the service's own code
(`shared.training.team.train_team`, as `scripts/full_automl.py` and the training jobs do); the
second half is scored without labels, before (the reference library alone) and after (the
library and the team model). Per file: ROC-AUC, PR-AUC, ECE and mean probability / true rate,
against a supervised XGBoost trained on the first half in the same run (every column as a
number: numbers as they are, text as its share of its own half). Then a learning curve (labels
for a random 10%, 25% and 100% of the first half) and the "reviewed alerts only" case: labels
for the rows that the first half's label-free scoring ranked in its top 2%, and a random 1%.
The team models live in a temporary folder beside the registered library: nothing is shipped
or registered.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score
from xgboost import XGBClassifier

from benchmarks.real_data import DEFAULT_DIR, binary, ece, encoded, labeled_files
from shared.engine.bundle import ModelBundle
from shared.engine.matching import ModelInfo
from shared.engine.options import JobOptions, ScoreOptions
from shared.engine.pipeline import ModelSource, Pipeline
from shared.library.cache import RegistrySource
from shared.library.folder import FolderSource
from shared.service.runner import score_options
from shared.settings import get_settings
from shared.training.automl import TrainingError
from shared.training.team import design, time_order, train_team

LABEL_SHARES = (0.10, 0.25, 1.0)
ALERTS_TOP, ALERTS_RANDOM = 0.02, 0.01


class Together:
    """The registered library and a folder of team models, as one source."""

    def __init__(self, library: ModelSource, teams: FolderSource) -> None:
        self.library, self.teams = library, teams

    def models(self) -> list[ModelInfo]:
        return self.library.models() + self.teams.models()

    def load(self, name: str) -> ModelBundle:
        if (self.teams.root / name).is_dir():
            return self.teams.load(name)
        return self.library.load(name)

    def record_usage(self, names: list[str]) -> None:
        """Benchmarks leave the registry's usage counts alone."""


def options() -> ScoreOptions:
    return score_options(JobOptions(), get_settings())


def scored(path: Path, source: ModelSource) -> tuple[np.ndarray, dict[str, Any]]:
    """Probabilities of every row (in file order) and the summary."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        result = Pipeline(source, options()).run(path, out)
        table = pd.read_csv(out, usecols=["row_number", "fraud_probability"])
    p = np.full(result.stats["total_transactions"], np.nan)
    p[table["row_number"].to_numpy() - 1] = table["fraud_probability"].to_numpy()
    return p, {**result.stats, **result.methods_used}


def figures(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    keep = np.isfinite(p)
    y, p = y[keep], p[keep]
    return {
        "roc": roc_auc_score(y, p),
        "pr": average_precision_score(y, p),
        "ece": ece(y, p),
        "mean/rate": p.mean() / y.mean(),
    }


def supervised(first: pd.DataFrame, second: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    """A supervised XGBoost on the first half's columns, scoring the second half."""
    model = XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, n_jobs=2)
    model.fit(encoded(first), y)
    return model.predict_proba(encoded(second))[:, 1]


class Case:
    """One real file split in time: its halves on disk, the labels, the library."""

    def __init__(self, name: str, csv: Path, label: str, folder: Path) -> None:
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        order = time_order(design(csv, label))
        half = len(order) // 2
        self.name, self.label, self.folder = name, label, folder
        self.first, self.second = frame.iloc[order[:half]], frame.iloc[order[half:]]
        self.y_first, self.y_second = binary(self.first[label]), binary(self.second[label])
        self.upload = folder / f"{name}_second_half.csv"
        self.second.drop(columns=[label]).to_csv(self.upload, index=False)
        self.library = RegistrySource(get_settings())

    def team(self, rows: np.ndarray, tag: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """Train on these rows of the first half (in time order), score the second half."""
        teams = self.folder / f"teams-{tag}"
        labeled = self.folder / f"{self.name}_{tag}.csv"
        self.first.iloc[np.sort(rows)].to_csv(labeled, index=False)
        try:
            train_team(labeled, f"team-{self.name}-{tag}", teams, self.library, self.label)
        except TrainingError as exc:
            return {"error": str(exc)}, {}
        p, info = scored(self.upload, Together(self.library, FolderSource(teams)))
        return figures(self.y_second, p), info


def run_file(name: str, csv: Path, label: str, quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        case = Case(name, csv, label, Path(tmp))
        n, rng = len(case.first), np.random.default_rng(0)
        base = {"file": name, "rows": f"{n}+{len(case.second)}"}
        base["frauds"] = f"{int(case.y_first.sum())}+{int(case.y_second.sum())}"
        p, _ = scored(case.upload, case.library)
        rows.append({**base, "case": "before", **figures(case.y_second, p)})
        sup = supervised(
            case.first.drop(columns=[label]), case.second.drop(columns=[label]), case.y_first
        )
        rows.append({**base, "case": "supervised", **figures(case.y_second, sup)})
        after, info = case.team(np.arange(n), "all")
        lead = (info.get("team_model") or {}).get("reason", "no team model led")
        rows.append({**base, "case": "after", **after, "level": info.get("fraud_rate_level")})
        print(f"  {name}: {lead}", file=sys.stderr)
        if quick:
            return rows
        for share in LABEL_SHARES[:-1]:
            subset = rng.choice(n, int(n * share), replace=False)
            rows.append({**base, "case": f"labels {share:.0%}", **case.team(subset, f"{share}")[0]})
        rows.append(
            {**base, "case": "reviewed alerts", **case.team(alerts(case, rng), "alerts")[0]}
        )
    return rows


def alerts(case: Case, rng: np.random.Generator) -> np.ndarray:
    """The first half's rows a team would have reviewed: the label-free top 2% and a random 1%."""
    upload = case.folder / "first_unlabeled.csv"
    case.first.drop(columns=[case.label]).to_csv(upload, index=False)
    p, _ = scored(upload, case.library)
    n = len(p)
    top = np.argsort(-np.nan_to_num(p, nan=0.0), kind="stable")[: int(n * ALERTS_TOP)]
    random = rng.choice(n, int(n * ALERTS_RANDOM), replace=False)
    return np.union1d(top, random)


def verdict(table: pd.DataFrame) -> None:
    print("\nacceptance (after vs supervised and before, per file):")
    for name, group in table.groupby("file", sort=False):
        by = group.set_index("case")
        if "roc" not in by or pd.isna(by.loc["after", "roc"]):
            print(f"  {name}: no team model ({by.loc['after'].get('error')})")
            continue
        after, sup, before = (by.loc[c] for c in ("after", "supervised", "before"))
        checks = {
            "ROC >= 0.97 x supervised": after["roc"] >= 0.97 * sup["roc"],
            "ROC >= before": after["roc"] >= before["roc"],
            "mean/rate in 0.67-1.5": 0.67 <= after["mean/rate"] <= 1.5,
            "ECE <= 0.02": after["ece"] <= 0.02,
        }
        said = ", ".join(f"{k}: {'yes' if ok else 'NO'}" for k, ok in checks.items())
        ratio = after["roc"] / sup["roc"]
        print(f"  {name}: ROC {after['roc']:.4f} / supervised {sup['roc']:.4f} = {ratio:.3f}")
        print(f"    {said}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(os.environ.get("FRAUDSCORE_REALDATA", DEFAULT_DIR))
    parser.add_argument("--dir", type=Path, default=default)
    parser.add_argument("--quick", action="store_true", help="before / after / supervised only")
    parser.add_argument("--only", nargs="*", help="these files only (folder names)")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"feedback: no folder {args.dir} (set FRAUDSCORE_REALDATA)", file=sys.stderr)
        return 2
    rows = []
    for name, csv, label in labeled_files(args.dir):
        if not args.only or name in args.only:
            rows += run_file(name, csv, label, args.quick)
    table = pd.DataFrame(rows).set_index(["file", "case"])
    with pd.option_context("display.width", 250, "display.float_format", "{:.4f}".format):
        print(table.to_string())
    verdict(table.reset_index())
    return 0


if __name__ == "__main__":
    sys.exit(main())
