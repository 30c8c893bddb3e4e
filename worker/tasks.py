"""Task shells: take ids, call one shared function, report."""

from __future__ import annotations

import os
import socket

from shared.queue import TASK_PING
from worker.celery_app import app


@app.task(name=TASK_PING)
def ping() -> dict[str, object]:
    """Health round trip: who answered."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}
