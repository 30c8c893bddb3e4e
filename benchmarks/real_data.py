"""Scores on real labeled files that nobody mapped (evaluation only; see ../shared/realdata),
and on simulated families that the library is built without.

    .venv/bin/python -m benchmarks.real_data [--dir ../shared/realdata] [--no-families]

Each file is scored by the offline pipeline with its label column stripped (exactly what a user
would upload), against the reference library registered by `make run`. Per file: ROC-AUC,
PR-AUC, precision at k (k = true number of frauds), ECE, mean probability / true rate, `high`
and `is_anomaly` shares, the ROC of each component (the ensemble alone, the anomaly score, the
blend, the amount rank) and two references computed in the same run: supervised 5-fold XGBoost
with the labels, and a plain IsolationForest over all columns. The folder is read from
FRAUDSCORE_REALDATA (default ../shared/realdata beside the project).

Left-out families: for each domain of our simulator (card present, e-commerce, mobile money,
ATM, and the typology families: card history, cardholder, mule chain, sign-up) a library of
the other domains' catalog models is built (smaller, cached under var/left_out and built again
where a model's recipe changed: bump LIBRARY_VERSION after changing the simulator) and scores
that domain's held-out datasets, whose column names no reference model uses. The four base
domains share one generator; the typology families have mechanics of their own (sign-up is in
no library), yet all come from our code: this shows transfer across generators we wrote, not
across independent sources. That is what the real files are for.

Anonymized files: four held-out datasets (one per domain) turned into the shape of a published
anonymized card file: `Time` (seconds from the first row), `Amount`, the principal components
`V1...Vk` of every feature our pipeline would compute from the raw columns (ids, categories and
dates themselves are gone) and `Class`. No reference model can use the components, so this shows
how the file's own evidence (anomaly detection, the file model) fares where the library sees
only an amount and a time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from xgboost import XGBClassifier

from benchmarks.scoring_quality import held_out_specs, typology_specs
from shared.engine import roles as R
from shared.engine.features import build_features, clock_of
from shared.engine.options import JobOptions
from shared.engine.pipeline import ModelSource, Pipeline
from shared.engine.roles import RoleMap, infer_roles, to_number
from shared.library.build import build_library, outside_catalog
from shared.library.cache import RegistrySource
from shared.library.folder import FolderSource
from shared.service.runner import score_options
from shared.settings import REPO_ROOT, get_settings
from shared.training.simulator import BASE_DOMAINS, DOMAINS, DatasetSpec, simulate

DEFAULT_DIR = REPO_ROOT.parent / "shared" / "realdata"
TRUST_GRID = (0.0, 0.25, 0.5, 1.0)
SEEDS = (0, 1, 2, 3)  # the sample, the forest and the file model vary with the seed
FAMILY_ROWS_SCALE = 0.3  # left-out-family libraries: smaller datasets, built in about a minute
LABEL_NAMES = ("fraud", "class", "is fraud?", "isfraud", "is_fraud", "label", "fraud_bool")


def labeled_files(root: Path) -> list[tuple[str, Path, str]]:
    """(name, csv, label column) for each folder's CSV file."""
    found = []
    for csv in sorted(root.glob("*/*.csv")):
        header = pd.read_csv(csv, nrows=0).columns
        label = next((c for c in header if c.strip().lower() in LABEL_NAMES), None)
        if label is None:
            label = infer_roles(pd.read_csv(csv, nrows=2000, dtype=str)).get(R.LABEL)
        if label is not None:
            found.append((csv.parent.name, csv, label))
    return found


def binary(series: pd.Series) -> np.ndarray:
    text = series.astype(str).str.strip().str.lower()
    return text.isin(["1", "1.0", "yes", "true", "y", "fraud"]).to_numpy(np.int8)


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over equal-width probability bins."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return total


def encoded(frame: pd.DataFrame) -> np.ndarray:
    """All columns as numbers for the references: numbers as they are, text as frequencies."""
    columns = []
    for column in frame.columns:
        values = to_number(frame[column].astype("string"))
        if values.notna().mean() >= 0.95:
            columns.append(values.to_numpy(np.float64))
        else:
            text = frame[column].astype(str)
            columns.append(text.map(text.value_counts(normalize=True)).to_numpy(np.float64))
    return np.column_stack(columns)


