"""The Celery app: `celery -A worker.celery_app:app worker` (and flower)."""

from __future__ import annotations

import logging

import pyarrow as pa
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from shared.db.session import dispose_engines
from shared.logs import configure_logging
from shared.processes import hand_back_freed_memory
from shared.service.queue import create_celery
from shared.service.reconcile import Reconciler
from shared.service.runner import sweep_temp, warm_models
from shared.settings import get_settings

logger = logging.getLogger(__name__)
settings = get_settings()
configure_logging(settings)
hand_back_freed_memory()  # before the pool forks: every process inherits it
app = create_celery(settings, include=["worker.tasks"])


@worker_process_init.connect
def _fresh_process(**_: object) -> None:
    # Pooled DB connections must not be shared with the parent across fork.
    dispose_engines()
    # Arrow's CSV reading and compute keep to the process's share of the cores, as scoring does.
    pa.set_cpu_count(settings.threads)
    # Warm this process's model cache so the first job pays no download.
    try:
        loaded = warm_models()
        logger.info("model cache warm: %d models", len(loaded))
    except Exception:  # an empty or unreachable registry must not stop the worker
        logger.exception("model cache warm-up failed")


_reconciler: Reconciler | None = None


@worker_ready.connect
def _start_reconciler(**_: object) -> None:
    # In the worker's main process: re-queue jobs whose attempt or broker message was lost.
    global _reconciler
    removed = sweep_temp()  # what workers killed mid-job left in the temp folder
    if removed:
        logger.info("removed %d abandoned temporary folders", removed)
    _reconciler = Reconciler(settings, app).start()


@worker_shutdown.connect
def _stop_reconciler(**_: object) -> None:
    if _reconciler is not None:
        _reconciler.stop()
