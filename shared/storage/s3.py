"""Object store in an S3 bucket (s3://bucket/prefix/); any S3 endpoint (AWS, MinIO, moto)."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shared.processes import HOST, running
from shared.storage.base import (
    PROBE_KEY,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    StoreNotReady,
    clean_key,
)

if TYPE_CHECKING:
    from shared.settings import Settings


# Markers of writes in progress: PARTIAL_PREFIX + HOST/pPID-ID, holding the key being written.
PARTIAL_PREFIX = ".partial/"
_WRITER = re.compile(r"^p(?P<pid>\d+)-[0-9a-f]+$")


@lru_cache(maxsize=8)
def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """One boto3 client per endpoint, built on first use (clients are thread-safe)."""
    import boto3
    from botocore.config import Config

    # Bounded calls: a silent endpoint costs at most 3 x (5 s + 30 s), never a thread for good.
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=30
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


def _missing(error: Exception) -> bool:
    return _code(error) in ("404", "NoSuchKey", "NotFound")


class S3ObjectStore(ObjectStore):
    """Large objects go through boto3's managed transfer: streamed, multipart above a threshold."""

    scheme = "s3"

    def __init__(self, uri: str, settings: Settings) -> None:
        super().__init__(uri)
        parts = urlsplit(uri)
        if not parts.netloc:
            raise ValueError(f"s3:// store needs a bucket, got {uri!r}")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/") + "/" if parts.path.strip("/") else ""
        self._endpoint = settings.s3_endpoint_url
        # Presigned URLs name the endpoint clients reach; a private endpoint alone is none.
        self._public = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self.linkable = bool(settings.s3_public_endpoint_url or not settings.s3_endpoint_url)
        self._region = settings.s3_region
        self._threshold = settings.s3_multipart_threshold
        self._ttl = settings.presigned_url_ttl_s

    @property
    def client(self) -> Any:
        return s3_client(self._endpoint, self._region)

    def _key(self, key: str) -> str:
        return self.prefix + clean_key(key)

    def _transfer(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self._threshold, multipart_chunksize=self._threshold
        )

    def put_stream(self, key: str, stream: IO[bytes]) -> int:
        """Streamed (multipart when large); while it runs, a marker names the writer's host and
        pid, so a restart can abort the multipart upload of a writer that was killed."""
        counter = _CountingReader(stream)
        marker = f"{PARTIAL_PREFIX}{HOST}/p{os.getpid()}-{uuid.uuid4().hex}"
        self.client.put_object(Bucket=self.bucket, Key=self._key(marker), Body=key.encode())
        try:
            self.client.upload_fileobj(
                counter, self.bucket, self._key(key), Config=self._transfer()
            )
        finally:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(marker))
        return counter.count

    def open(self, key: str) -> Any:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from None
            raise

    def put_file(self, key: str, path: Path) -> int:
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=self._transfer())
        return Path(path).stat().st_size

    def get_file(self, key: str, path: Path) -> int:
        try:
            self.client.download_file(
                self.bucket, self._key(key), str(path), Config=self._transfer()
            )
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                raise ObjectNotFound(key) from None
            raise
        return Path(path).stat().st_size

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.ClientError as exc:
            if _missing(exc):
                return None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ObjectNotFound(key)
        return int(head["ContentLength"])

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix):
            for item in page.get("Contents", []):
                yield ObjectInfo(item["Key"][len(self.prefix) :], int(item["Size"]))

    def sweep_partial(self, older_than_s: float) -> int:
        """Abort the multipart uploads of this host's dead writers at once (their markers),
        and any other started more than older_than_s ago that no live writer here holds."""
        removed, busy = 0, set()
        for info in list(self.list(f"{PARTIAL_PREFIX}{HOST}/")):
            found = _WRITER.match(info.key.rsplit("/", 1)[-1])
            with self.open(info.key) as body:
                target = self._key(body.read().decode())
            if found is not None and running(int(found["pid"])):
                busy.add(target)
                continue
            removed += self._abort(partial(_is_upload_of, target), target)
            self.delete(info.key)
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
        return removed + self._abort(
            lambda upload: upload["Initiated"] <= cutoff and upload["Key"] not in busy, self.prefix
        )

    def _abort(self, which: Callable[[dict[str, Any]], bool], prefix: str) -> int:
        """Abort the multipart uploads under `prefix` that `which` picks; how many."""
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for upload in page.get("Uploads", []):
                if which(upload):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def move(self, src: str, dst: str) -> None:
        if not self.exists(src):
            raise ObjectNotFound(src)
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        self.client.copy(source, self.bucket, self._key(dst), Config=self._transfer())
        self.delete(src)

    def url(self, key: str, expires_s: int | None = None) -> str:
        return s3_client(self._public, self._region).generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self._key(key)},
            ExpiresIn=expires_s or self._ttl,
        )

    def prepare(self, create: bool = False) -> str:
        """Check the bucket (creating it when `create` and the credentials allow), then write
        and delete a probe object under the prefix."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"bucket {self.bucket!r}"
        found = "exists"
        try:
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in ("404", "NoSuchBucket", "NotFound"):
                    raise StoreNotReady(f"{where}: {_denied(exc)}") from None
                if not create:
                    raise StoreNotReady(
                        f"{where} does not exist: create it, or run `python scripts/setup.py`, "
                        "which creates it where the credentials allow"
                    ) from None
                self._create_bucket(where)
                found = "created"
            try:
                self.client.put_object(Bucket=self.bucket, Key=self._key(PROBE_KEY), Body=b"ok")
                self.client.delete_object(Bucket=self.bucket, Key=self._key(PROBE_KEY))
            except ClientError as exc:
                raise StoreNotReady(f"{where} cannot be written: {_denied(exc)}") from None
        except BotoCoreError as exc:
            endpoint = self._endpoint or "AWS"
            raise StoreNotReady(f"cannot reach the S3 endpoint {endpoint}: {exc}") from None
        return found

    def _create_bucket(self, where: str) -> None:
        from botocore.exceptions import ClientError

        extra: dict[str, Any] = {}
        if self._region and self._region != "us-east-1":
            extra["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **extra)
        except ClientError as exc:
            raise StoreNotReady(
                f"{where} does not exist and these credentials cannot create it "
                f"({_code(exc)}): create it, or name a bucket that exists"
            ) from None


def _is_upload_of(key: str, upload: dict[str, Any]) -> bool:
    return bool(upload["Key"] == key)


def _code(error: Exception) -> str:
    return str(getattr(error, "response", {}).get("Error", {}).get("Code", ""))


def _denied(error: Exception) -> str:
    """A client error in words: access denied names the credentials."""
    code = _code(error)
    if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"{code}: check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy"
    return code or str(error)


class _CountingReader:
    """Wraps a stream to count the bytes boto3 reads from it."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.count += len(data)
        return data
