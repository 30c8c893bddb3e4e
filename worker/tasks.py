"""Task shells: take ids, call one shared function, report."""

from __future__ import annotations

import os
import socket
from typing import Any

from shared.service.fanout import merge_parts, run_part, run_scoring_job
from shared.service.queue import TASK_MERGE, TASK_PART, TASK_PING, TASK_SCORE, TASK_TRAIN
from shared.service.runner import INFRASTRUCTURE_ERRORS
from shared.service.training import run_training
from worker.celery_app import app


@app.task(name=TASK_PING)
def ping() -> dict[str, object]:
    """Health round trip: who answered."""
    return {"pong": True, "host": socket.gethostname(), "pid": os.getpid()}


# A job's task is retried with backoff while the database or broker is away.
JOB_RETRIES: dict[str, Any] = {
    "autoretry_for": INFRASTRUCTURE_ERRORS,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 12,
}


@app.task(name=TASK_SCORE, **JOB_RETRIES)
def score_job(job_id: str) -> str:
    """Run one scoring job to its final state (idempotent: a finished job is left alone).
    While the database or broker is away the task is retried with backoff (then the reconciler
    takes over), never acknowledged as done. A large file goes out in parts (`score_part`)."""
    return run_scoring_job(job_id, app)


@app.task(name=TASK_PART, **JOB_RETRIES)
def score_part(job_id: str, attempt: int, part: int) -> str:
    """Score one part of a large file with its job's plan (once; the last one sends the
    merge)."""
    return run_part(job_id, attempt, part, app)


@app.task(name=TASK_MERGE, **JOB_RETRIES)
def merge(job_id: str, attempt: int) -> str:
    """Join a large file's scored parts in file order, publish them and end the job."""
    return merge_parts(job_id, attempt)


@app.task(name=TASK_TRAIN, **JOB_RETRIES)
def train_model(job_id: str) -> str:
    """Run one training job to its final state (idempotent, as score_job): a team model
    trained on the owner's labels and registered for that owner."""
    return run_training(job_id)
