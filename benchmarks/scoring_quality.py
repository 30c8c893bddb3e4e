"""Scoring quality on held-out data the library never saw.

    .venv/bin/python -m benchmarks.scoring_quality [--rows 30000]

Each held-out dataset comes from a new seed with column names no reference dataset uses. Its
labels are stripped, the file is scored by the offline pipeline (the workers' code path), and
the scores are compared with the labels, against:
  oracle    XGBoost trained by our AutoML on labeled data of the same distribution (other seed)
  single    the best-matching reference model alone (top_k=1)
  anomaly   the anomaly detector's score alone
  uncal     the ensemble's uncalibrated average (for the Brier comparison)
Targets: ROC-AUC >= 0.95 x oracle, PR-AUC >= 0.8 x oracle, ensemble not below single or anomaly
on average; ECE (10 bins) <= 0.02 and Brier below the uncalibrated ensemble's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from shared.engine import roles as R
from shared.engine.bundle import load_bundle
from shared.engine.features import build_features
from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.engine.roles import infer_roles
from shared.library.build import write_csv
from shared.library.cache import RegistrySource
from shared.settings import get_settings
from shared.training.automl import train_frame
from shared.training.simulator import DOMAIN_ROLES, DOMAIN_SCENARIOS, DatasetSpec, simulate

# Column names that no reference dataset uses (German, Portuguese, Spanish, Italian, English).
HELD_OUT_NAMES = {
    "de": {
        R.TX_ID: "buchungs_id",
        R.TIMESTAMP: "zeitstempel",
        R.CUSTOMER: "kartennummer",
        R.TERMINAL: "haendler_id",
        R.AMOUNT: "betrag",
        R.CATEGORY: "kategorie",
        R.CHANNEL: "kanal",
        R.DISTANCE: "entfernung_km",
        R.TX_TYPE: "buchungsart",
        R.BALANCE_BEFORE: "saldo_vorher",
        R.BALANCE_AFTER: "saldo_nachher",
        R.LABEL: "ist_betrug",
    },
    "pt": {
        R.TX_ID: "id_transacao",
        R.TIMESTAMP: "data_hora",
        R.CUSTOMER: "id_cartao",
        R.TERMINAL: "id_loja",
        R.AMOUNT: "valor_compra",
        R.CATEGORY: "categoria",
        R.CHANNEL: "canal_venda",
        R.DISTANCE: "distancia",
        R.TX_TYPE: "tipo_operacao",
        R.BALANCE_BEFORE: "saldo_anterior",
        R.BALANCE_AFTER: "saldo_posterior",
        R.LABEL: "fraude_confirmada",
    },
    "es": {
        R.TX_ID: "ref_operacion",
        R.TIMESTAMP: "fecha",
        R.CUSTOMER: "cuenta_origen",
        R.TERMINAL: "cuenta_destino",
        R.AMOUNT: "importe",
        R.CATEGORY: "rubro_comercio",
        R.CHANNEL: "canal",
        R.DISTANCE: "distancia_km",
        R.TX_TYPE: "tipo_movimiento",
        R.BALANCE_BEFORE: "saldo_inicial",
        R.BALANCE_AFTER: "saldo_final",
        R.LABEL: "es_fraude",
    },
    "en": {
        R.TX_ID: "EventId",
        R.TIMESTAMP: "CreatedAt",
        R.CUSTOMER: "CardHash",
        R.TERMINAL: "StoreId",
        R.AMOUNT: "TransactionAmount",
        R.CATEGORY: "MerchantCategory",
        R.CHANNEL: "EntryChannel",
        R.DISTANCE: "DistanceKm",
        R.TX_TYPE: "OperationKind",
        R.BALANCE_BEFORE: "BalanceBefore",
        R.BALANCE_AFTER: "BalanceAfter",
        R.LABEL: "Chargeback",
    },
}


def held_out_specs(rows: int, seed: int = 7_000_000) -> list[DatasetSpec]:
    plan = [
        ("card_present", "de", 0.004, "dmy"),
        ("ecommerce", "pt", 0.02, "iso"),
        ("mobile_money", "es", 0.008, "iso"),
        ("atm", "en", 0.01, "epoch"),
        ("card_present", "en", 0.015, "iso"),
        ("ecommerce", "de", 0.003, "epoch"),
        ("mobile_money", "en", 0.03, "epoch"),
        ("atm", "pt", 0.002, "dmy"),
    ]
    return _specs(plan, rows, seed)


def typology_specs(rows: int, seed: int = 7_100_000) -> list[DatasetSpec]:
    """Two datasets of each typology family (and the evaluation-only one), named like no
    reference dataset; benchmarks.real_data scores each with a library built without it."""
    plan = [
        ("card_history", "de", 0.008, "dmy"),
        ("card_history", "en", 0.02, "iso"),
        ("cardholder", "pt", 0.005, "iso"),
        ("cardholder", "en", 0.012, "epoch"),
        ("mule_chain", "es", 0.003, "iso"),
        ("mule_chain", "de", 0.01, "epoch"),
        ("signup", "pt", 0.02, "iso"),
        ("signup", "en", 0.05, "epoch"),
    ]
    return _specs(plan, rows, seed)


def _specs(plan: list[tuple[str, str, float, str]], rows: int, seed: int) -> list[DatasetSpec]:
    """One held-out spec per (domain, naming language, fraud rate, timestamp format)."""
    return [
        DatasetSpec(
            name=f"heldout_{domain}_{lang}",
            domain=domain,
            seed=seed + i,
            rows=rows,
            fraud_rate=rate,
            days=60,
            style="snake",
            timestamp_format=ts,
            id_format="prefixed",
            roles=DOMAIN_ROLES[domain],
            scenarios=DOMAIN_SCENARIOS[domain],
            names=HELD_OUT_NAMES[lang],
        )
        for i, (domain, lang, rate, ts) in enumerate(plan)
    ]


def ece(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    edges = np.linspace(0, 1, bins + 1)
    index = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(p[mask].mean() - y[mask].mean())
    return float(total)


def blends(p: np.ndarray, anomaly: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Would feeding the anomaly score into the probability help? Rank blends, measured."""
    from scipy.stats import rankdata

    out = {}
    for share in (0.1, 0.25):
        blend = (1 - share) * rankdata(p) + share * rankdata(anomaly)
        out[f"roc_blend_{share}"] = roc_auc_score(y, blend)
        out[f"pr_blend_{share}"] = average_precision_score(y, blend)
    return out


