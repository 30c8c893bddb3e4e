"""Job states and stages, named once for the API and the worker."""

from __future__ import annotations

from typing import Any

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

STAGE_MATCHING = "matching"
STAGE_SCORING = "scoring"
STAGE_ANOMALY = "anomaly"
STAGE_CALIBRATION = "calibration"
STAGE_WRITING = "writing"

STAGES = (STAGE_MATCHING, STAGE_SCORING, STAGE_ANOMALY, STAGE_CALIBRATION, STAGE_WRITING)

OPTION_DEFAULTS = {
    "top_k": None,
    "keep_columns": False,
    "high_threshold": None,
    "medium_threshold": None,
    "model_name": None,
}


def upload_prefix(owner: str) -> str:
    """Where an owner's uploads live in the object store (and the only inputs they may name)."""
    return f"uploads/{owner}/"


def result_key(owner: str, job_id: Any, name: str) -> str:
    """Where a job's output files live in the object store."""
    return f"results/{owner}/{job_id}/{name}"


def clean_options(raw: dict[str, Any]) -> dict[str, Any]:
    """Validated job options; ValueError names the bad one."""
    options: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in OPTION_DEFAULTS or value in (None, ""):
            continue
        try:
            if name == "top_k":
                options[name] = int(value)
                if not 1 <= options[name] <= 20:
                    raise ValueError
            elif name == "model_name":
                options[name] = str(value)[:200]
            elif name == "keep_columns":
                options[name] = str(value).lower() in ("1", "true", "yes", "on")
            else:
                options[name] = float(value)
                if not 0 <= options[name] <= 1:
                    raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"invalid option {name}={value!r}") from None
    high = options.get("high_threshold", 1.0)
    if options.get("medium_threshold", 0.0) > high:
        raise ValueError("medium_threshold must not exceed high_threshold")
    return options


def view(job: Any, base_url: str = "") -> dict[str, Any]:
    """A job as clients see it."""
    done = job.state == SUCCEEDED
    body: dict[str, Any] = {
        "job_id": str(job.id),
        "state": job.state,
        "stage": job.stage,
        "progress": {
            "rows_done": job.rows_done,
            "rows_total": job.rows_total,
            "percent": round(job.progress, 1),
        },
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "attempts": job.attempts,
        "options": job.options,
    }
    if job.error_message:
        body["error"] = job.error_message
    # The fields clients of the earlier synchronous service read.
    body["success"] = done if job.state in FINISHED_STATES else None
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


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
