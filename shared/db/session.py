"""Engines and sessions: one engine per URL and process."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.orm import Session, sessionmaker

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


STATEMENT_TIMEOUT_MS = 60_000


def _create(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # No call may hold a request or a job for ever: connecting, waiting for a pooled connection
    # and each statement are bounded.
    bounded = {"connect_timeout": 5, "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS}"}
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        pool_timeout=10,
        connect_args=bounded if parsed.get_backend_name() == "postgresql" else {},
    )


def get_engine(url: str) -> Engine:
    """The process's engine for url; a SQLite file gets its folder and pragmas."""
    with _lock:
        if url not in _engines:
            _engines[url] = _create(url)
        return _engines[url]


def sessionmaker_for(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


def dispose_engines() -> None:
    """Forget pooled connections inherited across fork (call in each new worker process)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose(close=False)


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = sessionmaker_for(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rows_changed(session: Session, statement: Any) -> int:
    """Run a conditional UPDATE; how many rows it changed (0: the condition no longer held)."""
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        statement.execution_options(synchronize_session=False)
    )
    return int(result.rowcount)
