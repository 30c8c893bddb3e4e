"""Readiness checks of each dependency, reported by name."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from celery import Celery
from kombu import Connection
from sqlalchemy import text

from shared.db.session import get_engine
from shared.settings import Settings
from shared.storage import open_store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def _database(settings: Settings, _app: Celery) -> str:
    with get_engine(settings.db_url).connect() as conn:
        conn.execute(text("SELECT 1"))
    return get_engine(settings.db_url).dialect.name


def _broker(settings: Settings, _app: Celery) -> str:
    timeout = settings.readiness_timeout_s
    with Connection(settings.broker_url, connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    return "reachable"


def _object_store(settings: Settings, _app: Celery) -> str:
    store = open_store(settings=settings)
    store.ping()
    return store.scheme


def _workers(settings: Settings, app: Celery) -> str:
    replies = app.control.ping(timeout=min(settings.readiness_timeout_s, 1.0))
    if not replies:
        raise RuntimeError("no worker answered")
    return f"{len(replies)} live"


CHECKS: dict[str, Callable[[Settings, Celery], str]] = {
    "database": _database,
    "broker": _broker,
    "object_store": _object_store,
    "workers": _workers,
}


def _result(name: str, future: Future[str], timeout: float) -> Check:
    try:
        return Check(name, True, future.result(timeout=timeout))
    except FutureTimeout:
        return Check(name, False, "timed out")
    except Exception as exc:  # each failure is reported, not raised
        logger.warning("readiness check %s failed: %s", name, exc)
        return Check(name, False, f"{type(exc).__name__}: {exc}"[:300])


def run_checks(settings: Settings, app: Celery) -> list[Check]:
    """Run the checks in parallel, each time-bounded; the workers check needs the broker."""
    timeout = settings.readiness_timeout_s + 1
    pool = ThreadPoolExecutor(max_workers=len(CHECKS))
    try:
        futures = {
            name: pool.submit(fn, settings, app) for name, fn in CHECKS.items() if name != "workers"
        }
        results = {name: _result(name, future, timeout) for name, future in futures.items()}
        if results["broker"].ok:
            results["workers"] = _result("workers", pool.submit(_workers, settings, app), timeout)
        else:
            results["workers"] = Check("workers", False, "unknown: broker unreachable")
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[name] for name in CHECKS]
