"""Object store in a local folder (file:///abs/path), the embedded default."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from shared.processes import HOST, running
from shared.storage.base import ObjectInfo, ObjectNotFound, ObjectStore, clean_key

if TYPE_CHECKING:
    from shared.settings import Settings

_CHUNK = 1024 * 1024
_PART = re.compile(r"^\.tmp-(?P<host>[A-Za-z0-9._]+)-p(?P<pid>\d+)-[^-]*\.part$")


def _writer_gone(name: str) -> bool:
    """Whether a partial file was written by a process of this host that no longer runs."""
    found = _PART.match(name)
    return found is not None and found["host"] == HOST and not running(int(found["pid"]))


class FileObjectStore(ObjectStore):
    """Writes go to a temporary file in the same folder, then rename: readers never see half."""

    scheme = "file"

    def __init__(self, uri: str, settings: Settings | None = None) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file:// store needs an absolute local path, got {uri!r}")
        self.root = Path(unquote(parts.path))
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / clean_key(key)

    def _write(self, key: str, fill: Callable[[IO[bytes]], object]) -> int:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        # The writer's host and pid in the name: a restart removes what a dead one left.
        prefix = f".tmp-{HOST}-p{os.getpid()}-"
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                fill(out)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target.stat().st_size

    def put_stream(self, key: str, stream: IO[bytes]) -> int:
        return self._write(key, lambda out: shutil.copyfileobj(stream, out, _CHUNK))

    def open(self, key: str) -> IO[bytes]:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    def put_file(self, key: str, path: Path) -> int:
        with Path(path).open("rb") as src:
            return self.put_stream(key, src)

    def get_file(self, key: str, path: Path) -> int:
        """A hard link where the folders share a file system (no copy of a large upload: a
        stored file is never written in place, each write renames a new one over it), else a
        copy."""
        Path(path).unlink(missing_ok=True)  # never written through: it may be a link itself
        with contextlib.suppress(OSError):  # another file system, or no links there
            os.link(self._path(key), path)
            return Path(path).stat().st_size
        with self.open(key) as src, Path(path).open("wb") as out:
            shutil.copyfileobj(src, out, _CHUNK)
        return Path(path).stat().st_size

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        found = []
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames.sort()
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, path.stat().st_size))
        yield from sorted(found, key=lambda info: info.key)

    def sweep_partial(self, older_than_s: float) -> int:
        """`.tmp-*.part` files whose writer is gone: a process of this host that no longer
        runs, or (another host's) not written to for older_than_s."""
        cutoff = time.time() - older_than_s
        removed = 0
        for part in self.root.rglob(".tmp-*.part") if self.root.is_dir() else []:
            with contextlib.suppress(FileNotFoundError):
                if _writer_gone(part.name) or part.stat().st_mtime <= cutoff:
                    part.unlink()
                    removed += 1
        return removed

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        if not source.is_file():
            raise ObjectNotFound(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)

    def url(self, key: str, expires_s: int | None = None) -> str:
        return self._path(key).as_uri()
