"""Run one scoring job: input from the object store, pipeline, results back, state in the DB.

Idempotent: a finished job is left alone, so a redelivered task (worker lost mid-job) runs a
job at most to completion once; results are uploaded under temporary keys and moved into
place, so a client never sees half a file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import OperationalError as DatabaseError

from shared import states as S
from shared.db.models import Job, OwnerSettings, utcnow
from shared.db.session import rows_changed, session_scope
from shared.engine.options import JobOptions, ScoreOptions
from shared.engine.pipeline import Cancelled, Pipeline, Prepared, ScoreResult
from shared.errors import InputError
from shared.library.cache import ModelStore, RegistrySource
from shared.logs import job_context, set_stage
from shared.processes import running
from shared.service.keys import result_key
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, ObjectStore, open_store

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5
# Errors of the services around a job, not of the job: the task retries, the job waits.
INFRASTRUCTURE_ERRORS: tuple[type[Exception], ...] = (
    DatabaseError,
    BrokerError,
    RedisConnectionError,
)
STAGES = {
    "reading": S.STAGE_MATCHING,
    "matching": S.STAGE_MATCHING,
    "anomaly": S.STAGE_ANOMALY,
    "scoring": S.STAGE_SCORING,
    "writing": S.STAGE_WRITING,
}


@lru_cache(maxsize=1)
def process_model_store() -> ModelStore:
    """One model store per worker process: its memory cache stays warm between jobs."""
    return ModelStore(get_settings())


def warm_models() -> list[str]:
    """Load every registered model into this process (worker start-up)."""
    return process_model_store().warm()


def score_options(options: JobOptions, settings: Settings, **tuning: Any) -> ScoreOptions:
    """Pipeline options from a job's options, with the service's settings as defaults."""
    high = (
        settings.risk_high_threshold if options.high_threshold is None else options.high_threshold
    )
    medium = (
        settings.risk_medium_threshold
        if options.medium_threshold is None
        else options.medium_threshold
    )
    values: dict[str, Any] = {
        "top_k": options.top_k or settings.top_k,
        "keep_columns": options.keep_columns,
        "chunk_rows": settings.score_chunk_rows,
        "threads": settings.threads,
        "high_threshold": high,
        "medium_threshold": medium,
        "only_model": options.model_name,
        "alert_rate": options.alert_rate,
        # A job that sets its high threshold gets exactly that.
        "min_high_share": settings.risk_min_high_share if options.high_threshold is None else 0.0,
        "min_medium_share": (
            settings.risk_min_medium_share if options.medium_threshold is None else 0.0
        ),
        "reasons": options.reasons,
        "expected_fraud_rate": options.expected_fraud_rate,
    }
    return ScoreOptions(**{**values, **tuning})


@dataclass
class Claim:
    """What a running attempt needs from its job row."""

    owner: str
    input_uri: str
    options: JobOptions
    raw_options: dict[str, Any]


class JobFailed(Exception):
    """The job failed for a reason its owner can act on (raised so that Celery and Flower show
    the task as FAILURE with that reason)."""


def run_job(job_id: str, settings: Settings | None = None) -> str:
    """Run the job to a final state and return it. A job that fails raises JobFailed with the
    reason, internal errors are re-raised, both after the job row is marked failed."""
    with job_context(str(job_id)):
        return JobRunner(uuid.UUID(str(job_id)), settings or get_settings()).run()


class JobRunner:
    """One attempt at one job: claim, fetch, score, publish, or fail with a reason.

    Every change of state is a conditional update from `running`, so an attempt that lost its
    claim (cancelled, or taken over after its heartbeat went stale) changes nothing.
    """

    doing = "scoring"  # in messages

    def __init__(self, job_id: uuid.UUID, settings: Settings) -> None:
        self.job_id, self.settings = job_id, settings
        self.attempt = 0  # this attempt's number, set by claim
        self._last_progress = 0.0

    def run(self) -> str:
        claim = self.claim()
        if isinstance(claim, str):
            return claim
        beat = Heartbeat(self.job_id, self.attempt, self.settings)
        try:
            with tempfile.TemporaryDirectory(prefix=temp_prefix(f"job-{self.job_id}")) as tmp:
                return self.attempt_job(claim, Path(tmp))
        except Cancelled:
            return self.cancelled()
        except InputError as exc:
            self.finish(S.FAILED, error_message=str(exc))
            logger.info("job %s: failed: %s", self.job_id, exc)
            raise JobFailed(f"job {self.job_id}: {exc}") from None
        except INFRASTRUCTURE_ERRORS as exc:
            # The database, broker or store is away: not the job's fault. The job goes back to
            # `queued` (or, with the database away, stays `running` until its heartbeat is
            # stale), and the task is retried with backoff; the reconciler backs that up.
            logger.warning("job %s: a service is unavailable (%s); will retry", self.job_id, exc)
            with contextlib.suppress(Exception):  # hand the job back; this try does not count
                self.update(
                    state=S.QUEUED, stage=None, heartbeat_at=None, attempts=Job.attempts - 1
                )
            raise
        except Exception:
            logger.exception("job %s: internal error", self.job_id)
            message = f"internal error while {self.doing} (job {self.job_id}); see the worker log"
            self.finish(S.FAILED, error_message=message)
            raise
        finally:
            beat.stop()

    def attempt_job(self, claim: Claim, folder: Path) -> str:
        """Score the job's file and publish the results; the final state (`running` when the
        file went out in parts to many workers)."""
        store = open_store(settings=self.settings)
        self.clear_stale_results(store, claim.owner)
        local = self.fetch(store, claim.input_uri, folder)
        pipeline = self.pipeline(claim)
        prepared = pipeline.prepare(local, folder)
        spread = self.spread(pipeline, prepared, folder)
        if spread is not None:
            return spread
        with ThreadPoolExecutor(max_workers=pipeline.options.threads) as pool:
            output = folder / "predictions.csv"
            tallies = pipeline.score(prepared.plan, prepared.spool, prepared.index, output, pool)
        result = pipeline.result(prepared, tallies, folder / "errors.csv")
        self.update(stage=S.STAGE_WRITING)
        outputs = self.publish(store, claim.owner, folder, result)
        return self.succeed(result, *outputs)

    def claim(self) -> Claim | str:
        """Take the job (queued, or running with a stale heartbeat: its attempt is gone) and
        return what it needs, or the state that ends this attempt."""
        now = utcnow()
        stale = now - timedelta(seconds=self.settings.stale_after_s)
        with session_scope(self.settings.db_url) as session:
            taken = rows_changed(
                session,
                update(Job)
                .where(
                    Job.id == self.job_id,
                    or_(
                        Job.state == S.QUEUED,
                        and_(
                            Job.state == S.RUNNING,
                            heartbeat_older_than(stale),
                        ),
                    ),
                )
                .values(
                    state=S.RUNNING,
                    stage=S.STAGE_MATCHING,
                    started_at=now,
                    heartbeat_at=now,
                    attempts=Job.attempts + 1,
                    parts=None,
                ),
            )
            job = session.get(Job, self.job_id)
            if job is None:
                logger.warning("job %s: not found; nothing to do", self.job_id)
                return "missing"
            if not taken:
                logger.info("job %s: %s elsewhere; nothing to do", self.job_id, job.state)
                return job.state
            session.refresh(job)
            raw = dict(job.options or {})
            claim = Claim(job.owner, job.input_uri, JobOptions.model_validate(raw), raw)
            attempts = self.attempt = job.attempts
        if attempts > self.settings.max_attempts:
            reason = gave_up(attempts - 1)
            self.finish(S.FAILED, error_message=reason)
            logger.warning("job %s: %s", self.job_id, reason)
            raise JobFailed(f"job {self.job_id}: {reason}")
        logger.info("job %s: running (owner %s, attempt %d)", self.job_id, claim.owner, attempts)
        return claim

    def clear_stale_results(self, store: ObjectStore, owner: str) -> None:
        """Remove temporary result objects left by a killed attempt."""
        for stale in store.list(result_key(owner, self.job_id, ".tmp-")):
            store.delete(stale.key)

    def fetch(self, store: ObjectStore, input_uri: str, folder: Path) -> Path:
        """The job's input, copied to a local file."""
        source = store.key_of(input_uri)
        if source is None:
            raise InputError("the input is not in this service's object store")
        name = Path(source).name
        # The user's own file name, so that messages name the file they sent.
        local = folder / "input" / name
        local.parent.mkdir()
        try:
            store.get_file(source, local)
        except ObjectNotFound:
            raise InputError("the uploaded file is missing from the object store") from None
        return local

    def spread(self, pipeline: Pipeline, prepared: Prepared, folder: Path) -> str | None:
        """Hand the prepared file to many workers and return the job's state, or None to score
        it here (this runner always does; `fanout.PartsRunner` spreads large files)."""
        return None

    def pipeline(self, claim: Claim) -> Pipeline:
        """The job's pipeline: its options over the owner's defaults and the settings."""
        source = RegistrySource(self.settings, process_model_store(), claim.owner)
        with session_scope(self.settings.db_url) as session:
            own = session.get(OwnerSettings, claim.owner)
            default = own.expected_fraud_rate if own is not None else None
        return Pipeline(
            source,
            score_options(claim.options, self.settings, default_fraud_rate=default),
            self.progress,
            lambda: not self.holds(),
        )

    def publish(
        self, store: ObjectStore, owner: str, folder: Path, result: ScoreResult
    ) -> tuple[str, str | None]:
        """Upload the predictions (and errors, if any); their URIs."""
        output_uri = _publish(store, owner, self.job_id, folder / "predictions.csv")
        error_uri = None
        if result.stats["rows_failed"]:
            error_uri = _publish(store, owner, self.job_id, folder / "errors.csv")
        return output_uri, error_uri

    def succeed(self, result: ScoreResult, output_uri: str, error_uri: str | None) -> str:
        stats = result.stats
        stage_seconds = {k: round(v, 3) for k, v in result.timings.items() if ":" not in k}
        done = self.finish(
            S.SUCCEEDED,
            progress=100.0,
            output_uri=output_uri,
            error_uri=error_uri,
            stats=stats,
            methods={**result.methods_used, "stage_seconds": stage_seconds},
            rows_total=stats["total_transactions"],
            rows_failed=stats["rows_failed"],
            rows_done=stats["total_transactions"],
        )
        if not done:  # cancelled (or taken over) while publishing: take the results back
            if self.state() == S.CANCELLED:
                store = open_store(settings=self.settings)
                for uri in (output_uri, error_uri):
                    key = store.key_of(uri) if uri else None
                    if key is not None:
                        store.delete(key)
            return self.cancelled()
        logger.info("job %s: succeeded (%d rows)", self.job_id, stats["total_transactions"])
        return S.SUCCEEDED

    def cancelled(self) -> str:
        with session_scope(self.settings.db_url) as session:
            rows_changed(
                session,
                update(Job)
                .where(Job.id == self.job_id, Job.state == S.CANCELLED)
                .values(
                    stage=None,
                    heartbeat_at=None,
                    finished_at=func.coalesce(Job.finished_at, utcnow()),
                ),
            )
        state = self.state() or "missing"
        logger.info("job %s: stopped (%s)", self.job_id, state)
        return state

    def progress(self, stage: str, done: int, total: int) -> None:
        """Record progress at most every PROGRESS_EVERY_S (always while writing)."""
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_EVERY_S and stage != "writing":
            return
        self._last_progress = now
        set_stage(STAGES.get(stage, stage))
        values: dict[str, Any] = {"stage": STAGES.get(stage, stage), "rows_done": done}
        if total:
            values["rows_total"] = total
            values["progress"] = min(99.0, 100.0 * done / total)
        self.update(**values)

    def update(self, **values: Any) -> bool:
        """Change the job while this attempt holds it (running, and no later attempt took it
        over); False when it does not."""
        with session_scope(self.settings.db_url) as session:
            return bool(
                rows_changed(
                    session, update(Job).where(*held_by(self.job_id, self.attempt)).values(**values)
                )
            )

    def finish(self, state: str, **values: Any) -> bool:
        """End the attempt in `state` (only while it holds the job)."""
        return self.update(
            state=state, stage=None, finished_at=utcnow(), heartbeat_at=None, **values
        )

    def owner(self) -> str | None:
        """The job's owner while this attempt holds it (None: it does not)."""
        with session_scope(self.settings.db_url) as session:
            return session.scalar(select(Job.owner).where(*held_by(self.job_id, self.attempt)))

    def holds(self) -> bool:
        """Whether this attempt still holds the job (not cancelled, not taken over)."""
        return self.owner() is not None

    def state(self) -> str | None:
        with session_scope(self.settings.db_url) as session:
            job = session.get(Job, self.job_id)
            return job.state if job is not None else None


