"""One large file across many workers.

The job's task fits the plan (profile, pass 1, sample, fit) as for any file; when the file has
more than SCORE_PART_ROWS rows it saves the plan, the errors file and the file's parts (rows
and carry, `engine.parts`) under the attempt's work prefix in the object store, and sends one
task per part. Each part task loads the plan once per process, scores its part into a
headerless CSV and its tallies, and the one that finds every part done sends the merge, which
joins the header and the parts in file order into the predictions (streamed; a multipart upload
on S3), moves them into place and ends the job as one worker would. Nothing is kept in Redis:
the store holds what is done, the jobs table who holds the job (`held_by`), so a part sent twice
is scored once and a cancelled job's parts stop at their next block.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import or_, update

from shared import states as S
from shared.db.models import Job, utcnow
from shared.db.session import rows_changed, session_scope
from shared.engine.parts import cut, header, score_part, write_parts
from shared.engine.pipeline import Cancelled, Pipeline, Prepared, ScoreResult, write_errors
from shared.engine.plan import FittedPlan
from shared.engine.summary import Tallies, summarise
from shared.engine.timing import Timer
from shared.library.cache import RegistrySource
from shared.logs import job_context
from shared.processes import release_memory
from shared.service.keys import result_key, work_prefix
from shared.service.queue import enqueue_part
from shared.service.runner import (
    INFRASTRUCTURE_ERRORS,
    Heartbeat,
    JobRunner,
    gave_up,
    heartbeat_older_than,
    held_by,
    process_model_store,
    publish,
    temp_prefix,
)
from shared.settings import Settings, get_settings
from shared.storage import ObjectStore, open_store

logger = logging.getLogger(__name__)
PLAN, META, ERRORS = "plan.zip", "meta.json", "errors.csv"


def part_key(prefix: str, part: int, what: str) -> str:
    """A part's input (`in.arrow`), predictions (`out.csv`), tallies (`out.json`) or count of
    tries (`tries`)."""
    return f"{prefix}parts/{part:05d}.{what}"


class PartsRunner(JobRunner):
    """A job runner that sends a file of more than SCORE_PART_ROWS rows out in parts."""

    def __init__(self, job_id: uuid.UUID, settings: Settings, celery: Celery) -> None:
        super().__init__(job_id, settings)
        self.celery = celery

    def run(self) -> str:
        try:
            return super().run()
        except Exception:  # what this attempt stored is of no use to the next
            if self.attempt:
                with contextlib.suppress(Exception):
                    clean_work(open_store(settings=self.settings), self.prefix)
            raise
        finally:
            release_memory()  # the plan step's per-row arrays: this process now scores parts

    @property
    def prefix(self) -> str:
        return work_prefix(self.job_id, self.attempt)

    def spread(self, pipeline: Pipeline, prepared: Prepared, folder: Path) -> str | None:
        if prepared.index.rows <= self.settings.score_part_rows:
            return None
        store, plan, index = open_store(settings=self.settings), prepared.plan, prepared.index
        prefix = self.prefix
        part_rows = cut(index.chunks, self.settings.score_part_rows)
        plan.save(folder / PLAN)
        store.put_file(prefix + PLAN, folder / PLAN)
        failed = write_errors(index, plan.layout.roles, folder / ERRORS)
        if failed:
            store.put_file(prefix + ERRORS, folder / ERRORS)
        meta = {
            "input": plan.layout.fmt.path.name,
            "rows": index.rows,
            "failed": failed,
            "negative": index.negative,
            "unread": index.unread_times,
            "part_rows": part_rows,
            "seconds": dict(pipeline.time.seconds),
        }
        store.put_stream(prefix + META, _json(meta))
        pipeline.record_usage(plan)
        if not self.update(stage=S.STAGE_SCORING, rows_total=index.rows):
            clean_work(store, prefix)  # cancelled (or taken over) while fitting
            return self.state() or "missing"
        # Each part goes out as soon as it is written and stored: the first are scored by the
        # other workers while this one writes the rest.
        for part, path in enumerate(write_parts(prepared.spool, index, folder, part_rows)):
            if part and not self.holds():  # cancelled (or taken over) while sending
                clean_work(store, prefix)
                return self.state() or "missing"
            store.put_file(part_key(prefix, part, "in.arrow"), path)
            path.unlink()
            enqueue_part(self.celery, str(self.job_id), self.attempt, part)
        prepared.spool.unlink()
        with session_scope(self.settings.db_url) as session:  # (its merge may be done already)
            mine = (Job.id == self.job_id, Job.attempts == self.attempt)
            session.execute(update(Job).where(*mine).values(parts=len(part_rows)))
        logger.info("job %s: %d rows sent out in %d parts", self.job_id, index.rows, len(part_rows))
        return S.RUNNING


def run_scoring_job(job_id: str, celery: Celery, settings: Settings | None = None) -> str:
    """`runner.run_job`, with a large file sent out in parts through `celery`."""
    with job_context(str(job_id)):
        return PartsRunner(uuid.UUID(str(job_id)), settings or get_settings(), celery).run()


@dataclass(frozen=True, eq=False)
class Work:
    """What every part of one attempt needs: the plan and the plan step's figures."""

    plan: FittedPlan
    meta: dict[str, Any]


