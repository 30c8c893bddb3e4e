"""Register the model folders in reference_models (adds new, updates changed, skips unchanged)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.library.registry import populate
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models-dir", type=Path, help="default: AUTOML_MODELS_DIR")
    args = parser.parse_args(argv)
    settings = get_settings()
    models_dir = args.models_dir or settings.models_dir
    if not models_dir.is_dir():
        print(f"populate: no models folder at {models_dir}", file=sys.stderr)
        return 2
    upgrade(settings.db_url)
    with session_scope(settings.db_url) as session:
        summary = populate(session, models_dir)
    print(summary.render())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
