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
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared import jobs as J
from shared.csvio import InputError
from shared.db.models import Job, utcnow
from shared.db.session import session_scope
from shared.logs import job_context, set_stage
from shared.model_store import ModelStore, RegistrySource
from shared.scoring import Cancelled, Pipeline, ScoreOptions
from shared.settings import Settings, get_settings
from shared.storage import ObjectNotFound, open_store

logger = logging.getLogger(__name__)
PROGRESS_EVERY_S = 0.5
STAGES = {
    "reading": J.STAGE_MATCHING,
    "matching": J.STAGE_MATCHING,
    "anomaly": J.STAGE_ANOMALY,
    "scoring": J.STAGE_SCORING,
    "writing": J.STAGE_WRITING,
}


@lru_cache(maxsize=1)
def process_model_store() -> ModelStore:
    """One model store per worker process: its memory cache stays warm between jobs."""
    return ModelStore(get_settings())


def warm_models() -> list[str]:
    """Load every registered model into this process (worker start-up)."""
    return process_model_store().warm()


def _update(settings: Settings, job_id: uuid.UUID, **values: Any) -> None:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        if job is not None:
            for key, value in values.items():
                setattr(job, key, value)


def _state(settings: Settings, job_id: uuid.UUID) -> str | None:
    with session_scope(settings.db_url) as session:
        job = session.get(Job, job_id)
        return job.state if job is not None else None


def run_job(job_id: str, settings: Settings | None = None) -> str:
    """Run the job to a final state and return it; internal errors are re-raised after marking."""
    with job_context(str(job_id)):
        return _run_job(job_id, settings or get_settings())


def _run_job(job_id: str, settings: Settings) -> str:
    key = uuid.UUID(str(job_id))
    with session_scope(settings.db_url) as session:
        job = session.get(Job, key)
        if job is None:
            logger.warning("job %s: not found; nothing to do", job_id)
            return "missing"
        if job.state in J.FINISHED_STATES:
            logger.info("job %s: already %s; nothing to do", job_id, job.state)
            return job.state
        job.state, job.stage, job.started_at = J.RUNNING, J.STAGE_MATCHING, utcnow()
        job.attempts += 1
        owner, input_uri, options = job.owner, job.input_uri, dict(job.options)
    logger.info("job %s: running (owner %s)", job_id, owner)
    store = open_store(settings=settings)
    for stale in store.list(J.result_key(owner, key, ".tmp-")):  # left by a killed attempt
        store.delete(stale.key)
    last = [0.0]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S and stage != "writing":
            return
        last[0] = now
        set_stage(STAGES.get(stage, stage))
        values: dict[str, Any] = {"stage": STAGES.get(stage, stage), "rows_done": done}
        if total:
            values["rows_total"] = total
            values["progress"] = min(99.0, 100.0 * done / total)
        _update(settings, key, **values)

    def cancelled() -> bool:
        return _state(settings, key) == J.CANCELLED

    try:
        with tempfile.TemporaryDirectory(prefix=f"job-{key}-") as tmp:
            folder = Path(tmp)
            source = store.key_of(input_uri)
            if source is None:
                raise InputError("the input is not in this service's object store")
            name = Path(source).name
            local = folder / ("input.csv.gz" if name.endswith(".gz") else "input.csv")
            try:
                store.get_file(source, local)
            except ObjectNotFound:
                raise InputError("the uploaded file is missing from the object store") from None
            opts = ScoreOptions(
                top_k=options.get("top_k") or settings.top_k,
                keep_columns=bool(options.get("keep_columns")),
                chunk_rows=settings.score_chunk_rows,
                high_threshold=options.get("high_threshold", settings.risk_high_threshold),
                medium_threshold=options.get("medium_threshold", settings.risk_medium_threshold),
                only_model=options.get("model_name"),
            )
            pipeline = Pipeline(
                RegistrySource(settings, process_model_store()), opts, progress, cancelled
            )
            result = pipeline.run(local, folder / "predictions.csv", folder / "errors.csv")
            _update(settings, key, stage=J.STAGE_WRITING)
            output_uri = _publish(store, owner, key, folder / "predictions.csv")
            error_uri = None
            if result.stats["rows_failed"]:
                error_uri = _publish(store, owner, key, folder / "errors.csv")
    except Cancelled:
        _update(settings, key, finished_at=utcnow(), stage=None)
        logger.info("job %s: cancelled", job_id)
        return J.CANCELLED
    except (InputError, ValueError) as exc:
        _update(settings, key, state=J.FAILED, error_message=str(exc), finished_at=utcnow())
        logger.info("job %s: failed: %s", job_id, exc)
        return J.FAILED
    except Exception:
        logger.exception("job %s: internal error", job_id)
        message = f"internal error while scoring (job {job_id}); see the worker log"
        _update(settings, key, state=J.FAILED, finished_at=utcnow(), error_message=message)
        raise
    if cancelled():
        _update(settings, key, finished_at=utcnow(), stage=None)
        return J.CANCELLED
    stats = result.stats
    stage_seconds = {k: round(v, 3) for k, v in result.timings.items() if ":" not in k}
    _update(
        settings,
        key,
        state=J.SUCCEEDED,
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
    logger.info("job %s: succeeded (%d rows)", job_id, stats["total_transactions"])
    return J.SUCCEEDED


def _publish(store: Any, owner: str, job_id: uuid.UUID, path: Path) -> str:
    """Upload under a temporary key, then move into place: readers never see half a file."""
    final = J.result_key(owner, job_id, path.name)
    temporary = J.result_key(owner, job_id, f".tmp-{uuid.uuid4().hex}-{path.name}")
    store.put_file(temporary, path)
    store.move(temporary, final)
    return store.uri_for(final)