@lru_cache(maxsize=16)
def load_meta(job_id: str, attempt: int) -> dict[str, Any]:
    """The plan step's figures of an attempt (rows per part...), downloaded once per process."""
    store = open_store(settings=get_settings())
    with store.open(work_prefix(job_id, attempt) + META) as body:
        return dict(json.loads(body.read()))


@lru_cache(maxsize=4)
def load_work(job_id: str, attempt: int, owner: str) -> Work:
    """The attempt's plan and figures, downloaded once per process."""
    settings = get_settings()
    store, prefix = open_store(settings=settings), work_prefix(job_id, attempt)
    meta = load_meta(job_id, attempt)
    source = RegistrySource(settings, process_model_store(), owner)
    with tempfile.TemporaryDirectory(prefix=temp_prefix(f"job-{job_id}")) as tmp:
        store.get_file(prefix + PLAN, Path(tmp) / PLAN)
        plan = FittedPlan.load(Path(tmp) / PLAN, source, Path(meta["input"]))
    return Work(plan, meta)


def run_part(job_id: str, attempt: int, part: int, celery: Celery) -> str:
    """Score one part of a job's file (once: a part already done is left alone); the last part
    done sends the merge."""
    with job_context(job_id):
        runner = _runner(job_id, attempt)
        store, prefix = open_store(settings=runner.settings), work_prefix(job_id, attempt)
        owner = runner.owner()
        if owner is None:  # cancelled, failed or taken over: this attempt's files go
            clean_work(store, prefix)
            return runner.state() or "missing"
        if store.exists(part_key(prefix, part, "out.json")):
            return _after_part(runner, store, celery)
        if not _count_try(runner, store, part):
            clean_work(store, prefix)
            return S.FAILED
        beat = Heartbeat(runner.job_id, attempt, runner.settings)
        try:
            _score_part(runner, store, load_work(job_id, attempt, owner), part)
        except Cancelled:
            clean_work(store, prefix)
            return runner.cancelled()
        except INFRASTRUCTURE_ERRORS:
            raise  # the task is retried; the part stays to do
        except Exception:
            logger.exception("job %s: part %d failed", job_id, part)
            runner.finish(S.FAILED, error_message=f"internal error while scoring (job {job_id})")
            clean_work(store, prefix)
            raise
        finally:
            beat.stop()
        return _after_part(runner, store, celery)


def _count_try(runner: JobRunner, store: ObjectStore, part: int) -> bool:
    """Count a try at a part; past MAX_ATTEMPTS (a part that kills its worker each time) fail
    the job with the reason instead, and return False."""
    key = part_key(work_prefix(runner.job_id, runner.attempt), part, "tries")
    tries = 1
    if store.exists(key):
        with store.open(key) as body:
            tries += int(body.read() or b"0")
    if tries > runner.settings.max_attempts:
        runner.finish(S.FAILED, error_message=gave_up(tries - 1))
        logger.warning("job %s: part %d: %s", runner.job_id, part, gave_up(tries - 1))
        return False
    store.put_stream(key, io.BytesIO(str(tries).encode()))
    return True


def _score_part(runner: JobRunner, store: ObjectStore, work: Work, part: int) -> None:
    prefix = work_prefix(runner.job_id, runner.attempt)
    threads = runner.settings.threads
    timer = Timer()
    with tempfile.TemporaryDirectory(prefix=temp_prefix(f"job-{runner.job_id}")) as tmp:
        rows, out = Path(tmp) / "in.arrow", Path(tmp) / "out.csv"
        store.get_file(part_key(prefix, part, "in.arrow"), rows)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            tallies = score_part(work.plan, rows, out, pool, lambda: not runner.holds(), timer)
        store.put_file(part_key(prefix, part, "out.csv"), out)
    state = {"tallies": tallies.state(), "seconds": dict(timer.seconds)}
    store.put_stream(part_key(prefix, part, "out.json"), _json(state))


