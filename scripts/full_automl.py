"""Train one reference model: `python scripts/full_automl.py --dataset FILE.csv [--label COL]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.settings import get_settings
from shared.training.automl import TrainingError, train_csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, type=Path, help="labeled CSV file")
    parser.add_argument("--label", help="label column (default: inferred from the names)")
    parser.add_argument("--name", help="model name (default: the file's name)")
    parser.add_argument("--out", type=Path, help="models folder (default: AUTOML_MODELS_DIR)")
    args = parser.parse_args(argv)
    out = args.out or get_settings().models_dir
    try:
        result = train_csv(args.dataset, out, label=args.label, name=args.name)
    except TrainingError as exc:
        print(f"full_automl: {exc}", file=sys.stderr)
        return 2
    print(
        json.dumps(
            {
                "name": result.name,
                "folder": str(result.folder),
                "roles": result.roles,
                "metrics": result.metrics,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
