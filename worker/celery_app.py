"""The Celery app: `celery -A worker.celery_app:app worker` (and flower)."""

from __future__ import annotations

from celery.signals import worker_process_init

from shared.db.session import dispose_engines
from shared.logs import configure_logging
from shared.queue import create_celery
from shared.settings import get_settings

settings = get_settings()
configure_logging(settings)
app = create_celery(settings, include=["worker.tasks"])


@worker_process_init.connect
def _fresh_process(**_: object) -> None:
    # Pooled DB connections must not be shared with the parent across fork.
    dispose_engines()