def references(frame: pd.DataFrame, y: np.ndarray) -> tuple[float, float]:
    """(supervised 5-fold XGBoost ROC, plain IsolationForest ROC) over all columns."""
    x = encoded(frame)
    oof = np.zeros(len(y))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for train, test in folds.split(x, y):
        model = XGBClassifier(n_estimators=200, max_depth=6, learning_rate=0.1, n_jobs=2)
        model.fit(x[train], y[train])
        oof[test] = model.predict_proba(x[test])[:, 1]
    filled = np.where(np.isfinite(x), x, np.nanmedian(x, axis=0))
    forest = IsolationForest(n_estimators=200, random_state=0).fit(filled)
    return roc_auc_score(y, oof), roc_auc_score(y, -forest.score_samples(filled))


def score(
    path: Path, source: ModelSource | None = None, **tuning: Any
) -> tuple[pd.DataFrame, dict]:
    """The offline pipeline's predictions and summary, with ScoreOptions overrides (against the
    registered library unless a source is given)."""
    settings = get_settings()
    options = score_options(JobOptions(), settings, **tuning)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.csv"
        result = Pipeline(source or RegistrySource(settings), options).run(path, out)
        return pd.read_csv(out), {**result.methods_used, **result.stats}


def evaluate_file(name: str, csv: Path, label: str) -> dict:
    frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
    return evaluate(name, frame.drop(columns=[label]), binary(frame[label]))


def evaluate(
    name: str, unlabeled: pd.DataFrame, y: np.ndarray, source: ModelSource | None = None
) -> dict:
    """Every figure of the table for one file, scored with its labels stripped."""
    with tempfile.TemporaryDirectory() as tmp:
        upload = Path(tmp) / f"{name}.csv"
        unlabeled.to_csv(upload, index=False)
        blended, info = score(upload, source)
        alone, _ = score(upload, source, blend=False)
        by_trust = {
            trust: score(upload, source, reference_trust=trust)[0]["fraud_probability"].to_numpy()
            for trust in TRUST_GRID
        }
        by_seed = [
            score(upload, source, seed=seed)[0]["fraud_probability"].to_numpy()
            for seed in SEEDS[1:]
        ]
    rows = blended["row_number"].to_numpy() - 1
    yy, p = y[rows], blended["fraud_probability"].to_numpy()
    k = int(yy.sum())
    amount_column = info["roles"].get(R.AMOUNT)
    amount = to_number(unlabeled[amount_column].astype("string")).to_numpy()[rows]
    supervised, forest = references(unlabeled, y)
    return {
        "file": name,
        "rows": len(y),
        "rate": y.mean(),
        "roc": roc_auc_score(yy, p),
        "pr": average_precision_score(yy, p),
        "p@k": yy[np.argsort(-p)[:k]].mean(),
        "ece": ece(yy, p),
        "mean/rate": p.mean() / yy.mean(),
        "high": (blended["risk_level"] == "high").mean(),
        "anom": blended["is_anomaly"].mean(),
        "ens": roc_auc_score(yy, alone["fraud_probability"].to_numpy()),
        "anomaly": roc_auc_score(yy, blended["anomaly_score"].to_numpy()),
        "amount": roc_auc_score(yy, np.nan_to_num(amount)),
        "sup": supervised,
        "iforest": forest,
        "weight": (info.get("blend") or {}).get("reference_weight", 1.0),
        "in_band": bool(info["fraud_rate_band"][0] <= y.mean() <= info["fraud_rate_band"][1]),
        "_trust_roc": {t: roc_auc_score(yy, p) for t, p in by_trust.items()},
        "_seed_roc": [roc_auc_score(yy, p)] + [roc_auc_score(yy, q) for q in by_seed],
    }


def leave_one_file_out(results: list[dict]) -> None:
    """Choose REFERENCE_TRUST on the other files, report the final score on each left out."""
    print("\nleave-one-file-out choice of REFERENCE_TRUST (final ROC / supervised):")
    held_out = []
    for held in results:
        others = [r for r in results if r is not held]
        best = max(
            TRUST_GRID, key=lambda t: np.mean([r["_trust_roc"][t] / r["sup"] for r in others])
        )
        roc = held["_trust_roc"][best]
        held_out.append(roc / held["sup"])
        print(
            f"  {held['file']:18s} trust chosen on the others {best:4.2f}: "
            f"held-out ROC {roc:.4f} (supervised {held['sup']:.4f})"
        )
    print(f"  mean held-out ROC / supervised: {np.mean(held_out):.3f}")


def _other_domain(domain: str, spec: DatasetSpec) -> bool:
    return spec.domain != domain


