"""The object store interface every backend implements."""

from __future__ import annotations

import io
import posixpath
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO


class ObjectNotFound(KeyError):
    """No object under that key."""


class StoreNotReady(RuntimeError):
    """The store cannot be used as configured: its bucket is missing or cannot be written."""


# Written and deleted again by `prepare`: proof that these credentials may write.
PROBE_KEY = ".fraudscore-write-check"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


def clean_key(key: str) -> str:
    """Normalise a key; refuse absolute keys and keys that climb out of the store."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid object key {key!r}")
    normal = posixpath.normpath(key)
    if normal in (".", "..") or normal.startswith("../"):
        raise ValueError(f"invalid object key {key!r}")
    return normal


class ObjectStore(ABC):
    """Keys are '/'-separated paths below the store's root URI."""

    scheme: str
    # Whether `url` gives clients a link they can follow (else the API streams the file).
    linkable = False

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def sweep_partial(self, older_than_s: float) -> int:
        """Delete writes that never finished (a process killed mid-upload) and were last
        touched more than older_than_s ago; how many."""
        return 0

    @abstractmethod
    def put_stream(self, key: str, stream: IO[bytes]) -> int:
        """Write a readable binary stream under key without reading it whole; return bytes."""

    @abstractmethod
    def open(self, key: str) -> IO[bytes]:
        """A readable binary stream of the object (a context manager)."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> int:
        """Upload a local file; return its size."""

    @abstractmethod
    def get_file(self, key: str, path: Path) -> int:
        """Download to a local file; return its size."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with prefix, in key order."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    @abstractmethod
    def move(self, src: str, dst: str) -> None:
        """Put src under dst (replacing it) and remove src."""

    @abstractmethod
    def url(self, key: str, expires_s: int | None = None) -> str:
        """A download URL: presigned for remote stores, file:// for local ones."""

    def join(self, keys: Sequence[str], dst: str, head: bytes = b"") -> int:
        """Write `head`, then the objects under `keys` in order, as one object under `dst`,
        streamed (never whole in memory); its size."""
        return self.put_stream(dst, io.BufferedReader(_Joined(self, keys, head), 1 << 20))

    def uri_for(self, key: str) -> str:
        """The absolute URI of a key."""
        return self.uri.rstrip("/") + "/" + clean_key(key)

    def key_of(self, uri: str) -> str | None:
        """The key of an absolute URI inside this store, or None when it lies elsewhere."""
        root = self.uri.rstrip("/") + "/"
        if not uri.startswith(root):
            return None
        try:
            return clean_key(uri[len(root) :])
        except ValueError:
            return None

    def prepare(self, create: bool = False) -> str:
        """Check that the store can be written (a probe object, put and deleted); `create`
        makes a missing bucket or folder. What was found, for the operator; raises
        StoreNotReady saying what to do."""
        try:
            self.put_stream(PROBE_KEY, io.BytesIO(b"ok"))
            self.delete(PROBE_KEY)
        except OSError as exc:
            raise StoreNotReady(f"{self.uri} cannot be written: {exc}") from None
        return "writable"

    def ping(self) -> None:
        """Raise if the store cannot be reached."""
        next(iter(self.list("__ping__/")), None)


class _Joined(io.RawIOBase):
    """A readable stream of `head`, then of several objects one after the other."""

    def __init__(self, store: ObjectStore, keys: Sequence[str], head: bytes) -> None:
        self.store, self.keys, self.pending = store, list(keys), head
        self.current: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while True:
            if self.pending:
                n = min(len(buffer), len(self.pending))
                buffer[:n], self.pending = self.pending[:n], self.pending[n:]
                return n
            if self.current is None:
                if not self.keys:
                    return 0
                self.current = self.store.open(self.keys.pop(0))
            self.pending = self.current.read(min(len(buffer), 1 << 20))
            if not self.pending:
                self.current.close()
                self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()
