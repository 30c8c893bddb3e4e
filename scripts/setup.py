"""Set up everything the services need: `python scripts/setup.py`. Safe to run at every deploy.

Migrates the database, checks the object store (making its bucket where the credentials
allow), builds the reference library where the registry lacks it and registers it, and moves
it into the store when that is S3. The Procfile's `release`, compose's `setup` service and
`make run` all run it; a second run changes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from scripts.build_reference_library import build_and_register
from scripts.migrate_models_to_s3 import library_place
from shared.db.migrate import current_revision, upgrade
from shared.db.models import LIBRARY, ReferenceModel
from shared.db.session import session_scope
from shared.library import s3_migration
from shared.library.build import outside_catalog, to_build
from shared.library.registry import STORAGE_S3, populate
from shared.settings import Settings, get_settings
from shared.storage import StoreNotReady, open_store
from shared.training.simulator import reference_catalog

Say = Callable[[str], None]


class SetupError(Exception):
    """A step that cannot be done; the message says what to do."""


def _say(line: str) -> None:
    print(line, flush=True)


def database(settings: Settings, say: Say = _say) -> None:
    """Migrate the database to the newest schema."""
    try:
        before = current_revision(settings.db_url)
        upgrade(settings.db_url)
        after = current_revision(settings.db_url)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise SetupError(f"database {_shown(settings.db_url)}: {reason} (DATABASE_URL)") from None
    done = "up to date" if before == after else f"migrated {before or 'empty'} -> {after}"
    say(f"database  {_shown(settings.db_url)} ({done})")


def store(settings: Settings, create: bool = True, say: Say = _say) -> None:
    """The object store can be written; a missing bucket is made when `create`."""
    try:
        found = open_store(settings=settings).prepare(create=create)
    except StoreNotReady as exc:
        raise SetupError(f"object store: {exc} (OBJECT_STORE_URI={settings.store_uri})") from None
    say(f"objects   {settings.store_uri} ({'bucket created' if found == 'created' else 'ready'})")


def library(settings: Settings, say: Say = _say) -> None:
    """Build the catalog models the registry lacks (and those an older recipe built), then
    register the folders; nothing to build when every catalog model is already in S3."""
    count = settings.reference_library_size
    specs = reference_catalog(count, rows_scale=settings.reference_rows_scale)
    with session_scope(settings.db_url) as session:
        query = select(ReferenceModel.name).where(
            ReferenceModel.owner == LIBRARY, ReferenceModel.storage_type == STORAGE_S3
        )
        in_store = set(session.scalars(query).all())
    if all(spec.name in in_store for spec in specs):
        say(f"library   {count} reference models registered, in the object store")
        return
    if others := outside_catalog(settings.models_dir, count):
        say(
            f"library   {len(others)} model folder(s) not in the catalog are registered too "
            f"(an older simulator's, or your own): {', '.join(others)}"
        )
    todo, stale = to_build(settings.models_dir, [s for s in specs if s.name not in in_store])
    if not todo:
        with session_scope(settings.db_url) as session:
            summary = populate(session, settings.models_dir)
        changed = len(summary.added) + len(summary.updated)
        unchanged = len(summary.skipped)
        say(f"library   {settings.models_dir} ({unchanged} unchanged, {changed} registered)")
        return
    what = (
        f"{len(todo)} of {count} reference models"
        if len(todo) < count
        else f"{count} reference models (first run only)"
    )
    if stale:
        what += f", {len(stale)} of them built by an older catalog or simulator"
    say(f"library   building {what}...")
    if build_and_register(settings, count, settings.reference_rows_scale, verbose=False) != 0:
        raise SetupError("the reference library could not be registered (see the lines above)")


def to_store(settings: Settings, say: Say = _say) -> None:
    """Move registered models kept on local disk into the S3 store (verified, row by row)."""
    bucket, prefix = library_place(settings.store_uri, None, None)
    if not bucket:
        return  # a file:// store: models stay in their folders
    with session_scope(settings.db_url) as session:
        outcome = s3_migration.migrate(session, settings, bucket, prefix, report=lambda _: None)
    for name, reason in outcome.failed:
        say(f"models    FAILED {name}: {reason}")
    if outcome.failed:
        raise SetupError(
            f"{len(outcome.failed)} models could not be moved to s3://{bucket}/{prefix}/"
        )
    moved = f"moved {len(outcome.done)}" if outcome.done else "nothing to move"
    say(f"models    s3://{bucket}/{prefix}/ ({moved}; {len(outcome.skipped)} already there)")


def run(settings: Settings, create_bucket: bool = True, say: Say = _say) -> None:
    """Every step, in order; raises SetupError at the first that fails."""
    database(settings, say)
    store(settings, create_bucket, say)
    library(settings, say)
    to_store(settings, say)


def _shown(url: str) -> str:
    """A database URL without its password."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--no-create-bucket",
        action="store_true",
        help="stop when the bucket is missing instead of creating it",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        run(get_settings(), create_bucket=not args.no_create_bucket)
    except SetupError as exc:
        print(f"setup     FAILED: {exc}", file=sys.stderr)
        return 1
    print(f"setup     done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
