"""Move reference models to S3 (and back): estimate, dry run, migrate, verify, roll back."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from shared.db.session import session_scope
from shared.library import s3_migration as mm
from shared.settings import get_settings


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--estimate", action="store_true", help="size and cost, no upload")
    mode.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    mode.add_argument("--verify", action="store_true", help="check every S3 model's files")
    mode.add_argument("--rollback", action="store_true", help="move models back to local")
    parser.add_argument("--bucket", help="S3 bucket (default: OBJECT_STORE_URI's bucket)")
    parser.add_argument("--prefix", default="models", help="key prefix in the bucket")
    parser.add_argument("--price-per-gb-month", type=float, default=mm.Prices.storage_gb_month)
    parser.add_argument("--put-price-per-1000", type=float, default=mm.Prices.put_per_1000)
    parser.add_argument("--get-price-per-1000", type=float, default=mm.Prices.get_per_1000)
    args = parser.parse_args(argv)

    with session_scope(settings.db_url) as session:
        if args.estimate:
            prices = mm.Prices(
                args.price_per_gb_month, args.put_price_per_1000, args.get_price_per_1000
            )
            print(mm.estimate(session, prices).render())
            return 0
        if args.verify:
            outcome = mm.verify(session, settings)
            print(outcome.render("verified"))
            return 1 if outcome.failed else 0
        if args.rollback:
            outcome = mm.rollback(session, settings, settings.models_dir)
            print(outcome.render("rolled back"))
            return 1 if outcome.failed else 0
        bucket = args.bucket or _configured_bucket(settings.store_uri)
        if not bucket:
            print(
                "migrate: name a bucket with --bucket (OBJECT_STORE_URI is not s3://)",
                file=sys.stderr,
            )
            return 2
        outcome = mm.migrate(session, settings, bucket, args.prefix, dry_run=args.dry_run)
        print(outcome.render("would migrate" if args.dry_run else "migrated"))
        return 1 if outcome.failed else 0


def _configured_bucket(uri: str) -> str | None:
    parts = urlsplit(uri)
    return parts.netloc if parts.scheme == "s3" else None


if __name__ == "__main__":
    sys.exit(main())
