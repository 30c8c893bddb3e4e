"""Jobs API: submit, poll, list, download results, cancel. Every route needs a bearer token."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, g, jsonify, redirect, request, stream_with_context
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response as BaseResponse

from api.auth import require_token
from api.schemas import Download, JobsPage, parse
from api.services import services
from api.uploads import FORM_OVERHEAD, stream_multipart
from api.views import job_view
from shared import states as S
from shared.db.models import Job, ReferenceModel, utcnow
from shared.db.session import rows_changed
from shared.engine.options import JobOptions, parse_options
from shared.errors import Conflict, InputError, NotFound, TooLarge, Unavailable
from shared.library.registry import visible_to
from shared.service.keys import upload_prefix
from shared.service.queue import BROKER_ERRORS, enqueue_job
from shared.storage import ObjectNotFound
from shared.storage.base import clean_key

bp = Blueprint("jobs", __name__, url_prefix="/api/v1")
logger = logging.getLogger(__name__)
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")


def _own_job(session: Any, job_id: str) -> Job:
    """The caller's job, or 404 (also for another owner's job: no hint that it exists)."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        raise NotFound(f"no job {job_id}") from None
    job = session.get(Job, key)
    if job is None or job.owner != g.owner:
        raise NotFound(f"no job {job_id}")
    return job


def _base_url() -> str:
    """Where clients reach the API (PUBLIC_URL), never the request's Host header."""
    return services().settings.base_url


def upload_name(filename: str) -> str:
    """The user's file name as the last part of a key the server made: safe characters only,
    never `.`, `..` or empty (names are data, never paths)."""
    name = SAFE_NAME.sub("_", filename.replace("\\", "/").rsplit("/", 1)[-1])[:120]
    return name.lstrip(".") or "upload.csv"


def idempotency_key() -> str | None:
    """The Idempotency-Key header, checked: 1-200 printable ASCII characters."""
    value = request.headers.get("Idempotency-Key") or None
    if value is not None and not IDEMPOTENCY_KEY.fullmatch(value):
        raise InputError("the Idempotency-Key header must be 1-200 printable ASCII characters")
    return value


@bp.post("/jobs")
@require_token
def submit() -> tuple[Response, int]:
    """Store the upload (streamed), record the job, enqueue it; 202 with its id."""
    svc = services()
    limit = svc.settings.upload_max_bytes
    if request.content_length is not None and request.content_length > limit + FORM_OVERHEAD:
        raise TooLarge(f"uploads are limited to {limit} bytes")
    retry_key = idempotency_key()
    if retry_key:
        with svc.session() as session:
            existing = _job_for_key(session, retry_key)
            if existing is not None:  # a retry: answer before reading the body again
                return jsonify(_accepted(existing)), 200
    if request.mimetype == "multipart/form-data":
        key, raw_options = receive_upload()
        return create_job(svc.store.uri_for(key), raw_options, retry_key, uploaded=key)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not body.get("input_uri"):
        raise InputError(MISSING_FILE)
    given = str(body["input_uri"])  # the store's URI of the object, or its key
    return create_job(own_input(svc.store.key_of(given) or given), body, retry_key)


MISSING_FILE = (
    "field `file` is missing: send the CSV as a multipart/form-data part named `file` "
    "(or JSON with `input_uri`, a file you uploaded before)"
)


def receive_upload(check: bool = True) -> tuple[str, dict[str, str]]:
    """Stream a multipart body's `file` part into the caller's uploads; its key and the form's
    other fields (scoring options, checked as they arrive unless `check` is False)."""
    svc = services()
    boundary = request.mimetype_params.get("boundary", "").encode()
    if not boundary:
        raise InputError("multipart body without a boundary")
    prefix = upload_prefix(g.owner)

    def key_for(filename: str) -> str:
        return f"{prefix}{uuid.uuid4().hex}/{upload_name(filename)}"

    limit = svc.settings.upload_max_bytes

    def check_early(fields: dict[str, str]) -> None:  # options sent before the file
        if check:
            with svc.session() as session:
                check_options(session, fields)

    fields, upload = stream_multipart(
        request.stream, boundary, svc.store, key_for, limit, check_early
    )
    if upload is None:
        raise InputError(MISSING_FILE)
    return upload["key"], fields


