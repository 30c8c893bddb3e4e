"""Score an unlabeled CSV offline, with exactly the code path the workers run.

python scripts/score_csv.py INPUT.csv --output OUT.csv [--errors ERR.csv] [--json]

Prints a short summary; `--json` prints the job's whole summary (stats and methods_used) as
JSON instead, `--summary FILE` writes it to FILE.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shared.engine.options import parse_options
from shared.engine.pipeline import Pipeline
from shared.errors import InputError
from shared.library.cache import RegistrySource
from shared.service.runner import score_options
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("input", type=Path, help=".csv or .csv.gz")
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--errors", type=Path, help="per-row errors CSV")
    parser.add_argument("--top-k", type=int, default=settings.top_k)
    parser.add_argument("--keep-columns", action="store_true", help="copy every input column")
    parser.add_argument(
        "--alert-rate", type=float, help="mark this share of rows (the riskiest) as high, e.g. 0.01"
    )
    parser.add_argument(
        "--no-reasons", action="store_true", help="leave out the reasons column (a little faster)"
    )
    parser.add_argument(
        "--expected-fraud-rate",
        type=float,
        help="the share of fraud you expect, e.g. 0.002: probabilities are set to average it",
    )
    parser.add_argument("--chunk-rows", type=int, default=settings.score_chunk_rows)
    parser.add_argument("--no-anomaly", action="store_true", help="skip anomaly detection")
    parser.add_argument("--timings", action="store_true", help="print stage timings on stderr")
    parser.add_argument("--json", action="store_true", help="print the whole summary as JSON")
    parser.add_argument("--summary", type=Path, help="write the whole summary as JSON to FILE")
    args = parser.parse_args(argv)

    bar = tqdm(total=None, unit="row", desc="reading", file=sys.stderr, leave=False)

    def progress(stage: str, done: int, total: int) -> None:
        if stage != bar.desc:  # a new stage: its own count (rows read, rows scored)
            bar.reset(total=total or None)
            bar.set_description(stage)
        bar.n = done
        bar.refresh()

    try:
        job_options = parse_options(
            {
                "top_k": args.top_k,
                "keep_columns": args.keep_columns,
                "alert_rate": args.alert_rate,
                "reasons": not args.no_reasons,
                "expected_fraud_rate": args.expected_fraud_rate,
            }
        )
        options = score_options(
            job_options, settings, chunk_rows=args.chunk_rows, anomaly=not args.no_anomaly
        )
        result = Pipeline(RegistrySource(settings), options, progress).run(
            args.input, args.output, args.errors
        )
    except InputError as exc:
        bar.close()
        print(f"score_csv: {exc}", file=sys.stderr)
        return 2
    bar.close()
    if args.timings:
        for stage, seconds in sorted(result.timings.items()):
            print(f"{stage:40s} {seconds:8.3f} s", file=sys.stderr)
    for warning in result.methods_used["warnings"]:
        print(f"score_csv: warning: {warning}", file=sys.stderr)
    if args.summary is not None:
        args.summary.write_text(json.dumps(result.summary(), indent=2) + "\n")
    if args.json:
        print(json.dumps(result.summary(), indent=2))
    else:
        print("\n".join(describe(result.stats, result.methods_used, args.output)))
    return 0


def describe(stats: dict[str, Any], methods: dict[str, Any], output: Path) -> list[str]:
    """A few lines an analyst reads first: the counts, the rate, the models, the top rows."""
    rows = stats["total_transactions"]

    def share(n: int) -> str:
        return f"{n:,} ({n / max(rows, 1):.1%})"

    low, high = stats["fraud_rate_band"]
    lines = [
        f"Scored {rows:,} rows into {output}"
        + (
            f"; {stats['rows_failed']:,} not scored (see the errors file)"
            if stats["rows_failed"]
            else ""
        ),
        f"  high {share(stats['high_risk'])}, medium {share(stats['medium_risk'])}, "
        f"low {share(stats['low_risk'])}; anomalies {share(stats['anomalies_detected'])}",
    ]
    level = stats.get("fraud_rate_level", "estimated")
    rate = f"  fraud rate {stats['estimated_fraud_rate']:.2%}"
    if level == "estimated":
        rate += f" (plausible {low:.2%} to {high:.2%}; without labels a rough guide)"
    else:
        rate += f" (level from the {level})" if level == "team labels" else " (as stated)"
    lines.append(rate)
    if team := methods.get("team_model"):
        role = "leads" if team.get("leads_ranking") else "sets the level"
        lines.append(f"  team model: {team['name']} {role}")
    models = ", ".join(f"{m['name']} (similarity {m['similarity']:.2f})" for m in methods["models"])
    lines.append(f"  reference models: {models or 'none (the file is ranked by its own evidence)'}")
    for row in stats.get("riskiest_rows", [])[:3]:
        why = f": {row['reasons']}" if row["reasons"] else ""
        lines.append(f"  row {row['row_number']:,}  p={row['fraud_probability']:.3f}{why}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
