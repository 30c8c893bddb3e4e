"""Train a model from a labeled file and add it to the shared library, in one command:
`python scripts/full_automl.py --dataset FILE.csv [--label COL] [--name NAME]`. It registers
the model and, when OBJECT_STORE_URI is s3://, moves its files there; the next job whose file
has its columns is scored with it (the workers fetch it on first use). `--no-register` only
writes the model folder.

The model learns from all the file's usable columns and is weighed against the label-free
score on the file's own labels, out of time. `--roles-only` trains a library-style reference
model instead (role features only, as the shipped library's)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from scripts import setup
from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.library.cache import RegistrySource
from shared.library.registry import row_values, upsert
from shared.settings import Settings, get_settings
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
    parser.add_argument("--no-register", action="store_true", help="only write the folder")
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
    if args.no_register:
        print("next: python scripts/populate_reference_models.py (registers it)", file=sys.stderr)
        return 0
    return register(settings, result.folder)


def register(settings: Settings, folder: Path) -> int:
    """Register the model folder in the library, then move local models to the store when
    that is S3 (the set-up step's last step)."""
    upgrade(settings.db_url)
    with session_scope(settings.db_url) as session:
        values = row_values(folder)
        outcome = upsert(session, values)
        session.commit()
    print(f"registered {values['name']} ({outcome})", file=sys.stderr)
    try:
        setup.to_store(settings, say=lambda line: print(line, file=sys.stderr))
    except setup.SetupError as exc:
        print(f"full_automl: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