def check_options(session: Any, raw_options: Any) -> dict[str, Any]:
    """The options as stored on a job; 400 naming the field for anything that cannot run (an
    unknown one too: a misspelt option must not be ignored)."""
    raw = {k: v for k, v in dict(raw_options).items() if k != "input_uri"}
    unknown = sorted(set(raw) - set(JobOptions.model_fields))
    if unknown:
        known = ", ".join(JobOptions.model_fields)
        raise InputError(f"unknown option {unknown[0][:60]!r}; the options are: {known}")
    options = parse_options(raw)
    if options.model_name is not None:
        known = session.scalar(
            select(ReferenceModel.id)
            .where(ReferenceModel.name == options.model_name, visible_to(g.owner))
            .limit(1)
        )
        if known is None:
            raise InputError(
                f"invalid option model_name={options.model_name!r}: no reference model of that "
                "name (leave it out to let matching choose)"
            )
    return options.stored()


def create_job(
    input_uri: str, raw_options: Any, idempotency_key: str | None, uploaded: str | None = None
) -> tuple[Response, int]:
    """Record a queued job for g.owner and enqueue it by task name; 202 (200 on a retry).
    An upload made for this request (`uploaded`) is deleted if its options are refused."""
    svc = services()
    with svc.session() as session:
        try:
            options = check_options(session, raw_options)
        except InputError:
            if uploaded is not None:
                svc.store.delete(uploaded)
            raise
        job = Job(
            owner=g.owner, input_uri=input_uri, options=options, idempotency_key=idempotency_key
        )
        session.add(job)
        try:
            session.commit()
        except IntegrityError:  # a concurrent retry with the same key won the race
            session.rollback()
            winner = _job_for_key(session, idempotency_key)
            if winner is None:
                raise Conflict("a job with this Idempotency-Key is being created") from None
            return jsonify(_accepted(winner)), 200
        enqueue_or_withdraw(session, job, uploaded)
        return jsonify(_accepted(job)), 202


def enqueue_or_withdraw(session: Any, job: Job, uploaded: str | None = None) -> None:
    """Send a committed job to its queue by task name; when the broker is away nothing would
    run it: take it back (and the upload made for it), and answer 503."""
    svc = services()
    try:
        enqueue_job(svc.celery, str(job.id), job.kind)
    except BROKER_ERRORS as exc:
        logger.warning("job %s: cannot enqueue (%s); refused with 503", job.id, exc)
        session.delete(job)
        session.commit()
        if uploaded is not None:
            svc.store.delete(uploaded)
        raise Unavailable("the job queue is unavailable; try again shortly") from None


def own_input(store_key: str) -> str:
    """The URI of an object under g.owner's upload prefix; 400 for anything else."""
    svc = services()
    prefix = upload_prefix(g.owner)
    try:
        store_key = clean_key(store_key)  # "uploads/me/../you/x.csv" must not pass as mine
    except ValueError:
        store_key = ""
    if not store_key.startswith(prefix):  # keys, never the server's paths, in messages
        raise InputError(f"inputs must be files you uploaded (keys under {prefix})")
    if not svc.store.exists(store_key):
        raise InputError(f"you have no uploaded file at {store_key}")
    return svc.store.uri_for(store_key)


def _job_for_key(session: Any, idempotency_key: str | None) -> Job | None:
    """The caller's job submitted with this Idempotency-Key, if any."""
    return session.scalars(
        select(Job).where(Job.owner == g.owner, Job.idempotency_key == idempotency_key)
    ).one_or_none()


