"""Migrations go up and down on PostgreSQL and SQLite, and match the models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from shared.db.migrate import downgrade, upgrade
from shared.db.models import Base
from shared.db.session import get_engine
from tests import services

pytestmark = pytest.mark.integration
TABLES = {"reference_models", "jobs", "api_tokens", "label_sets", "owner_settings"}


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
    else:
        with services.postgres_database() as url:
            yield url


def tables(url: str) -> set[str]:
    return set(inspect(get_engine(url)).get_table_names()) - {"alembic_version"}


def test_upgrade_creates_the_tables_and_matches_the_models(empty_db: str) -> None:
    upgrade(empty_db)
    assert tables(empty_db) == TABLES
    with get_engine(empty_db).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_downgrade_removes_them_and_upgrade_again_restores(empty_db: str) -> None:
    upgrade(empty_db)
    downgrade(empty_db, "base")
    assert tables(empty_db) == set()
    upgrade(empty_db)
    assert tables(empty_db) == TABLES


def test_upgrade_twice_is_a_no_op(empty_db: str) -> None:
    upgrade(empty_db)
    upgrade(empty_db)
    assert tables(empty_db) == TABLES