def score(
    source: RegistrySource, frame: pd.DataFrame, tmp: Path, **options: Any
) -> tuple[pd.DataFrame, dict[str, Any]]:
    src, out = tmp / "input.csv", tmp / "out.csv"
    write_csv(frame, src)
    result = Pipeline(source, ScoreOptions(**options)).run(src, out, tmp / "errors.csv")
    return pd.read_csv(out), result.summary()


def oracle(spec: DatasetSpec, test: pd.DataFrame, tmp: Path) -> np.ndarray:
    twin = DatasetSpec(**{**spec.__dict__, "seed": spec.seed + 1000, "name": spec.name + "_oracle"})
    model_dir = tmp / "oracle"
    train_frame(simulate(twin), twin.name, model_dir)
    bundle = load_bundle(model_dir / twin.name, twin.name)
    x = build_features(test, infer_roles(test.drop(columns=[spec.column_names()[R.LABEL]])))
    return bundle.predict(x.to_numpy(np.float32))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=30_000)
    parser.add_argument("--pooling", choices=["linear", "logit"], default="logit")
    parser.add_argument("--seed", type=int, default=7_000_000, help="first held-out seed")
    args = parser.parse_args()
    pooling = {"pooling": args.pooling}
    source = RegistrySource(get_settings())
    if not source.models():
        print("the registry is empty: run `make run` (or scripts/build_reference_library.py)")
        return 1
    header = (
        f"{'dataset':26s} {'rate':>6s} | {'ROC ens':>7s} {'oracle':>6s} {'single':>6s} "
        f"{'anom':>6s} | {'PR ens':>6s} {'oracle':>6s} {'single':>6s} {'anom':>6s} | "
        f"{'Brier':>7s} {'uncal':>7s} {'ECE':>6s} | roles ok"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for spec in held_out_specs(args.rows, args.seed):
        with tempfile.TemporaryDirectory() as name:
            tmp = Path(name)
            labeled = simulate(spec)
            label = spec.column_names()[R.LABEL]
            y = labeled[label].to_numpy()
            unlabeled = labeled.drop(columns=[label])
            ens, summary = score(source, unlabeled, tmp, **pooling)
            single, _ = score(source, unlabeled, tmp, top_k=1, **pooling)
            uncal, _ = score(source, unlabeled, tmp, calibrate=False, **pooling)
            p = ens["fraud_probability"].to_numpy()
            expected = {r: spec.column_names()[r] for r in spec.roles}
            found = summary["methods_used"]["roles"]
            roles_ok = sum(found.get(r) == c for r, c in expected.items())
            o = oracle(spec, labeled, tmp)
            row = {
                "dataset": spec.name,
                "rate": y.mean(),
                "roc": roc_auc_score(y, p),
                "roc_oracle": roc_auc_score(y, o),
                "roc_single": roc_auc_score(y, single["fraud_probability"]),
                "roc_anomaly": roc_auc_score(y, ens["anomaly_score"]),
                "pr": average_precision_score(y, p),
                "pr_oracle": average_precision_score(y, o),
                "pr_single": average_precision_score(y, single["fraud_probability"]),
                "pr_anomaly": average_precision_score(y, ens["anomaly_score"]),
                "brier": brier_score_loss(y, p),
                "brier_uncal": brier_score_loss(y, uncal["fraud_probability"]),
                "ece": ece(p, y),
                "roles": f"{roles_ok}/{len(expected)}",
                **blends(p, ens["anomaly_score"].to_numpy(), y),
            }
            rows.append(row)
            print(
                f"{row['dataset']:26s} {row['rate']:6.4f} | {row['roc']:7.4f} "
                f"{row['roc_oracle']:6.4f} {row['roc_single']:6.4f} {row['roc_anomaly']:6.4f} | "
                f"{row['pr']:6.4f} {row['pr_oracle']:6.4f} {row['pr_single']:6.4f} "
                f"{row['pr_anomaly']:6.4f} | {row['brier']:7.5f} {row['brier_uncal']:7.5f} "
                f"{row['ece']:6.4f} | {row['roles']}",
                flush=True,
            )
    mean = pd.DataFrame(rows).drop(columns=["dataset", "roles"]).mean()
    print("-" * len(header))
    print(
        f"{'average':26s} {mean['rate']:6.4f} | {mean['roc']:7.4f} {mean['roc_oracle']:6.4f} "
        f"{mean['roc_single']:6.4f} {mean['roc_anomaly']:6.4f} | {mean['pr']:6.4f} "
        f"{mean['pr_oracle']:6.4f} {mean['pr_single']:6.4f} {mean['pr_anomaly']:6.4f} | "
        f"{mean['brier']:7.5f} {mean['brier_uncal']:7.5f} {mean['ece']:6.4f} |"
    )
    print()
    checks = {
        "ROC-AUC >= 0.95 x oracle (average)": mean["roc"] >= 0.95 * mean["roc_oracle"],
        "PR-AUC >= 0.8 x oracle (average)": mean["pr"] >= 0.8 * mean["pr_oracle"],
        "ensemble >= single model (ROC and PR, average)": mean["roc"] >= mean["roc_single"]
        and mean["pr"] >= mean["pr_single"],
        "ensemble >= anomaly alone (ROC and PR, average)": mean["roc"] >= mean["roc_anomaly"]
        and mean["pr"] >= mean["pr_anomaly"],
        "ECE <= 0.02 (every dataset)": all(r["ece"] <= 0.02 for r in rows),
        "Brier < uncalibrated ensemble (average)": mean["brier"] < mean["brier_uncal"],
    }
    for name, ok in checks.items():
        print(f"  [{'PASS' if ok else 'FAIL'}] {name}")
    for share in (0.1, 0.25):
        print(
            f"  anomaly fed in at {share:.0%} rank weight: ROC {mean[f'roc_blend_{share}']:.4f}, "
            f"PR {mean[f'pr_blend_{share}']:.4f} (ensemble alone: ROC {mean['roc']:.4f}, "
            f"PR {mean['pr']:.4f})"
        )
    print(
        f"  ratios: ROC {mean['roc'] / mean['roc_oracle']:.3f} of oracle, "
        f"PR {mean['pr'] / mean['pr_oracle']:.3f} of oracle"
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