def left_out_families(rows: int) -> list[dict]:
    """Each simulator domain scored by a library built without it (cached under var/)."""
    results = []
    for domain in DOMAINS:
        root = REPO_ROOT / "var" / "left_out" / domain
        (root / "data").mkdir(parents=True, exist_ok=True)
        report = build_library(
            root / "models",
            root / "data",
            rows_scale=FAMILY_ROWS_SCALE,
            keep=partial(_other_domain, domain),
        )
        print(f"library without {domain}: built {len(report.results)} models", file=sys.stderr)
        source = FolderSource(root / "models")
        for spec in held_out_specs(rows) + typology_specs(rows):
            if spec.domain != domain:
                continue
            frame = simulate(spec).astype(str)
            label = spec.column_names()[R.LABEL]
            y = frame.pop(label).astype(int).to_numpy()
            results.append(evaluate(f"{spec.name} (no {domain})", frame, y, source))
    return results


def anonymized(spec: DatasetSpec) -> tuple[pd.DataFrame, np.ndarray]:
    """A simulated dataset in the shape of an anonymized card file, and its labels."""
    frame = simulate(spec).astype(str)
    names = spec.column_names()
    roles = RoleMap({r: names[r] for r in spec.roles if r != R.LABEL})
    t = clock_of(frame, roles)
    assert t is not None
    features = build_features(frame, roles, t).astype(np.float64)
    features = features.loc[:, features.notna().any() & (features.std() > 0)]
    x = features.fillna(features.median()).to_numpy()
    components = PCA(random_state=0).fit_transform((x - x.mean(axis=0)) / x.std(axis=0))
    out = pd.DataFrame({"Time": np.round(t - t.min()).astype(np.int64)})
    for j in range(components.shape[1]):
        out[f"V{j + 1}"] = np.round(components[:, j], 6)
    out["Amount"] = frame[names[R.AMOUNT]]
    return out, frame[names[R.LABEL]].astype(int).to_numpy()


def anonymized_files(rows: int) -> list[dict]:
    """One held-out dataset per domain, anonymized, scored against the registered library."""
    results = []
    for spec in held_out_specs(rows)[: len(BASE_DOMAINS)]:  # the first of each base domain
        frame, y = anonymized(spec)
        results.append(evaluate(f"{spec.name} (anonymized)", frame, y))
    return results


def summary(table: pd.DataFrame, what: str) -> None:
    print(f"\n{what}:")
    ratio = (table["roc"] / table["sup"]).mean()
    print(f"  mean ROC / supervised: {ratio:.3f} (target >= 0.90)")
    print(f"  median mean-probability / true rate: {table['mean/rate'].median():.2f} (0.5-2)")
    beats = ((table["roc"] > table["iforest"]) & (table["roc"] > table["amount"])).sum()
    print(f"  ROC above IsolationForest and amount rank: {beats} of {len(table)} files")
    print(
        f"  max ECE {table['ece'].max():.4f} (<= 0.03); is_anomaly share "
        f"{table['anom'].min():.4f}-{table['anom'].max():.4f} (0.005-0.02); "
        f"high / rate max {(table['high'] / table['rate']).max():.2f} (<= 3); "
        f"true rate inside the reported band: {int(table['in_band'].sum())} of {len(table)}"
    )


def show(results: list[dict], what: str) -> None:
    table = pd.DataFrame(results).drop(columns=["_trust_roc", "_seed_roc"]).set_index("file")
    with pd.option_context("display.width", 250, "display.float_format", "{:.4f}".format):
        print(table.to_string())
    summary(table, what)
    print(f"  final ROC over seeds {SEEDS} (the default is 0): mean, spread")
    for r in results:
        rocs = np.array(r["_seed_roc"])
        print(f"    {r['file']:42s} {rocs.mean():.4f}  {rocs.min():.4f}-{rocs.max():.4f}")
    means = np.mean([np.mean(r["_seed_roc"]) / r["sup"] for r in results])
    print(f"    mean ROC / supervised over seeds: {means:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    default = Path(os.environ.get("FRAUDSCORE_REALDATA", DEFAULT_DIR))
    parser.add_argument("--dir", type=Path, default=default)
    parser.add_argument(
        "--no-families", action="store_true", help="real files only (no simulated ones)"
    )
    parser.add_argument("--family-rows", type=int, default=20_000)
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"real_data: no folder {args.dir} (set FRAUDSCORE_REALDATA)", file=sys.stderr)
        return 2
    settings = get_settings()
    if others := outside_catalog(settings.models_dir, settings.reference_library_size):
        print(
            f"real_data: {len(others)} registered model folder(s) outside the catalog "
            f"({', '.join(others)}): the figures are not those of a fresh library",
            file=sys.stderr,
        )
    results = [evaluate_file(*item) for item in labeled_files(args.dir)]
    show(results, "real files")
    leave_one_file_out(results)
    if not args.no_families:
        print()
        show(left_out_families(args.family_rows), "left-out simulator families")
        print()
        show(anonymized_files(args.family_rows), "anonymized simulated files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
