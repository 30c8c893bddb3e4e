"""Stream a multipart upload's file part straight into the object store.

The body is read in 1 MiB pieces through werkzeug's sans-IO multipart decoder; file data goes
through a bounded queue to a thread that writes it to the store, so neither memory nor local
disk ever holds the whole file.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable
from typing import IO, Any

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from shared.errors import InputError, TooLarge
from shared.storage import ObjectStore

PIECE = 1 << 20
FIELD_LIMIT = 64 * 1024
# The size limit is on the file; the form around it (fields, part headers) may add this much.
FORM_OVERHEAD = 1 << 20
MAX_PARTS = 50


class _QueueReader:
    """A readable stream fed by a queue of byte strings (None ends it)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue(maxsize=8)
        self._buffer = b""
        self._done = False

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._buffer) < size):
            item = self.queue.get()
            if item is None:
                self._done = True
            else:
                self._buffer += item
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


class _StoreWriter:
    """Runs store.put_stream(key, ...) on a thread while the request is being read."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self.reader = _QueueReader()
        self.error: BaseException | None = None
        self.size = 0
        self.thread = threading.Thread(target=self._run, args=(store, key), daemon=True)
        self.thread.start()

    def _run(self, store: ObjectStore, key: str) -> None:
        try:
            self.size = store.put_stream(key, self.reader)  # type: ignore[arg-type]
        except BaseException as exc:
            self.error = exc
            while self.reader.queue.get() is not None:  # drain so the producer never blocks
                pass

    def write(self, data: bytes) -> None:
        if data:
            self.reader.queue.put(bytes(data))

    def close(self) -> int:
        self.reader.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.size


def _read_more(decoder: MultipartDecoder, body: IO[bytes], read: int, limit: int) -> int:
    """Feed the decoder the body's next piece; the bytes read so far."""
    piece = body.read(PIECE)
    read += len(piece)
    if read > limit + FORM_OVERHEAD:
        raise TooLarge(f"uploads are limited to {limit} bytes")
    decoder.receive_data(piece or None)
    return read


def _next_event(decoder: MultipartDecoder) -> Any:
    """The decoder's next event, its refusals said in words."""
    try:
        event = decoder.next_event()
    except RequestEntityTooLarge:  # werkzeug's words: "data value ... exceeds the capacity"
        raise InputError(
            f"the form has more than {MAX_PARTS} parts: send the file and its options only"
        ) from None
    if isinstance(event, Field) and event.name == "file":
        raise InputError(
            "the `file` part has no filename, so it reads as a form field: send the CSV as a "
            "file (curl -F file=@data.csv)"
        )
    return event


def _abandon(
    store: ObjectStore, writer: _StoreWriter | None, upload: dict[str, Any] | None
) -> None:
    """Stop a failed upload's writer and remove what it stored: no partial upload is left."""
    if writer is not None:
        with contextlib.suppress(BaseException):
            writer.close()
    if upload is not None:
        store.delete(upload["key"])


def stream_multipart(
    body: IO[bytes],
    boundary: bytes,
    store: ObjectStore,
    key_for: Any,
    limit: int,
    before_file: Callable[[dict[str, str]], object] | None = None,
) -> tuple[dict[str, str], dict[str, Any] | None]:
    """(form fields, {"key", "filename", "size"} of the `file` part or None). `before_file`
    sees the fields sent before the file part and may refuse them before anything is stored."""
    decoder = MultipartDecoder(boundary, max_parts=MAX_PARTS)
    fields: dict[str, str] = {}
    upload: dict[str, Any] | None = None
    writer: _StoreWriter | None = None
    field_name, field_data = None, b""
    read = written = 0
    try:
        while True:
            event = _next_event(decoder)
            if isinstance(event, NeedData):
                read = _read_more(decoder, body, read, limit)
            elif isinstance(event, File) and event.name == "file" and upload is not None:
                raise InputError("send one file per request: the form has a second `file` part")
            elif isinstance(event, File) and event.name == "file":
                if before_file is not None:
                    before_file(fields)
                key = key_for(event.filename or "upload.csv")
                upload = {"key": key, "filename": event.filename}
                writer = _StoreWriter(store, key)
                field_name = None
            elif isinstance(event, Field | File):
                field_name, field_data = event.name, b""  # other parts are small form fields
            elif isinstance(event, Data):
                if field_name is None and writer is not None and upload and "size" not in upload:
                    written += len(event.data)
                    if written > limit:
                        raise TooLarge(f"uploads are limited to {limit} bytes")
                    writer.write(event.data)
                    if not event.more_data:
                        upload["size"] = writer.close()
                        writer = None
                elif field_name is not None:
                    field_data += event.data
                    if len(field_data) > FIELD_LIMIT:
                        raise InputError(f"form field {field_name!r} is too long")
                    if not event.more_data:
                        fields[field_name] = field_data.decode("utf-8", "replace")
                        field_name = None
            elif isinstance(event, Epilogue):
                break
    except BaseException:
        _abandon(store, writer, upload)
        raise
    if upload is not None and "size" not in upload:
        store.delete(upload["key"])
        raise InputError("the file part ended before the end of the body")
    return fields, upload
