"""Bearer-token authentication for the JSON API."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import g, request

from api.services import services
from shared.errors import Unauthorized
from shared.service.auth import owner_for


def request_owner() -> str | None:
    """The owner of the request's live bearer token, if any."""
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if not token:
        return None
    with services().session() as session:
        return owner_for(session, token)


def require_token(view: Callable[..., Any]) -> Callable[..., Any]:
    """401 unless `Authorization: Bearer <token>` names a live token; sets g.owner."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        owner = request_owner()
        if owner is None:
            raise Unauthorized("a valid 'Authorization: Bearer <token>' is required")
        g.owner = owner
        return view(*args, **kwargs)

    return wrapped
