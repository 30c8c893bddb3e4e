"""Every object-store operation, on every backend (a folder, and S3 over HTTP via moto)."""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
from pathlib import Path

import pytest

from shared.storage import ObjectNotFound, ObjectStore

pytestmark = pytest.mark.integration


class OneWayStream(io.RawIOBase):
    """A non-seekable stream of n pseudo-random bytes: nothing can read it twice or size it."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self.left, 1 << 20)
        chunk = os.urandom(size)
        buffer[:size] = chunk
        self.digest.update(chunk)
        self.left -= size
        return size


def sha256_of(stream: io.RawIOBase) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: stream.read(1 << 20), b""):
        digest.update(chunk)
    return digest.hexdigest()


def test_a_stream_round_trips(object_store: ObjectStore) -> None:
    source = OneWayStream(3 * 1024 * 1024 + 7)
    written = object_store.put_stream("uploads/a.csv", io.BufferedReader(source))
    assert written == 3 * 1024 * 1024 + 7
    with object_store.open("uploads/a.csv") as stream:
        assert sha256_of(stream) == source.digest.hexdigest()


def test_a_file_round_trips(object_store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(b"amount,ts\n12.5,2026-01-01\n")
    assert object_store.put_file("m/model.ubj", src) == src.stat().st_size
    dst = tmp_path / "out.bin"
    assert object_store.get_file("m/model.ubj", dst) == src.stat().st_size
    assert dst.read_bytes() == src.read_bytes()


def test_a_fetched_file_stays_as_it_was_fetched(object_store: ObjectStore, tmp_path: Path) -> None:
    """Whether the store copies or links it: a later write or delete of the key, or another
    key fetched to the same path, changes neither the file nor the stored objects."""
    object_store.put_stream("in/a.csv", io.BytesIO(b"first"))
    object_store.put_stream("in/b.csv", io.BytesIO(b"other"))
    local = tmp_path / "a.csv"
    object_store.get_file("in/a.csv", local)
    object_store.put_stream("in/a.csv", io.BytesIO(b"second"))
    assert local.read_bytes() == b"first"
    object_store.delete("in/a.csv")
    assert local.read_bytes() == b"first"
    object_store.put_stream("in/a.csv", io.BytesIO(b"third"))
    again = tmp_path / "again.csv"
    object_store.get_file("in/a.csv", again)
    object_store.get_file("in/b.csv", again)
    assert again.read_bytes() == b"other"
    with object_store.open("in/a.csv") as stream:
        assert stream.read() == b"third"


def test_exists_size_list_and_delete(object_store: ObjectStore) -> None:
    for key, body in [("b/2.txt", b"22"), ("a/1.txt", b"1"), ("b/1.txt", b"333")]:
        object_store.put_stream(key, io.BytesIO(body))
    assert object_store.exists("b/1.txt") and not object_store.exists("b/9.txt")
    assert object_store.size("b/1.txt") == 3
    assert [(i.key, i.size) for i in object_store.list("b/")] == [("b/1.txt", 3), ("b/2.txt", 2)]
    assert [i.key for i in object_store.list()] == ["a/1.txt", "b/1.txt", "b/2.txt"]
    object_store.delete("b/1.txt")
    object_store.delete("b/1.txt")  # deleting twice is fine
    assert [i.key for i in object_store.list("b/")] == ["b/2.txt"]


def test_a_missing_key_raises_object_not_found(object_store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound):
        object_store.open("nope.csv")
    with pytest.raises(ObjectNotFound):
        object_store.size("nope.csv")
    with pytest.raises(ObjectNotFound):
        object_store.get_file("nope.csv", tmp_path / "x")
    with pytest.raises(ObjectNotFound):
        object_store.move("nope.csv", "there.csv")


def test_move_replaces_the_target_and_removes_the_source(object_store: ObjectStore) -> None:
    object_store.put_stream("results/.tmp-1", io.BytesIO(b"new"))
    object_store.put_stream("results/out.csv", io.BytesIO(b"old"))
    object_store.move("results/.tmp-1", "results/out.csv")
    assert not object_store.exists("results/.tmp-1")
    with object_store.open("results/out.csv") as stream:
        assert stream.read() == b"new"


def test_join_streams_a_head_and_objects_in_order_into_one(object_store: ObjectStore) -> None:
    parts = [os.urandom(n) for n in (3 * 1024 * 1024 + 1, 0, 17)]
    for i, data in enumerate(parts):
        object_store.put_stream(f"parts/{i}", io.BytesIO(data))
    keys = [f"parts/{i}" for i in range(3)]
    written = object_store.join(keys, "joined.csv", b"a,b\n")
    assert written == 4 + sum(map(len, parts))
    with object_store.open("joined.csv") as stream:
        assert stream.read() == b"a,b\n" + b"".join(parts)
    with pytest.raises(ObjectNotFound):
        object_store.join(["parts/0", "parts/missing"], "other.csv")


def test_the_download_url_serves_the_object(object_store: ObjectStore) -> None:
    object_store.put_stream("r/p.csv", io.BytesIO(b"id,fraud_probability\n1,0.01\n"))
    with urllib.request.urlopen(object_store.url("r/p.csv", expires_s=60)) as response:
        assert response.read() == b"id,fraud_probability\n1,0.01\n"


def test_uri_for_names_the_object_under_the_root(object_store: ObjectStore) -> None:
    assert object_store.uri_for("a//b.csv") == object_store.uri.rstrip("/") + "/a/b.csv"


def test_large_s3_uploads_are_multipart(service_env: dict[str, str]) -> None:
    from shared.settings import get_settings
    from shared.storage import open_store

    store = open_store(service_env["OBJECT_STORE_URI"] + "mp/", settings=get_settings())
    size = 40 * 1024 * 1024  # above the 16 MiB default threshold
    source = OneWayStream(size)
    assert store.put_stream("big.bin", io.BufferedReader(source)) == size
    head = store.client.head_object(Bucket=store.bucket, Key=store._key("big.bin"))
    assert head["ETag"].strip('"').endswith("-3")  # three 16 MiB parts
    with store.open("big.bin") as stream:
        assert sha256_of(stream) == source.digest.hexdigest()
    store.delete("big.bin")


KILLED_WRITER = """
import io, sys, time
from shared.settings import get_settings
from shared.storage import open_store

