"""/metrics in Prometheus' text format: jobs by state, rows scored, stage and job durations,
queue depth. Computed from the database and the broker at scrape time, so every API process
answers the same."""

from __future__ import annotations

from collections import defaultdict

from flask import Blueprint, Response
from kombu.exceptions import ChannelError
from sqlalchemy import func, select

from api import services
from shared import jobs as J
from shared.db.models import Job
from shared.queue import QUEUE_CONTROL, QUEUE_JOBS

bp = Blueprint("metrics", __name__)


def _metric(
    lines: list[str], name: str, kind: str, help_text: str, samples: list[tuple[str, float]]
) -> None:
    lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]


@bp.get("/metrics")
def metrics() -> Response:
    svc = services()
    lines: list[str] = []
    with svc.session() as session:
        by_state = dict(session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        done = session.execute(
            select(Job.rows_total, Job.started_at, Job.finished_at, Job.methods).where(
                Job.state == J.SUCCEEDED
            )
        ).all()
    _metric(
        lines,
        "fraudscore_jobs",
        "gauge",
        "Jobs by state.",
        [(f'{{state="{s}"}}', by_state.get(s, 0)) for s in J.STATES],
    )
    _metric(
        lines,
        "fraudscore_rows_scored_total",
        "counter",
        "Rows scored by succeeded jobs.",
        [("", sum(row.rows_total or 0 for row in done))],
    )
    stages: dict[str, float] = defaultdict(float)
    durations = []
    for row in done:
        for stage, seconds in ((row.methods or {}).get("stage_seconds") or {}).items():
            stages[stage] += float(seconds)
        if row.started_at and row.finished_at:
            durations.append((row.finished_at - row.started_at).total_seconds())
    _metric(
        lines,
        "fraudscore_stage_seconds_total",
        "counter",
        "Busy seconds per pipeline stage, over succeeded jobs.",
        [(f'{{stage="{k}"}}', v) for k, v in sorted(stages.items())],
    )
    _metric(
        lines,
        "fraudscore_job_duration_seconds",
        "summary",
        "Start-to-finish seconds of succeeded jobs.",
        [("_sum", sum(durations)), ("_count", len(durations))],
    )
    depths = []
    try:
        with svc.celery.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=2)
            channel = connection.default_channel
            for queue in (QUEUE_JOBS, QUEUE_CONTROL):
                try:
                    count = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # never declared: nothing can be waiting in it
                    count = 0
                    channel = connection.channel()  # a failed passive declare closes a channel
                depths.append((f'{{queue="{queue}"}}', count))
        broker_up = 1
    except Exception:  # a down broker is a metric, not an error page
        broker_up = 0
    _metric(lines, "fraudscore_queue_depth", "gauge", "Messages waiting per queue.", depths)
    _metric(
        lines, "fraudscore_broker_up", "gauge", "1 when the broker answered.", [("", broker_up)]
    )
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