def _after_part(runner: JobRunner, store: ObjectStore, celery: Celery) -> str:
    """Progress from the parts done; the merge sent when they all are."""
    prefix = work_prefix(runner.job_id, runner.attempt)
    meta = load_meta(str(runner.job_id), runner.attempt)
    done = done_parts(store, prefix)
    rows = sum(meta["part_rows"][i] for i in done)
    total = meta["rows"]
    runner.update(rows_done=rows, progress=min(99.0, 100.0 * rows / max(1, total)))
    if len(done) == len(meta["part_rows"]):
        enqueue_part(celery, str(runner.job_id), runner.attempt, None)
    return S.RUNNING


def done_parts(store: ObjectStore, prefix: str) -> set[int]:
    """The parts whose results are stored."""
    found = (info.key.rsplit("/", 1)[-1] for info in store.list(f"{prefix}parts/"))
    return {int(name.split(".", 1)[0]) for name in found if name.endswith(".out.json")}


def merge_parts(job_id: str, attempt: int) -> str:
    """Join the parts' predictions in file order, publish them and end the job (once: the
    merge claims the job's `writing` stage, or takes it over from a merge whose worker died)."""
    with job_context(job_id):
        runner = _runner(job_id, attempt)
        settings = runner.settings
        store, prefix = open_store(settings=settings), work_prefix(job_id, attempt)
        stale = utcnow() - timedelta(seconds=settings.stale_after_s)
        claim = (
            update(Job)
            .where(
                *held_by(runner.job_id, attempt),
                or_(Job.stage == S.STAGE_SCORING, heartbeat_older_than(stale)),
            )
            .values(stage=S.STAGE_WRITING, heartbeat_at=utcnow())
        )
        with session_scope(settings.db_url) as session:
            if not rows_changed(session, claim):
                return runner.state() or "missing"
        beat = Heartbeat(runner.job_id, attempt, settings)
        try:
            return _merge(runner, store, prefix)
        except INFRASTRUCTURE_ERRORS:
            raise  # the task is retried; the job waits in `writing`
        except Exception:
            logger.exception("job %s: merge failed", job_id)
            runner.finish(S.FAILED, error_message=f"internal error while writing (job {job_id})")
            clean_work(store, f"work/{job_id}/")
            raise
        finally:
            beat.stop()


def _merge(runner: JobRunner, store: ObjectStore, prefix: str) -> str:
    owner = runner.owner()
    if owner is None:  # cancelled since the claim
        return runner.cancelled()
    work = load_work(str(runner.job_id), runner.attempt, owner)
    parts = range(len(work.meta["part_rows"]))
    tallies, seconds = Tallies(), dict(work.meta["seconds"])
    for part in parts:
        with store.open(part_key(prefix, part, "out.json")) as body:
            state = json.loads(body.read())
        tallies.merge(Tallies.from_state(state["tallies"]))
        for stage, value in state["seconds"].items():
            seconds[stage] = seconds.get(stage, 0.0) + value
    keys = [part_key(prefix, part, "out.csv") for part in parts]
    output_uri = publish(
        store,
        owner,
        runner.job_id,
        "predictions.csv",
        partial(store.join, keys, head=header(work.plan)),
    )
    error_uri = None
    if work.meta["failed"]:
        errors = result_key(owner, runner.job_id, "errors.csv")
        store.move(prefix + ERRORS, errors)
        error_uri = store.uri_for(errors)
    meta = work.meta
    summary = summarise(
        work.plan, tallies, meta["rows"], meta["failed"], meta["negative"], meta["unread"]
    )
    result = ScoreResult(summary.stats, summary.methods_used, seconds, work.plan)
    state = runner.succeed(result, output_uri, error_uri)
    clean_work(store, f"work/{runner.job_id}/")  # every attempt's
    return state


def clean_work(store: ObjectStore, prefix: str) -> None:
    """Remove the work files under `prefix`."""
    for info in list(store.list(prefix)):
        store.delete(info.key)


def _runner(job_id: str, attempt: int) -> JobRunner:
    runner = JobRunner(uuid.UUID(job_id), get_settings())
    runner.attempt = attempt
    return runner


def _json(value: Any) -> io.BytesIO:
    return io.BytesIO(json.dumps(value).encode())
