"""Apply database migrations: `python scripts/migrate.py [REVISION]` (default head)."""

from __future__ import annotations

import sys

from shared.db.migrate import downgrade, upgrade
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    url = get_settings().db_url
    if argv and argv[0] == "downgrade":
        downgrade(url, argv[1] if len(argv) > 1 else "base")
    else:
        upgrade(url, argv[0] if argv else "head")
    return 0


if __name__ == "__main__":
    sys.exit(main())
