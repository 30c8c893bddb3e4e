"""Routes users of the earlier synchronous service know, now backed by asynchronous jobs."""

from __future__ import annotations

import contextlib

from flask import Blueprint, Response, g, request
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from api.auth import require_token
from api.jobs import create_job, download, idempotency_key, own_input, receive_upload
from api.schemas import ApplyUnlabeled, parse
from api.services import services
from shared.db.models import Job
from shared.errors import InputError
from shared.service.keys import upload_prefix

bp = Blueprint("compat", __name__)


@bp.post("/api/apply_unlabeled")
@require_token
def apply_unlabeled() -> tuple[Response, int]:
    """Score a file: sent in this request (multipart part `file`, optional `model_name`), or
    JSON {"filepath", "model_name"} naming one the caller uploaded before, by its name (the
    latest upload of that name) or by the `filepath` key an earlier answer returned.

    202 with the job id and the input's `filepath`; the job's status then carries success,
    message, predictions_file, download_url, stats, methods_used.
    """
    retry_key = idempotency_key()
    if request.mimetype == "multipart/form-data":
        key, fields = receive_upload()
        options = {"model_name": fields["model_name"]} if fields.get("model_name") else {}
        uri = services().store.uri_for(key)
        return create_job(uri, options, retry_key, uploaded=key)
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    if not body.get("filepath"):
        raise InputError(
            "send the file (a multipart part named `file`) or JSON with `filepath`: the name "
            "of a file you uploaded"
        )
    asked = parse(ApplyUnlabeled, body, "JSON")
    filepath = asked.filepath.lstrip("/")
    prefix = upload_prefix(g.owner)
    if filepath.startswith(prefix):
        key = filepath
    elif "/" not in filepath:
        key = _latest_upload(filepath)
    else:
        key = prefix + filepath
    options = {"model_name": asked.model_name} if asked.model_name else {}
    return create_job(own_input(key), options, retry_key)


def _latest_upload(name: str) -> str:
    """The store key of the caller's latest upload called `name`; 400 if there is none."""
    svc = services()
    with svc.session() as session:
        uris = session.scalars(
            select(Job.input_uri)
            .where(Job.owner == g.owner, Job.input_uri.endswith("/" + name, autoescape=True))
            .order_by(Job.created_at.desc())
        ).all()
    for uri in uris:
        key = svc.store.key_of(uri)
        if key is not None and svc.store.exists(key):
            return key
    with contextlib.suppress(ValueError):  # a name no key can have (a backslash...) is none
        if svc.store.exists(upload_prefix(g.owner) + name):  # put there by other means
            return upload_prefix(g.owner) + name
    raise InputError(f"you have no uploaded file called {name!r}; send it as the `file` part")


@bp.get("/download/predictions/<filename>")
@require_token
def predictions(filename: str) -> BaseResponse:
    """The caller's own predictions, by the predictions_file name a job reported."""
    job_id = filename.removesuffix(".csv")
    return download(job_id, "output_uri", "predictions.csv")
