"""Process-wide logging set-up, called once by each entry point.

LOG_FORMAT=json writes one JSON object per line; every line logged while a job runs carries
its job id and stage (set with `job_context`).
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from shared.settings import Settings

FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s%(job)s: %(message)s"
JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("job_id", default=None)
STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("stage", default=None)


class _JobFields(logging.Filter):
    """Adds job_id and stage to every record (empty outside a job)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id = JOB_ID.get()
        record.job_id, record.stage = job_id, STAGE.get()
        record.job = f" [job {job_id}]" if job_id else ""
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
            "job_id": getattr(record, "job_id", None),
            "stage": getattr(record, "stage", None),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps({k: v for k, v in entry.items() if v is not None})


@contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Log lines inside carry this job id."""
    token = JOB_ID.set(job_id)
    try:
        yield
    finally:
        JOB_ID.reset(token)
        STAGE.set(None)


def set_stage(stage: str | None) -> None:
    STAGE.set(stage)


def configure_logging(settings: Settings) -> None:
    """Log to stderr at the configured level and format (idempotent)."""
    root = logging.getLogger()
    if not any(getattr(h, "_fraudscore", False) for h in root.handlers):
        handler: logging.Handler = logging.StreamHandler()
        handler._fraudscore = True  # type: ignore[attr-defined]
        handler.addFilter(_JobFields())
        root.addHandler(handler)
    for handler in root.handlers:
        if getattr(handler, "_fraudscore", False):
            handler.setFormatter(
                JsonFormatter() if settings.log_format == "json" else logging.Formatter(FORMAT)
            )
    root.setLevel(settings.log_level)