def temp_prefix(kind: str) -> str:
    """Temporary folders carry their process id, so a sweep can tell which are abandoned."""
    return f"{kind}-p{os.getpid()}-"


TEMP_FOLDER = re.compile(r"^(job-[0-9a-f-]{36}|fraudscore)-p(\d+)-")


def sweep_temp(root: Path | None = None) -> int:
    """Remove the temporary job folders and spools of processes that no longer exist (a worker
    killed mid-job cannot clean up after itself); how many."""
    removed = 0
    for folder in Path(root or tempfile.gettempdir()).iterdir():
        found = TEMP_FOLDER.match(folder.name)
        if found is None or not folder.is_dir() or running(int(found.group(2))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def heartbeat_older_than(cutoff: datetime) -> Any:
    """The condition that a job's attempt stopped beating before `cutoff` (or never beat)."""
    return or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < cutoff)


def held_by(job_id: uuid.UUID, attempt: int) -> tuple[Any, ...]:
    """The condition under which attempt number `attempt` still holds the job."""
    return (Job.id == job_id, Job.state == S.RUNNING, Job.attempts == attempt)


def gave_up(attempts: int) -> str:
    """The reason a job fails after its attempts kept losing their worker."""
    return (
        f"gave up after {attempts} attempts: each time the worker running this job stopped "
        "(killed, out of memory or crashed); the file may be too large or malformed in a way "
        "that breaks the worker"
    )


