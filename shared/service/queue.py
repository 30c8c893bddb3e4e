"""Celery wiring shared by the API (which only sends) and the worker (which also runs tasks)."""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery
from kombu import Exchange, Queue
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from shared.settings import Settings, get_settings

# Task names: the API enqueues by name and never imports worker code.
TASK_PING = "fraudscore.ping"
TASK_SCORE = "fraudscore.score_job"
TASK_TRAIN = "fraudscore.train_model"
TASK_PART = "fraudscore.score_part"
TASK_MERGE = "fraudscore.merge_parts"

# What a send raises while the broker is away.
BROKER_ERRORS: tuple[type[Exception], ...] = (KombuOperationalError, RedisError, OSError)

QUEUE_JOBS = "jobs"
QUEUE_CONTROL = "control"
QUEUE_TRAINING = "training"
# The parts of large files: a queue of their own, which workers take from in turn with the
# jobs queue, so a small job never waits behind a large file's parts.
QUEUE_PARTS = "parts"
QUEUES = (QUEUE_JOBS, QUEUE_PARTS, QUEUE_CONTROL, QUEUE_TRAINING)


class CeleryConfig:
    """Plain lowercase Celery settings, read by `config_from_object`."""

    task_serializer = "json"
    result_serializer = "json"
    accept_content = ("json",)
    timezone = "UTC"
    enable_utc = True
    # One job at a time per process; a job is re-run only if its worker dies (tasks are idempotent).
    worker_prefetch_multiplier = 1
    task_acks_late = True
    task_reject_on_worker_lost = True
    task_track_started = True
    task_send_sent_event = True
    worker_send_task_events = True
    result_expires = 24 * 3600
    broker_connection_retry_on_startup = True
    # A send while the broker is away fails within ~2 s (the API answers 503), not 20 s.
    task_publish_retry_policy = {
        "max_retries": 2,
        "interval_start": 0.2,
        "interval_step": 0.5,
        "interval_max": 1.0,
    }
    worker_hijack_root_logger = False
    # Each new worker process warms its model cache before taking jobs; allow it the time.
    worker_proc_alive_timeout = 120
    task_default_queue = QUEUE_JOBS
    task_default_exchange = QUEUE_JOBS
    task_default_routing_key = QUEUE_JOBS
    task_queues = tuple(Queue(q, Exchange(q), routing_key=q) for q in QUEUES)
    task_routes = {
        TASK_PING: {"queue": QUEUE_CONTROL},
        TASK_SCORE: {"queue": QUEUE_JOBS},
        TASK_TRAIN: {"queue": QUEUE_TRAINING},
        TASK_PART: {"queue": QUEUE_PARTS},
        TASK_MERGE: {"queue": QUEUE_PARTS},
    }

    def __init__(self, settings: Settings) -> None:
        self.broker_url = settings.broker_url
        self.result_backend = settings.result_backend
        self.task_soft_time_limit = settings.job_soft_time_limit_s
        self.task_time_limit = settings.job_time_limit_s
        self.worker_concurrency = settings.worker_concurrency
        # Redelivery of unacked jobs must wait longer than the longest job may run.
        transport = {
            "visibility_timeout": settings.visibility_timeout_s,
            "socket_connect_timeout": 3,
        }
        self.broker_transport_options = transport
        self.result_backend_transport_options = transport


def enqueue_job(celery: Celery, job_id: str, kind: str = "score") -> None:
    """Send a job by task name (scoring, or training on its own queue); the Celery task id is
    the job id (Flower shows it)."""
    task = TASK_TRAIN if kind == "train" else TASK_SCORE
    celery.send_task(task, args=[job_id], task_id=job_id)


def create_celery(settings: Settings | None = None, include: Sequence[str] = ()) -> Celery:
    """A Celery app configured from settings; `include` names task modules to import."""
    app = Celery("fraudscore", include=list(include))
    app.config_from_object(CeleryConfig(settings or get_settings()))
    return app


def part_task_id(job_id: str, attempt: int, part: int | None) -> str:
    """The Celery task id of a part (None: the merge) of an attempt at a job."""
    return f"{job_id}.a{attempt}." + ("merge" if part is None else f"p{part}")


def enqueue_part(celery: Celery, job_id: str, attempt: int, part: int | None) -> None:
    """Send the scoring of one part of a job's file (None: the merge of all its parts)."""
    task_id = part_task_id(job_id, attempt, part)
    if part is None:
        celery.send_task(TASK_MERGE, args=[job_id, attempt], task_id=task_id)
    else:
        celery.send_task(TASK_PART, args=[job_id, attempt, part], task_id=task_id)
