"""Fixtures: app, client, db, object_store, worker, on real PostgreSQL, Redis and S3 (moto)."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared.db.migrate import upgrade
from shared.db.models import Base
from shared.db.session import session_scope
from shared.service.auth import create_token
from shared.settings import Settings, get_settings
from shared.storage import ObjectStore, open_store
from tests import services

_STARTED: list[str] = []
_STOPS: list[Callable[[], None]] = []


def pytest_configure(config: pytest.Config) -> None:
    """On a machine without PostgreSQL or Redis, throwaway ones for this run."""
    said, stops = services.start_missing_services()
    _STARTED.extend(said)
    _STOPS.extend(stops)


def pytest_unconfigure(config: pytest.Config) -> None:
    while _STOPS:
        _STOPS.pop()()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return _STARTED


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The machine's Redis, on a db index of the tests' own, emptied before and after."""
    client = redis.Redis.from_url(services.TEST_REDIS_URL)
    client.flushdb()
    yield services.TEST_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database, migrated to head, dropped at the end."""
    with services.postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with services.moto_server() as url:
        yield url


@pytest.fixture(scope="session")
def service_env(
    redis_url: str, pg_url: str, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """Environment naming the test services; applied to this process and given to workers."""
    var_dir = tmp_path_factory.mktemp("var")
    env = {
        "FRAUDSCORE_ENV": "test",
        "DATABASE_URL": pg_url,
        "REDIS_URL": redis_url,
        "OBJECT_STORE_URI": f"s3://fraudscore-test-{uuid.uuid4().hex[:8]}/store/",
        "S3_ENDPOINT_URL": s3_endpoint,
        "S3_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "VAR_DIR": str(var_dir),
        "MODEL_CACHE_DIR": str(var_dir / "model_cache"),
        "READINESS_TIMEOUT_S": "3",
    }
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    open_store(settings=get_settings()).prepare(create=True)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def settings(service_env: dict[str, str]) -> Settings:
    return get_settings()


@pytest.fixture
def db(settings: Settings) -> Iterator[Session]:
    """A session on the test PostgreSQL database; tables are emptied afterwards."""
    with session_scope(settings.db_url) as session:
        yield session
    with session_scope(settings.db_url) as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())


@pytest.fixture(params=["file", "s3"])
def object_store(
    request: pytest.FixtureRequest, tmp_path: Path, service_env: dict[str, str]
) -> ObjectStore:
    """An empty store of each backend: a temp folder, or a fresh prefix in the moto bucket."""
    if request.param == "file":
        return open_store((tmp_path / "store").as_uri(), settings=get_settings())
    base = service_env["OBJECT_STORE_URI"].rstrip("/")
    return open_store(f"{base}/t-{uuid.uuid4().hex[:8]}/", settings=get_settings())


@pytest.fixture(scope="session")
def worker(service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Celery worker process on the test services; yields its log path."""
    from shared.service.queue import create_celery

    log = tmp_path_factory.mktemp("worker") / "worker.log"
    name = f"test-{uuid.uuid4().hex[:6]}"
    proc = services.start_worker(dict(os.environ, **service_env), name, log)
    celery = create_celery(get_settings())

    def answers() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited at start:\n{log.read_text()[-3000:]}")
        replies = celery.control.ping(timeout=0.5)
        return any(name in next(iter(reply)) for reply in replies)

    try:
        services.wait_for(answers, 60, "celery worker")
        yield str(log)
    finally:
        services.stop_process(proc)


@pytest.fixture
def app(service_env: dict[str, str]) -> Flask:
    from api import create_app

    return create_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


SMALL_LIBRARY = ("card_present_handbook_00", "ecommerce_snake_01", "mobile_money_abbr_02")


@pytest.fixture(scope="session")
def small_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three reference models trained on small simulated datasets (a folder of model folders)."""
    from shared.training.automl import train_frame
    from shared.training.simulator import reference_catalog, simulate, with_rows

    root = tmp_path_factory.mktemp("library")
    for spec in reference_catalog(3):
        assert spec.name in SMALL_LIBRARY
        frame = simulate(with_rows(spec, 4000))
        train_frame(frame, spec.name, root, extra_metadata={"domain": spec.domain})
    return root


@pytest.fixture
def alice(db: Session) -> dict[str, str]:
    """Bearer headers of an owner called alice (and of bob, below): two owners of the API."""
    return {"Authorization": f"Bearer {create_token(db, 'alice')}"}


@pytest.fixture
def bob(db: Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {create_token(db, 'bob')}"}


@pytest.fixture
def registered_library(db: Session, small_library: Path, tmp_path: Path) -> Path:
    """A copy of the small library (AUTOML_MODELS_DIR-like), registered on PostgreSQL."""
    from shared.library.registry import populate

    root = tmp_path / "automl_models"
    shutil.copytree(small_library, root)
    populate(db, root)
    return root


@pytest.fixture
def live_api(service_env: dict[str, str]) -> Iterator[str]:
    """The API served over real HTTP on a free loopback port (a thread of this process)."""
    import threading

    from werkzeug.serving import make_server

    from api import create_app

    port = services.free_port()
    server = make_server("127.0.0.1", port, create_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
