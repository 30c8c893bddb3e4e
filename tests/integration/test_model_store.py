"""The model store: memory, disk cache and object store, checksums, concurrent processes."""

from __future__ import annotations

import io
import multiprocessing
import uuid
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from shared.engine.bundle import sha256_file
from shared.library.cache import ModelIntegrityError, ModelNotFound, ModelStore
from shared.library.s3_migration import migrate
from shared.settings import Settings
from shared.storage import open_store
from tests.conftest import SMALL_LIBRARY

pytestmark = pytest.mark.integration
NAME = SMALL_LIBRARY[0]


@pytest.fixture
def in_s3(db: Session, registered_library: Path, settings: Settings) -> str:
    """The small library registered and migrated to a fresh bucket; returns the bucket."""
    bucket = f"fraud-cache-{uuid.uuid4().hex[:8]}"
    open_store(f"s3://{bucket}/", settings=settings).prepare(create=True)
    assert not migrate(db, settings, bucket, report=lambda _: None).failed
    return bucket


@pytest.fixture
def store(settings: Settings, tmp_path: Path) -> ModelStore:
    from shared.settings import load_settings

    return ModelStore(load_settings(model_cache_dir=tmp_path / "cache"))


def test_a_miss_downloads_then_memory_and_disk_serve(in_s3: str, store: ModelStore) -> None:
    bundle = store.load(NAME)
    assert store.stats == {"memory_hits": 0, "disk_hits": 0, "downloads": 1}
    assert store.load(NAME) is bundle
    assert store.stats["memory_hits"] == 1
    fresh = ModelStore(store.settings)  # a new process: empty memory, warm disk
    fresh.load(NAME)
    assert fresh.stats == {"memory_hits": 0, "disk_hits": 1, "downloads": 0}
    cached = store.folder_for(NAME, bundle.checksums)
    assert sorted(p.name for p in cached.iterdir()) == sorted(bundle.checksums)


def test_a_corrupt_cached_file_is_deleted_and_fetched_again(in_s3: str, store: ModelStore) -> None:
    model_file = store.folder_for(NAME, store.load(NAME).checksums) / "model.ubj"
    model_file.write_bytes(b"bit rot")
    fresh = ModelStore(store.settings)
    bundle = fresh.load(NAME)
    assert fresh.stats["downloads"] == 1
    assert sha256_file(model_file) == bundle.checksums["model.ubj"]


def test_a_corrupt_object_is_reported_naming_model_and_file(
    in_s3: str, store: ModelStore, settings: Settings
) -> None:
    key = f"library/{NAME}/1/features.json"
    open_store(f"s3://{in_s3}/", settings=settings).put_stream(key, io.BytesIO(b"{}"))
    with pytest.raises(ModelIntegrityError, match=f"model {NAME}: file features.json"):
        store.load(NAME)
    assert [p.name for p in store.cache_dir.iterdir()] == []  # no copy, no temp folder left


def test_clear_cache_forgets_one_or_all(in_s3: str, store: ModelStore) -> None:
    store.warm(SMALL_LIBRARY[:2])
    store.clear_cache(SMALL_LIBRARY[0])
    names = [p.name.rsplit("-", 1)[0] for p in store.cache_dir.iterdir()]
    assert names == [SMALL_LIBRARY[1]]
    store.load(SMALL_LIBRARY[0])
    assert store.stats["downloads"] == 3
    store.clear_cache()
    assert list(store.cache_dir.iterdir()) == []


def test_warm_loads_every_registered_model(in_s3: str, store: ModelStore) -> None:
    assert store.warm() == sorted(SMALL_LIBRARY)
    assert store.stats["downloads"] == 3


def test_an_unknown_model_is_a_clear_error(in_s3: str, store: ModelStore) -> None:
    with pytest.raises(ModelNotFound, match="no reference model named 'nope'"):
        store.load("nope")
    assert store.warm(["nope", NAME]) == [NAME]


def _warm_in_child(cache_dir: str, barrier, results) -> None:  # type: ignore[no-untyped-def]
    from shared.library.cache import ModelStore
    from shared.settings import load_settings
    from shared.storage.s3 import s3_client

    store = ModelStore(load_settings(model_cache_dir=cache_dir))
    gets = []
    client = s3_client(store.settings.s3_endpoint_url, store.settings.s3_region)
    client.meta.events.register("before-call.s3.GetObject", lambda **_: gets.append(1))
    barrier.wait(timeout=30)
    store.warm()
    bundle = store.load(NAME)
    results.put((store.stats["downloads"], len(gets), bundle.checksums["model.ubj"]))


def test_two_processes_warming_at_once_download_each_model_once(
    in_s3: str, store: ModelStore
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_warm_in_child, args=(str(store.cache_dir), barrier, results))
        for _ in range(2)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=120)
        assert proc.exitcode == 0
    outcomes = [results.get(timeout=5) for _ in procs]
    # Three models of four files: 3 downloads and 12 GETs between both processes, not 6 and 24.
    assert sum(downloads for downloads, _, _ in outcomes) == len(SMALL_LIBRARY)
    assert sum(gets for _, gets, _ in outcomes) == 4 * len(SMALL_LIBRARY)
    checksums = {checksum for _, _, checksum in outcomes}
    assert len(checksums) == 1
    entries = sorted(p.name for p in store.cache_dir.iterdir())
    assert len(entries) == 3 and entries[0].startswith(f"{SMALL_LIBRARY[0]}-")  # no temp folders
    mine = next(e for e in entries if e.startswith(f"{NAME}-"))
    assert sha256_file(store.cache_dir / mine / "model.ubj") == checksums.pop()


def test_checkouts_sharing_a_cache_keep_their_own_versions_of_a_model(
    in_s3: str, store: ModelStore, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    from sqlalchemy import select

    from shared.db.models import ReferenceModel

    ours = store.load(NAME)
    # Another checkout's library: a model of the same name with other files.
    row = db.scalars(select(ReferenceModel).where(ReferenceModel.name == NAME)).one()
    other = db.scalars(select(ReferenceModel).where(ReferenceModel.name == SMALL_LIBRARY[1])).one()
    saved = row.artifact_uri, dict(row.file_checksums)
    row.artifact_uri, row.file_checksums = other.artifact_uri, dict(other.file_checksums)
    db.commit()
    theirs = ModelStore(store.settings)
    with caplog.at_level("WARNING"):
        assert theirs.load(NAME).checksums != ours.checksums
        assert theirs.stats["downloads"] == 1
        row.artifact_uri, row.file_checksums = saved
        db.commit()
        again = ModelStore(store.settings)  # back in our checkout: our copy is still there
        assert again.load(NAME).checksums == ours.checksums
        assert again.stats == {"memory_hits": 0, "disk_hits": 1, "downloads": 0}
    assert not [r for r in caplog.records if r.levelname == "WARNING"]  # no re-fetch warnings
    assert len([p for p in store.cache_dir.iterdir() if p.name.startswith(NAME)]) == 2
