"""Move reference models to S3 (and back): estimate, dry run, migrate, verify, roll back."""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

from shared.db.session import session_scope
from shared.library import s3_migration as mm
from shared.settings import get_settings
from shared.storage import StoreNotReady, open_store


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    parser = argparse.ArgumentParser(description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--estimate", action="store_true", help="size and cost, no upload")
    mode.add_argument("--dry-run", action="store_true", help="list what would be uploaded")
    mode.add_argument("--verify", action="store_true", help="check every S3 model's files")
    mode.add_argument("--rollback", action="store_true", help="move models back to local")
    parser.add_argument("--bucket", help="S3 bucket (default: OBJECT_STORE_URI's bucket)")
    parser.add_argument(
        "--prefix", help="key prefix in the bucket (default: OBJECT_STORE_URI's, then library/)"
    )
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
        bucket, prefix = library_place(settings.store_uri, args.bucket, args.prefix)
        if not bucket:
            print(
                "migrate: name a bucket with --bucket (OBJECT_STORE_URI is not s3://)",
                file=sys.stderr,
            )
            return 2
        try:  # a dry run checks it too: it would fail the same way
            open_store(f"s3://{bucket}/{prefix}/", settings=settings).prepare(create=False)
        except StoreNotReady as exc:
            print(f"migrate: {exc}", file=sys.stderr)
            return 2
        outcome = mm.migrate(session, settings, bucket, prefix, dry_run=args.dry_run)
        print(outcome.render("would migrate" if args.dry_run else "migrated"))
        return 1 if outcome.failed else 0


def library_place(store_uri: str, bucket: str | None, prefix: str | None) -> tuple[str, str]:
    """The bucket and key prefix reference models go to: --bucket/--prefix, else the object
    store's bucket and prefix, then `library`."""
    parts = urlsplit(store_uri)
    if bucket is None and parts.scheme == "s3":
        bucket = parts.netloc
        prefix = prefix or "/".join(p for p in (parts.path.strip("/"), "library") if p)
    return bucket or "", (prefix or "library").strip("/")


if __name__ == "__main__":
    sys.exit(main())