class Heartbeat:
    """Renews the job's heartbeat every HEARTBEAT_S on a thread while an attempt runs."""

    def __init__(self, job_id: uuid.UUID, attempt: int, settings: Settings) -> None:
        self.job_id, self.attempt, self.settings = job_id, attempt, settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_s):
            try:
                with session_scope(self.settings.db_url) as session:
                    rows_changed(
                        session,
                        update(Job)
                        .where(*held_by(self.job_id, self.attempt))
                        .values(heartbeat_at=utcnow()),
                    )
            except Exception as exc:  # the database is away: the next beat tries again
                logger.warning("job %s: heartbeat failed: %s", self.job_id, exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def publish(
    store: ObjectStore, owner: str, job_id: uuid.UUID, name: str, write: Callable[[str], object]
) -> str:
    """A job's result file `name`, written by `write(key)` under a temporary key, then moved
    into place: readers never see half a file. Its URI."""
    final = result_key(owner, job_id, name)
    temporary = result_key(owner, job_id, f".tmp-{uuid.uuid4().hex}-{name}")
    write(temporary)
    store.move(temporary, final)
    return store.uri_for(final)


def _publish(store: ObjectStore, owner: str, job_id: uuid.UUID, path: Path) -> str:
    """Upload a local result file (see `publish`)."""
    return publish(store, owner, job_id, path.name, lambda key: store.put_file(key, path))
