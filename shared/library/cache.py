"""Model store: memory LRU -> disk cache (MODEL_CACHE_DIR/<name>-<digest>/) -> object store.

The disk cache is content-addressed: a folder's name carries a digest of the files' sha256s,
so checkouts, test runs and library versions that share MODEL_CACHE_DIR (default
/tmp/model_cache) never read or replace each other's copies.

Downloads land in a temporary folder, every sha256 is checked against the registry, and the
folder is renamed into place atomically: two processes loading one model end with one good
copy. A corrupt file is deleted and fetched again once, then reported naming model and file.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path

from shared.db.models import LIBRARY
from shared.db.session import session_scope
from shared.engine.bundle import ArtifactError, ModelBundle, load_bundle, sha256_file
from shared.engine.matching import ModelInfo
from shared.library.registry import get_model, model_info, record_usage, visible_to
from shared.settings import Settings, get_settings
from shared.storage import open_store

logger = logging.getLogger(__name__)
DIGEST_CHARS = 16


class ModelNotFound(LookupError):
    """No reference model of that name in the registry."""


class ModelIntegrityError(ArtifactError):
    """A model file stays corrupt after a fresh download."""


class ModelStore:
    """Loads reference models for one process; thread-safe."""

    def __init__(self, settings: Settings | None = None, max_in_memory: int = 64) -> None:
        self.settings = settings or get_settings()
        self.cache_dir = Path(self.settings.model_cache_dir)
        self.max_in_memory = max_in_memory
        self._memory: OrderedDict[tuple[str, str], ModelBundle] = OrderedDict()
        self._lock = threading.RLock()
        self.stats = {"memory_hits": 0, "disk_hits": 0, "downloads": 0}

    def load(self, name: str, owner: str = LIBRARY) -> ModelBundle:
        """A ready bundle for the newest version of `name` (the owner's team model, or the
        library's)."""
        with session_scope(self.settings.db_url) as session:
            row = get_model(session, name, owner)
            if row is None:
                raise ModelNotFound(f"no reference model named {name!r}")
            uri, checksums, key = row.artifact_uri, dict(row.file_checksums), (row.owner, name)
        with self._lock:
            bundle = self._memory.get(key)
            if bundle is not None and bundle.checksums == checksums:
                self._memory.move_to_end(key)
                self.stats["memory_hits"] += 1
                return bundle
            bundle = self._from_disk_or_download(name, uri, checksums)
            self._memory[key] = bundle
            self._memory.move_to_end(key)
            while len(self._memory) > self.max_in_memory:
                self._memory.popitem(last=False)
            return bundle

    def folder_for(self, name: str, checksums: dict[str, str]) -> Path:
        """The cache folder of this version of `name` (its files' sha256s make the address)."""
        digest = hashlib.sha256(
            "\n".join(f"{f}={h}" for f, h in sorted(checksums.items())).encode()
        ).hexdigest()
        return self.cache_dir / f"{name}-{digest[:DIGEST_CHARS]}"

    def _folders_of(self, name: str) -> list[Path]:
        """Every cached version of `name`."""
        if not self.cache_dir.is_dir():
            return []
        return [
            child
            for child in self.cache_dir.iterdir()
            if child.name.rsplit("-", 1)[0] == name
            and len(child.name.rsplit("-", 1)[-1]) == DIGEST_CHARS
        ]

    def _from_disk_or_download(self, name: str, uri: str, checksums: dict[str, str]) -> ModelBundle:
        folder = self.folder_for(name, checksums)
        bundle = self._from_disk(name, folder, checksums)
        if bundle is not None:
            return bundle
        # One download per machine: the processes sharing this cache take turns, and whoever
        # waited finds the copy the other one made.
        with _locked(self.cache_dir):
            bundle = self._from_disk(name, folder, checksums)
            if bundle is not None:
                return bundle
            self._download(name, uri, checksums, folder)
        self.stats["downloads"] += 1
        return load_bundle(folder, name, checksums)

    def _from_disk(self, name: str, folder: Path, checksums: dict[str, str]) -> ModelBundle | None:
        """The cached copy, or None (a damaged one is removed)."""
        if not folder.is_dir():
            return None
        try:
            bundle = load_bundle(folder, name, checksums)
        except ArtifactError as exc:  # content-addressed: only damage makes a copy differ
            logger.warning("model %s: cached copy is corrupt (%s); re-fetching", name, exc)
            shutil.rmtree(folder, ignore_errors=True)
            return None
        self.stats["disk_hits"] += 1
        return bundle

    def _download(self, name: str, uri: str, checksums: dict[str, str], folder: Path) -> None:
        """Fetch every file into a temp folder, verify, then rename it into place."""
        store = open_store(uri, settings=self.settings)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".{name}-"))
        try:
            for file_name, expected in checksums.items():
                target = tmp / file_name
                for attempt in (1, 2):
                    store.get_file(file_name, target)
                    if sha256_file(target) == expected:
                        break
                    target.unlink()
                    logger.warning(
                        "model %s: %s failed its checksum (try %d)", name, file_name, attempt
                    )
                else:
                    raise ModelIntegrityError(
                        f"model {name}: file {file_name} does not match its sha256 after re-download"  # noqa: E501
                    )
            try:
                os.rename(tmp, folder)
            except OSError:
                # Another process renamed its copy first; theirs is as good as ours.
                if not folder.is_dir():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def clear_cache(self, name: str | None = None) -> None:
        """Forget one model (or all) in memory and on disk."""
        with self._lock:
            for key in [k for k in self._memory if name is None or k[1] == name]:
                self._memory.pop(key, None)
            if name:
                for folder in self._folders_of(name):
                    shutil.rmtree(folder, ignore_errors=True)
            elif self.cache_dir.is_dir():
                for child in self.cache_dir.iterdir():
                    shutil.rmtree(child, ignore_errors=True)

    def warm(self, names: Iterable[str] | None = None) -> list[str]:
        """Load these models (default: every registered one); names that failed are logged."""
        if names is None:  # the shared library (team models load on their first job)
            from sqlalchemy import select

            from shared.db.models import ReferenceModel

            with session_scope(self.settings.db_url) as session:
                query = select(ReferenceModel.name).where(ReferenceModel.owner == LIBRARY)
                names = sorted(set(session.scalars(query).all()))
        loaded = []
        for name in names:
            try:
                self.load(name)
                loaded.append(name)
            except Exception as exc:
                logger.error("warm-up: cannot load model %s: %s", name, exc)
        return loaded


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on a folder, across the processes of this machine (flock)."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


class RegistrySource:
    """Models for scoring one owner's jobs: the shared library and the owner's team models
    (metadata from the registry, bundles from a ModelStore)."""

    def __init__(
        self,
        settings: Settings | None = None,
        store: ModelStore | None = None,
        owner: str = LIBRARY,
    ) -> None:
        self.settings = settings or get_settings()
        self.store = store or ModelStore(self.settings)
        self.owner = owner

    def models(self) -> list[ModelInfo]:
        from sqlalchemy import select

        from shared.db.models import ReferenceModel

        with session_scope(self.settings.db_url) as session:
            query = select(ReferenceModel).where(visible_to(self.owner))
            rows = session.scalars(query.order_by(ReferenceModel.name)).all()
            return [model_info(r) for r in rows]

    def load(self, name: str) -> ModelBundle:
        return self.store.load(name, self.owner)

    def record_usage(self, names: list[str]) -> None:
        with session_scope(self.settings.db_url) as session:
            record_usage(session, names, self.owner)
