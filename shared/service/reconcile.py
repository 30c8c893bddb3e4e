"""The jobs table is the truth; the reconciler makes the broker and the workers agree with it.

Every SWEEP_S each worker runs `sweep`: a `running` job whose heartbeat is older than
STALE_AFTER_S lost its attempt (worker killed, machine gone) and is queued again, or failed
once it has had MAX_ATTEMPTS; a `queued` job older than QUEUED_GRACE_S that is neither
waiting in the broker nor reserved by a worker (the broker lost it, or the API died between
recording and sending it) is sent again. Every change is a conditional update, so several
workers sweeping at once act on a job once. Hourly, `purge_expired` applies RETENTION_DAYS.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from celery import Celery
from sqlalchemy import or_, select, update

from shared import states as S
from shared.db.models import Job, utcnow
from shared.db.session import rows_changed, session_scope
from shared.service.fanout import clean_work, done_parts, load_meta
from shared.service.keys import work_prefix
from shared.service.queue import (
    QUEUE_JOBS,
    QUEUE_PARTS,
    QUEUE_TRAINING,
    enqueue_job,
    enqueue_part,
    part_task_id,
)
from shared.service.runner import gave_up, heartbeat_older_than, held_by, sweep_temp
from shared.settings import Settings
from shared.storage import ObjectNotFound, ObjectStore, open_store

logger = logging.getLogger(__name__)
PURGE_EVERY_S = 3600  # retention runs hourly


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)  # running jobs whose attempt was lost
    resent: list[str] = field(default_factory=list)  # queued jobs the broker did not hold
    failed: list[str] = field(default_factory=list)  # out of attempts
    resent_parts: list[str] = field(default_factory=list)  # parts of large files, or merges


def broker_job_ids(celery: Celery, reserved: bool = True) -> set[str]:
    """Ids of the tasks waiting in the broker's jobs, parts and training queues and, with
    `reserved`, those reserved (unacked) by a worker, alive or not."""
    ids: set[str] = set()
    with celery.connection_for_read() as connection:
        client = connection.default_channel.client
        for name in (QUEUE_JOBS, QUEUE_PARTS, QUEUE_TRAINING):
            for queue in client.scan_iter(match=f"{name}*"):
                if client.type(queue) in (b"list", "list"):
                    for raw in client.lrange(queue, 0, -1):
                        ids.add(json.loads(raw)["headers"]["id"])
        for raw in client.hvals("unacked") if reserved else ():
            message = json.loads(raw)[0]
            ids.add(message["headers"]["id"])
    return ids


def sweep(settings: Settings, celery: Celery) -> SweepReport:
    """One pass over the jobs table (see the module docstring)."""
    report = SweepReport()
    now = utcnow()
    stale = now - timedelta(seconds=settings.stale_after_s)
    with session_scope(settings.db_url) as session:
        lost = session.execute(
            select(Job.id, Job.attempts, Job.kind, Job.parts).where(
                Job.state == S.RUNNING,
                heartbeat_older_than(stale),
            )
        ).all()
    held: set[str] | None = None
    waiting_parts: set[str] | None = None
    for job_id, attempts, kind, parts in lost:
        if parts is not None:  # sent out in parts: the parts that were lost go again
            # No part of a job whose heartbeat is stale runs (each beats while it does): a
            # part reserved by a worker is a dead worker's, and goes again.
            if waiting_parts is None:
                waiting_parts = broker_job_ids(celery, reserved=False)
            resent = resend_parts(settings, celery, str(job_id), attempts, waiting_parts)
            report.resent_parts.extend(f"{job_id}.{p}" for p in resent)
        else:
            _requeue(settings, celery, report, (job_id, attempts, kind), stale)
    grace = now - timedelta(seconds=settings.queued_grace_s)
    with session_scope(settings.db_url) as session:
        waiting = session.execute(
            select(Job.id, Job.kind).where(Job.state == S.QUEUED, Job.updated_at < grace)
        ).all()
    if waiting:
        held = broker_job_ids(celery) if held is None else held
        for job_id, kind in waiting:
            if str(job_id) in held:
                continue
            with session_scope(settings.db_url) as session:  # touch: one resend per grace
                touched = update(Job).where(Job.id == job_id, Job.state == S.QUEUED)
                if not rows_changed(session, touched.values(updated_at=utcnow())):
                    continue
            enqueue_job(celery, str(job_id), kind)
            report.resent.append(str(job_id))
    for what in ("requeued", "resent", "failed", "resent_parts"):
        jobs = getattr(report, what)
        if jobs:
            logger.warning("reconciler: %s %s", what, ", ".join(jobs))
    return report


def _requeue(
    settings: Settings,
    celery: Celery,
    report: SweepReport,
    job: tuple[uuid.UUID, int, str],
    stale: datetime,
) -> None:
    """Queue a job whose attempt was lost again, or fail it once out of attempts."""
    job_id, attempts, kind = job
    was_lost = (
        Job.id == job_id,
        Job.state == S.RUNNING,
        Job.attempts == attempts,
        heartbeat_older_than(stale),
    )
    with session_scope(settings.db_url) as session:
        if attempts >= settings.max_attempts:
            values: dict[str, Any] = {
                "state": S.FAILED,
                "stage": None,
                "finished_at": utcnow(),
                "error_message": gave_up(attempts),
            }
            if rows_changed(session, update(Job).where(*was_lost).values(**values)):
                report.failed.append(str(job_id))
            return
        requeue = update(Job).where(*was_lost).values(state=S.QUEUED, stage=None)
        if not rows_changed(session, requeue):
            return
    enqueue_job(celery, str(job_id), kind)
    report.requeued.append(str(job_id))


def resend_parts(
    settings: Settings, celery: Celery, job_id: str, attempt: int, held: set[str]
) -> list[str]:
    """Send again the parts of a job's attempt that are neither done nor held by the broker
    (a worker lost them), or the merge once every part is done; what was sent."""
    store, prefix = open_store(settings=settings), work_prefix(job_id, attempt)
    try:
        count = len(load_meta(job_id, attempt)["part_rows"])
    except ObjectNotFound:  # its files are gone: the job is ending
        return []
    with session_scope(settings.db_url) as session:  # the job's own beat while it waits
        beat = update(Job).where(*held_by(uuid.UUID(job_id), attempt))
        if not rows_changed(session, beat.values(heartbeat_at=utcnow())):
            return []
    done = done_parts(store, prefix)
    missing: list[int | None] = [p for p in range(count) if p not in done]
    sent = []
    for part in missing or [None]:
        if part_task_id(job_id, attempt, part) not in held:
            enqueue_part(celery, job_id, attempt, part)
            sent.append("merge" if part is None else f"p{part}")
    return sent


def purge_expired(settings: Settings, store: ObjectStore) -> list[str]:
    """Delete the uploads, results and work files of jobs finished more than RETENTION_DAYS ago
    (an upload that a more recent job still uses is kept); the jobs purged."""
    if not settings.retention_days:
        return []
    cutoff = utcnow() - timedelta(days=settings.retention_days)
    expired = (Job.finished_at.is_not(None), Job.finished_at < cutoff, Job.purged_at.is_(None))
    with session_scope(settings.db_url) as session:
        jobs = session.execute(
            select(Job.id, Job.input_uri, Job.output_uri, Job.error_uri).where(*expired)
        ).all()
    purged = []
    for job_id, *uris in jobs:
        with session_scope(settings.db_url) as session:
            still_used = session.scalar(
                select(Job.id)
                .where(
                    Job.input_uri == uris[0],
                    or_(Job.finished_at.is_(None), Job.finished_at >= cutoff),
                )
                .limit(1)
            )
        for uri in uris[1:] if still_used else uris:
            key = store.key_of(uri) if uri else None
            if key is not None:
                store.delete(key)
        clean_work(store, f"work/{job_id}/")  # a part stored after its job ended
        with session_scope(settings.db_url) as session:
            stamp = update(Job).where(Job.id == job_id).values(purged_at=utcnow())
            rows_changed(session, stamp)
        purged.append(str(job_id))
    if purged:
        logger.info("retention: removed the files of %d jobs", len(purged))
    return purged


class Reconciler:
    """Runs `sweep` every SWEEP_S on a daemon thread (one per worker main process)."""

    def __init__(self, settings: Settings, celery: Celery) -> None:
        self.settings, self.celery = settings, celery
        self._last_purge = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reconciler", daemon=True)

    def start(self) -> Reconciler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                sweep(self.settings, self.celery)
                sweep_temp()  # folders of pool processes killed mid-job
                if time.monotonic() - self._last_purge > PURGE_EVERY_S:
                    purge_expired(self.settings, open_store(settings=self.settings))
                    self._last_purge = time.monotonic()
            except Exception as exc:  # a service is away: the next sweep tries again
                logger.warning("reconciler: sweep failed: %s", exc)
            if self._stop.wait(self.settings.sweep_s):
                return

    def stop(self) -> None:
        self._stop.set()
