"""Score an unlabeled CSV offline, with exactly the code path the workers run.

python scripts/score_csv.py INPUT.csv --output OUT.csv [--errors ERR.csv] [--top-k 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

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
    parser.add_argument("--chunk-rows", type=int, default=settings.score_chunk_rows)
    parser.add_argument("--no-anomaly", action="store_true", help="skip anomaly detection")
    parser.add_argument("--timings", action="store_true", help="print stage timings on stderr")
    args = parser.parse_args(argv)

    bar = tqdm(total=0, unit="row", desc="reading", file=sys.stderr, leave=False)

    def progress(stage: str, done: int, total: int) -> None:
        bar.set_description(stage)
        if total and bar.total != total:
            bar.total = total
        bar.n = done
        bar.refresh()

    try:
        job_options = parse_options(
            {
                "top_k": args.top_k,
                "keep_columns": args.keep_columns,
                "alert_rate": args.alert_rate,
                "reasons": not args.no_reasons,
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
    print(json.dumps(result.summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
