"""Routes users of the earlier synchronous service know, now backed by asynchronous jobs."""

from __future__ import annotations

from flask import Blueprint, Response, g, request
from werkzeug.wrappers import Response as BaseResponse

from api.auth import require_token
from api.jobs import create_job, download, own_input
from shared.errors import InputError
from shared.service.keys import upload_prefix

bp = Blueprint("compat", __name__)


@bp.post("/api/apply_unlabeled")
@require_token
def apply_unlabeled() -> tuple[Response, int]:
    """{"filepath", "model_name"}: score a file the caller uploaded; 202 with the job id.

    `filepath` is a key under the caller's upload prefix (or a name inside it); the job's
    status then carries success, message, predictions_file, download_url, stats, methods_used.
    """
    body = request.get_json(silent=True) or {}
    filepath = str(body.get("filepath") or "").lstrip("/")
    if not filepath:
        raise InputError("filepath is required")
    prefix = upload_prefix(g.owner)
    key = filepath if filepath.startswith(prefix) else prefix + filepath
    options = {"model_name": body.get("model_name")} if body.get("model_name") else {}
    return create_job(own_input(key), options, request.headers.get("Idempotency-Key"))


@bp.get("/download/predictions/<filename>")
@require_token
def predictions(filename: str) -> BaseResponse:
    """The caller's own predictions, by the predictions_file name a job reported."""
    job_id = filename.removesuffix(".csv")
    return download(job_id, "output_uri", "predictions.csv")
