"""Create an API token for an owner (printed once), or revoke one.

python scripts/create_token.py --owner NAME
python scripts/create_token.py --revoke TOKEN
"""

from __future__ import annotations

import argparse
import sys

from shared.db.migrate import upgrade
from shared.db.session import session_scope
from shared.service.auth import create_token, revoke
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--owner", help="who the token acts for")
    group.add_argument("--revoke", metavar="TOKEN")
    args = parser.parse_args(argv)
    settings = get_settings()
    upgrade(settings.db_url)
    with session_scope(settings.db_url) as session:
        if args.revoke:
            if not revoke(session, args.revoke):
                print("create_token: no live token like that", file=sys.stderr)
                return 1
            print("revoked")
            return 0
        try:
            token = create_token(session, args.owner)
        except ValueError as exc:
            print(f"create_token: {exc}", file=sys.stderr)
            return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
