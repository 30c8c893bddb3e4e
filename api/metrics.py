"""/metrics in Prometheus' format through prometheus_client: jobs by state, rows scored and rows
left, the running jobs' ETA, busy seconds per stage, a job-duration histogram and queue depth.
Aggregated by the database (and asked of the broker) at scrape time, so every API process
answers the same."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response
from kombu.exceptions import ChannelError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from api.services import Services, services
from api.views import eta_seconds
from shared import states as S
from shared.db.models import Job
from shared.engine.timing import TIMED_STAGES
from shared.service.queue import QUEUES

bp = Blueprint("metrics", __name__)
DURATION_BUCKETS = (1, 5, 15, 60, 300, 900, 3600)


def _seconds(session: Session) -> Any:
    """A job's start-to-finish seconds as a SQL expression for this database."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return func.extract("epoch", Job.finished_at - Job.started_at)


class JobCollector:
    """Metrics aggregated in one pass of SQL and one look at the broker."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        with self.svc.session() as session:
            yield from self._jobs(session)
        yield from self._queues()

    def _jobs(self, session: Session) -> Iterator[Metric]:
        by_state = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        jobs = GaugeMetricFamily("fraudscore_jobs", "Jobs by state.", labels=["state"])
        for state in S.STATES:
            jobs.add_metric([state], by_state.get(state, 0))
        yield jobs
        left = session.scalar(
            select(func.coalesce(func.sum(Job.rows_total - Job.rows_done), 0)).where(
                Job.state == S.RUNNING, Job.rows_total.is_not(None)
            )
        )
        rows_left = GaugeMetricFamily(
            "fraudscore_rows_left", "Rows of running jobs not scored yet (the work ahead)."
        )
        rows_left.add_metric([], float(left or 0))
        yield rows_left
        running = session.scalars(select(Job).where(Job.state == S.RUNNING, Job.rows_done > 0))
        eta = GaugeMetricFamily(
            "fraudscore_eta_seconds",
            "Seconds until the last running job is done, each at its pace so far.",
        )
        eta.add_metric([], max((eta_seconds(job) or 0.0 for job in running), default=0.0))
        yield eta
        done = Job.state == S.SUCCEEDED
        seconds = _seconds(session)
        timed = done & Job.started_at.is_not(None) & Job.finished_at.is_not(None)
        stage_sums = [
            func.coalesce(func.sum(Job.methods[("stage_seconds", stage)].as_float()), 0.0)
            for stage in TIMED_STAGES
        ]
        row = session.execute(
            select(
                func.coalesce(func.sum(Job.rows_total), 0),
                func.coalesce(func.sum(seconds), 0.0),
                func.count(),
                *[func.sum(case((seconds <= b, 1), else_=0)) for b in DURATION_BUCKETS],
            ).where(timed)
        ).one()
        stages = session.execute(select(*stage_sums).where(done)).one()
        rows = CounterMetricFamily("fraudscore_rows_scored", "Rows scored by succeeded jobs.")
        rows.add_metric([], float(row[0]))
        yield rows
        busy = CounterMetricFamily(
            "fraudscore_stage_seconds",
            "Busy seconds per pipeline stage, over succeeded jobs.",
            labels=["stage"],
        )
        for stage, value in zip(TIMED_STAGES, stages, strict=True):
            busy.add_metric([stage], float(value))
        yield busy
        counts = [float(c or 0) for c in row[3:]]
        buckets = [(str(float(b)), c) for b, c in zip(DURATION_BUCKETS, counts, strict=True)]
        yield HistogramMetricFamily(
            "fraudscore_job_duration_seconds",
            "Start-to-finish seconds of succeeded jobs.",
            buckets=[*buckets, ("+Inf", float(row[2]))],
            sum_value=float(row[1]),
        )

    def _queues(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "fraudscore_queue_depth", "Messages waiting per queue.", labels=["queue"]
        )
        broker_up = 1
        try:
            with self.svc.celery.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
                channel = connection.default_channel
                for queue in QUEUES:
                    try:
                        count = channel.queue_declare(queue=queue, passive=True).message_count
                    except ChannelError:  # never declared: nothing can be waiting in it
                        count = 0
                        channel = connection.channel()  # a failed passive declare closes it
                    depth.add_metric([queue], count)
        except Exception:  # a down broker is a metric, not an error page
            broker_up = 0
        yield depth
        up = GaugeMetricFamily("fraudscore_broker_up", "1 when the broker answered.")
        up.add_metric([], broker_up)
        yield up


@bp.get("/metrics")
def metrics() -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(services()))
    return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
