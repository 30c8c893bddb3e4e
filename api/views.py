"""How jobs look to clients of the JSON API."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from shared import states as S
from shared.db.models import JOB_TRAIN, LIBRARY, utcnow


def job_view(job: Any, base_url: str = "", queued_ahead: int | None = None) -> dict[str, Any]:
    """A job as clients see it (`queued_ahead`: jobs before it in the queue, where known)."""
    done = job.state == S.SUCCEEDED
    body: dict[str, Any] = {
        "job_id": str(job.id),
        "kind": job.kind,
        "file_name": file_name(job.input_uri),
        "state": job.state,
        "stage": job.stage,
        "progress": {
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "percent": round(job.progress, 1),
            "parts": job.parts,  # the file went to many workers in this many parts
            "eta_seconds": eta_seconds(job),
            "queued_ahead": queued_ahead,
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "duration_seconds": (
            round((job.finished_at - job.started_at).total_seconds(), 1)
            if job.started_at is not None and job.finished_at is not None
            else None
        ),
        "attempts": job.attempts,
        "files_removed_at": _iso(job.purged_at),  # retention deleted upload and results
        "options": job.options,
    }
    if job.error_message:
        body["error"] = job.error_message
    # The fields clients of the earlier synchronous service read.
    body["success"] = done if job.state in S.FINISHED_STATES else None
    if job.kind == JOB_TRAIN:
        model = (job.stats or {}).get("model")
        body["message"] = f"trained {model}" if done else job.error_message or job.state
        if done:
            body["model"] = model
            body["stats"] = job.stats
        return body
    body["message"] = (
        f"scored {job.rows_total} transactions" if done else job.error_message or job.state
    )
    if done:
        body["predictions_file"] = f"{job.id}.csv"
        body["stats"] = job.stats
        body["methods_used"] = job.methods
        body["download_url"] = f"{base_url}/download/predictions/{job.id}.csv"
        if job.error_uri:
            body["errors_url"] = f"{base_url}/api/v1/jobs/{job.id}/errors"
    return body


def eta_seconds(job: Any) -> float | None:
    """Seconds left for a running job at the pace of its rows so far (None: no pace yet)."""
    if job.state != S.RUNNING or not job.rows_done or not job.rows_total or not job.started_at:
        return None
    started = job.started_at
    if started.tzinfo is None:  # SQLite gives it back without its zone (UTC)
        started = started.replace(tzinfo=UTC)
    elapsed = (utcnow() - started).total_seconds()
    return round(max(0.0, elapsed * (job.rows_total - job.rows_done) / job.rows_done), 1)


def file_name(input_uri: str) -> str:
    """The name the user's file was uploaded under (the last part of its store key)."""
    return input_uri.rstrip("/").rsplit("/", 1)[-1]


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def model_view(row: Any, detail: bool = False) -> dict[str, Any]:
    """A registered model as clients see it: the shared library's, or the caller's own."""
    metrics = dict(row.metrics or {})
    body: dict[str, Any] = {
        "name": row.name,
        "version": row.version,
        "kind": metrics.get("kind") or "reference",
        "owner": "library" if row.owner == LIBRARY else "you",
        "roc_auc": metrics.get("roc_auc"),
        "fraud_rate": metrics.get("fraud_rate"),
        "created_at": _iso(row.created_at),
        "usage_count": row.usage_count,
    }
    if detail:
        body.update(metrics=metrics, roles=row.column_roles, columns=row.columns)
    return body
