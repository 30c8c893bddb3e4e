"""Alembic migrations, driven from code (`python scripts/migrate.py` or `alembic`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at url up to revision."""
    command.upgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    """The revision the database at url is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    from shared.db.session import get_engine

    with get_engine(url).connect() as conn:  # the process's engine, with its time limits
        return MigrationContext.configure(conn).get_current_revision()


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
