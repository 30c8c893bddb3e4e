"""Run one scoring job: input from the object store, pipeline, results back, state in the DB.

Idempotent: a finished job is left alone, so a redelivered task (worker lost mid-job) runs a
job at most to completion once; results are uploaded under temporary keys and moved into
place, so a client never sees half a file.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared import states as S
from shared.db.models import Job, utcnow
from shared.db.session import session_scope
from shared.engine.options import JobOptions
from shared.engine.pipeline import Cancelled, Pipeline, ScoreOptions, ScoreResult
from shared.errors import InputError
from shared.library.cache import ModelStore, RegistrySource
from shared.logs import job_context, set_stage
from shared.service.keys import result_key
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, ObjectStore, open_store

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5
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
        "high_threshold": high,
        "medium_threshold": medium,
        "only_model": options.model_name,
        "alert_rate": options.alert_rate,
        "reasons": options.reasons,
    }
    return ScoreOptions(**{**values, **tuning})


@dataclass
class Claim:
    """What a running attempt needs from its job row."""

    owner: str
    input_uri: str
    options: JobOptions


class JobFailed(Exception):
    """The job failed for a reason its owner can act on (raised so that Celery and Flower show
    the task as FAILURE with that reason)."""


def run_job(job_id: str, settings: Settings | None = None) -> str:
    """Run the job to a final state and return it. A job that fails raises JobFailed with the
    reason, internal errors are re-raised, both after the job row is marked failed."""
    with job_context(str(job_id)):
        return JobRunner(uuid.UUID(str(job_id)), settings or get_settings()).run()


class JobRunner:
    """One attempt at one job: claim, fetch, score, publish, or fail with a reason."""

    def __init__(self, job_id: uuid.UUID, settings: Settings) -> None:
        self.job_id, self.settings = job_id, settings
        self._last_progress = 0.0

    def run(self) -> str:
        claim = self.claim()
        if isinstance(claim, str):
            return claim
        store = open_store(settings=self.settings)
        self.clear_stale_results(store, claim.owner)
        try:
            with tempfile.TemporaryDirectory(prefix=f"job-{self.job_id}-") as tmp:
                folder = Path(tmp)
                local = self.fetch(store, claim.input_uri, folder)
                result = self.score(claim.options, local, folder)
                self.update(stage=S.STAGE_WRITING)
                outputs = self.publish(store, claim.owner, folder, result)
        except Cancelled:
            return self.cancelled()
        except InputError as exc:
            self.update(state=S.FAILED, error_message=str(exc), finished_at=utcnow())
            logger.info("job %s: failed: %s", self.job_id, exc)
            raise JobFailed(f"job {self.job_id}: {exc}") from None
        except Exception:
            logger.exception("job %s: internal error", self.job_id)
            message = f"internal error while scoring (job {self.job_id}); see the worker log"
            self.update(state=S.FAILED, finished_at=utcnow(), error_message=message)
            raise
        if self.state() == S.CANCELLED:
            return self.cancelled()
        return self.succeed(result, *outputs)

    def claim(self) -> Claim | str:
        """Mark the job running and return what it needs, or the state that ends this attempt."""
        with session_scope(self.settings.db_url) as session:
            job = session.get(Job, self.job_id)
            if job is None:
                logger.warning("job %s: not found; nothing to do", self.job_id)
                return "missing"
            if job.state in S.FINISHED_STATES:
                logger.info("job %s: already %s; nothing to do", self.job_id, job.state)
                return job.state
            job.state, job.stage, job.started_at = S.RUNNING, S.STAGE_MATCHING, utcnow()
            job.attempts += 1
            logger.info("job %s: running (owner %s)", self.job_id, job.owner)
            return Claim(job.owner, job.input_uri, JobOptions.model_validate(job.options or {}))

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

    def score(self, options: JobOptions, local: Path, folder: Path) -> ScoreResult:
        source = RegistrySource(self.settings, process_model_store())
        pipeline = Pipeline(
            source,
            score_options(options, self.settings),
            self.progress,
            lambda: self.state() == S.CANCELLED,
        )
        return pipeline.run(local, folder / "predictions.csv", folder / "errors.csv")

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
        self.update(
            state=S.SUCCEEDED,
            stage=None,
            progress=100.0,
            finished_at=utcnow(),
            output_uri=output_uri,
            error_uri=error_uri,
            stats=stats,
            methods={**result.methods_used, "stage_seconds": stage_seconds},
            rows_total=stats["total_transactions"],
            rows_failed=stats["rows_failed"],
            rows_done=stats["total_transactions"],
        )
        logger.info("job %s: succeeded (%d rows)", self.job_id, stats["total_transactions"])
        return S.SUCCEEDED

    def cancelled(self) -> str:
        self.update(finished_at=utcnow(), stage=None)
        logger.info("job %s: cancelled", self.job_id)
        return S.CANCELLED

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

    def update(self, **values: Any) -> None:
        with session_scope(self.settings.db_url) as session:
            job = session.get(Job, self.job_id)
            if job is not None:
                for key, value in values.items():
                    setattr(job, key, value)

    def state(self) -> str | None:
        with session_scope(self.settings.db_url) as session:
            job = session.get(Job, self.job_id)
            return job.state if job is not None else None


def _publish(store: ObjectStore, owner: str, job_id: uuid.UUID, path: Path) -> str:
    """Upload under a temporary key, then move into place: readers never see half a file."""
    final = result_key(owner, job_id, path.name)
    temporary = result_key(owner, job_id, f".tmp-{uuid.uuid4().hex}-{path.name}")
    store.put_file(temporary, path)
    store.move(temporary, final)
    return store.uri_for(final)
