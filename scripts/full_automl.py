"""Train a team model from a labeled file: `python scripts/full_automl.py --dataset FILE.csv
[--label COL] [--name NAME]`, then `python scripts/populate_reference_models.py` registers it,
and every file of that schema is scored with it (`scripts/score_csv.py`).

The model learns from all the file's usable columns and is weighed against the label-free
score on the file's own labels, out of time. `--roles-only` trains a library-style reference
model instead (role features only, as the shipped library's)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from shared.library.cache import RegistrySource
from shared.settings import get_settings
from shared.training.automl import TrainingError, train_csv
from shared.training.team import train_team


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", required=True, type=Path, help="labeled CSV file")
    parser.add_argument("--label", help="label column (default: inferred from the names)")
    parser.add_argument("--name", help="model name (default: the file's name)")
    parser.add_argument("--out", type=Path, help="models folder (default: AUTOML_MODELS_DIR)")
    parser.add_argument(
        "--roles-only", action="store_true", help="a reference model of role features only"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    out = args.out or settings.models_dir
    name = args.name or args.dataset.name.split(".")[0]
    if not args.dataset.is_file():
        print(f"full_automl: no file {args.dataset}", file=sys.stderr)
        return 2
    try:
        if args.roles_only:
            result = train_csv(args.dataset, out, label=args.label, name=name)
        else:
            result = train_team(args.dataset, name, out, RegistrySource(settings), args.label)
    except (TrainingError, ValueError) as exc:
        print(f"full_automl: {exc}", file=sys.stderr)
        return 2
    report = {"name": result.name, "folder": str(result.folder), "roles": result.roles}
    print(json.dumps({**report, "metrics": result.metrics}, indent=2))
    print("next: python scripts/populate_reference_models.py (registers it)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
