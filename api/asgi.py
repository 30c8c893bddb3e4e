"""ASGI entry point: `gunicorn -c gunicorn.conf.py api.asgi:app` (uvicorn workers).

The Flask app runs on a thread pool behind a2wsgi; uvicorn reads requests on its event loop,
so a client trickling its headers costs a socket, not one of the threads (a gthread worker
gave each such client a thread until the request was whole). Bodies still stream: the app
reads the upload from the event loop piece by piece, and a client that stops sending is let
go after REQUEST_IDLE_S (its thread freed, its partial upload deleted).
"""

from __future__ import annotations

import asyncio
from typing import Any

from a2wsgi import WSGIMiddleware

from api import create_app
from shared.settings import get_settings

THREADS = 16  # requests handled at once per worker process (as 8 threads x 2 gthread workers)

Message = dict[str, Any]


class IdleLimit:
    """Ends a request body that sends nothing for `idle_s`: to the app, the client left."""

    def __init__(self, app: Any, idle_s: float) -> None:
        self.app, self.idle_s = app, idle_s

    async def __call__(self, scope: Message, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def receive_or_give_up() -> Message:
            try:
                return await asyncio.wait_for(receive(), self.idle_s)
            except TimeoutError:
                return {"type": "http.disconnect"}

        return await self.app(scope, receive_or_give_up, send)


app = IdleLimit(
    WSGIMiddleware(create_app(), workers=THREADS),  # type: ignore[arg-type]  # werkzeug vs a2wsgi
    get_settings().request_idle_s,
)