class Slow(io.RawIOBase):
    def readable(self): return True
    def readinto(self, buffer):
        if self.sent >= 20 * 1024 * 1024:  # one part sent: now hang, as a stuck client would
            time.sleep(3600)
        n = min(len(buffer), 1 << 20); buffer[:n] = b"x" * n; self.sent += n; return n
    sent = 0

open_store(sys.argv[1], settings=get_settings()).put_stream("upload.csv", io.BufferedReader(Slow()))
"""


def test_a_killed_writers_s3_upload_is_aborted_at_once_a_live_ones_kept(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import uuid

    from shared.processes import HOST
    from shared.settings import get_settings
    from shared.storage import open_store
    from shared.storage.s3 import PARTIAL_PREFIX
    from tests import services

    uri = service_env["OBJECT_STORE_URI"] + f"sweep-{uuid.uuid4().hex[:6]}/"
    store = open_store(uri, settings=get_settings())

    def uploads() -> list[str]:
        listed = store.client.list_multipart_uploads(Bucket=store.bucket, Prefix=store.prefix)
        return [u["Key"] for u in listed.get("Uploads", [])]

    writer = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, uri], env=dict(os.environ, **service_env)
    )
    services.wait_for(lambda: bool(uploads()) or writer.poll() is not None, 60, "an upload")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    # A live writer of this host: its upload is not touched.
    live = store.client.create_multipart_upload(Bucket=store.bucket, Key=store._key("live.csv"))
    marker = f"{PARTIAL_PREFIX}{HOST}/p{os.getpid()}-ab"  # as put_stream writes them
    store.client.put_object(Bucket=store.bucket, Key=store._key(marker), Body=b"live.csv")
    try:
        assert store.sweep_partial(older_than_s=3600) == 1  # at once, not after an hour
        assert uploads() == [store._key("live.csv")]
        assert [o.key for o in store.list(PARTIAL_PREFIX)] == [marker]
    finally:
        store.client.abort_multipart_upload(
            Bucket=store.bucket, Key=store._key("live.csv"), UploadId=live["UploadId"]
        )
        store.delete(marker)