def _accepted(job: Job) -> dict[str, str]:
    """The answer to a submit: the job, and the stored input's key (to reuse it as
    `filepath` in /api/apply_unlabeled or `input_uri` in a later submit); never the store's
    URI, which may be a server path."""
    return {
        "job_id": str(job.id),
        "status_url": f"{_base_url()}/api/v1/jobs/{job.id}",
        "filepath": services().store.key_of(job.input_uri) or "",
    }


@bp.get("/jobs/<job_id>")
@require_token
def status(job_id: str) -> Response:
    with services().session() as session:
        job = _own_job(session, job_id)
        return jsonify(job_view(job, _base_url(), queued_ahead(session, job)))


def queued_ahead(session: Any, job: Job) -> int | None:
    """How many jobs of its kind wait in the queue before a queued job (None once it runs)."""
    if job.state != S.QUEUED:
        return None
    before = (Job.state == S.QUEUED, Job.kind == job.kind, Job.created_at < job.created_at)
    return int(session.scalar(select(func.count()).select_from(Job).where(*before)) or 0)


@bp.get("/jobs")
@require_token
def list_jobs() -> Response:
    """The caller's jobs, newest first, `page` and `per_page` (max 100)."""
    asked = parse(JobsPage, request.args, "query")
    page, per_page = asked.page, asked.per_page
    with services().session() as session:
        mine = select(Job).where(Job.owner == g.owner)
        total = session.scalar(select(func.count()).select_from(mine.subquery()))
        rows = session.scalars(
            mine.order_by(Job.created_at.desc()).offset((page - 1) * per_page).limit(per_page)
        ).all()
        return jsonify(
            jobs=[job_view(job, _base_url()) for job in rows],
            page=page,
            per_page=per_page,
            total=total,
        )


@bp.delete("/jobs/<job_id>")
@require_token
def cancel(job_id: str) -> Response:
    """Cancel a queued job at once, a running one at its next chunk boundary."""
    with services().session() as session:
        job = _own_job(session, job_id)
        cancel = (
            update(Job)
            .where(Job.id == job.id, Job.state.in_((S.QUEUED, S.RUNNING)))
            .values(state=S.CANCELLED, finished_at=utcnow())
        )
        if not rows_changed(session, cancel):
            session.refresh(job)
            raise Conflict(f"job {job_id} is already {job.state}")
        session.commit()
        session.refresh(job)
        return jsonify(job_view(job, _base_url()))


@bp.get("/jobs/<job_id>/result")
@require_token
def result(job_id: str) -> BaseResponse:
    """The predictions CSV, streamed; `?redirect=1` answers with a short-lived store URL when
    clients can reach the store (S3_PUBLIC_ENDPOINT_URL, or AWS itself)."""
    return download(job_id, "output_uri", "predictions.csv")


@bp.get("/jobs/<job_id>/errors")
@require_token
def errors(job_id: str) -> BaseResponse:
    return download(job_id, "error_uri", "errors.csv")


def download(job_id: str, attribute: str, filename: str) -> BaseResponse:
    """Stream the finished file from the object store (never buffered whole)."""
    svc = services()
    with svc.session() as session:
        job = _own_job(session, job_id)
        uri = getattr(job, attribute)
        if job.state != S.SUCCEEDED or not uri:
            raise NotFound(f"job {job_id} has no {filename} (state {job.state})")
    key = svc.store.key_of(uri)
    if key is None:
        raise NotFound(f"job {job_id}: {filename} is not in this store")
    if parse(Download, request.args, "query").redirect and svc.store.linkable:
        return redirect(svc.store.url(key), code=302)
    return download_stream(key, f"{job_id}-{filename}")


def download_stream(key: str, filename: str) -> Response:
    """A stored CSV file, streamed (never buffered whole)."""
    try:
        stream = services().store.open(key)
    except ObjectNotFound:
        raise NotFound(f"{filename} is gone") from None

    def chunks() -> Iterator[bytes]:
        with stream:
            yield from iter(lambda: stream.read(1 << 20), b"")

    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(stream_with_context(chunks()), mimetype="text/csv", headers=headers)
