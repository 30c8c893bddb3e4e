"""Labels for scored jobs and the team models they train: POST/GET a job's labels, and
GET/POST/DELETE /api/v1/models. Every route needs a bearer token; an owner sees the shared
library and their own team models, never another owner's."""

from __future__ import annotations

import io
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import func, select

from api.auth import require_token
from api.jobs import _base_url, _own_job, download_stream, enqueue_or_withdraw, receive_upload
from api.schemas import LabelsForm, TrainForm, parse
from api.services import services
from api.views import file_name, job_view, model_view
from shared import states as S
from shared.db.models import JOB_SCORE, JOB_TRAIN, LIBRARY, Job, LabelSet, ReferenceModel
from shared.engine import roles as R
from shared.engine.csvio import iter_chunks, sniff
from shared.errors import Conflict, InputError, NotFound, TooLarge
from shared.library.registry import visible_to
from shared.service.keys import labels_key
from shared.service.labels import (
    ROW_NUMBER,
    Labels,
    Rejected,
    label_set_csv,
    read_labels,
    resolve,
    schema_of,
)
from shared.storage import ObjectNotFound
from shared.training.team import MIN_POSITIVES

bp = Blueprint("labels", __name__, url_prefix="/api/v1")
LABELS_MAX_BYTES = 64 << 20
NAMED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,119}(@[0-9]{1,9})?$")


@bp.post("/jobs/<job_id>/labels")
@require_token
def add_labels(job_id: str) -> tuple[Response, int]:
    """Store a scored job's confirmed outcomes; train the owner's team model of that schema
    once its labeled jobs hold enough of both classes."""
    svc = services()
    upload = request.files.get("file")
    if upload is None:
        raise InputError("field `file` is missing: send the labels CSV as a part named `file`")
    data = upload.read(LABELS_MAX_BYTES + 1)
    if len(data) > LABELS_MAX_BYTES:
        raise TooLarge(f"labels files are limited to {LABELS_MAX_BYTES} bytes")
    name = parse(LabelsForm, request.form, "form").model_name
    with svc.session() as session:
        job = _scored_job(session, job_id)
        labels = read_labels(data, (job.methods or {}).get("roles", {}).get(R.TX_ID))
        try:
            numbers = resolve(labels, _input_rows(job, labels), int(job.rows_total or 0))
        except Rejected as rejected:
            return _rejected(job, rejected)
        schema = schema_of(_columns_of(job))
        key = labels_key(g.owner, job.id, f"{uuid.uuid4().hex}.csv")
        svc.store.put_stream(key, io.BytesIO(label_set_csv(numbers, labels.labels)))
        label_set = LabelSet(
            owner=g.owner,
            job_id=job.id,
            schema=schema,
            uri=svc.store.uri_for(key),
            rows=len(numbers),
            positives=labels.positives,
        )
        session.add(label_set)
        session.commit()
        rows, positives = _pooled(session, schema)
        body: dict[str, Any] = {
            "label_set": {
                "id": str(label_set.id),
                "rows": len(numbers),
                "positives": labels.positives,
            },
            "pooled": {"rows": rows, "positives": positives, "schema": schema},
            "training_job": None,
        }
        negatives = rows - positives
        if positives < MIN_POSITIVES or negatives < MIN_POSITIVES:
            body["message"] = (
                f"stored {len(numbers)} labels; the labeled jobs of this file's schema hold "
                f"{positives} fraud and {negatives} legitimate rows: at least {MIN_POSITIVES} of "
                "each are needed before a team model is trained"
            )
            return jsonify(body), 201
        options = {"name": name or f"team-{schema[:8]}", "schema": schema}
        training = _start_training(session, "", options)
        body["training_job"] = job_view(training, _base_url())
        body["message"] = f"stored {len(numbers)} labels; training {options['name']}"
        return jsonify(body), 201


@bp.get("/jobs/<job_id>/labels")
@require_token
def list_labels(job_id: str) -> Response:
    with services().session() as session:
        job = _own_job(session, job_id)
        sets = session.scalars(
            select(LabelSet).where(LabelSet.job_id == job.id).order_by(LabelSet.created_at)
        ).all()
        return jsonify(
            label_sets=[
                {
                    "id": str(s.id),
                    "rows": s.rows,
                    "positives": s.positives,
                    "created_at": s.created_at.isoformat(),
                }
                for s in sets
            ]
        )


@bp.get("/jobs/<job_id>/labels/rejected/<rejection>")
@require_token
def rejected_errors(job_id: str, rejection: str) -> Response:
    """The errors file of a labels file that was refused (every key that is not a row)."""
    with services().session() as session:
        job = _own_job(session, job_id)
    try:
        name = f"rejected-{uuid.UUID(rejection).hex}.csv"
    except ValueError:
        raise NotFound(f"no rejected labels {rejection}") from None
    return download_stream(labels_key(job.owner, job.id, name), f"{job.id}-labels-errors.csv")


@bp.get("/models")
@require_token
def list_models() -> Response:
    """The shared library and the caller's team models (every version), by name."""
    with services().session() as session:
        rows = session.scalars(
            select(ReferenceModel).where(visible_to(g.owner)).order_by(ReferenceModel.name)
        ).all()
        return jsonify(models=[model_view(row) for row in rows])


@bp.get("/models/<name>")
@require_token
def get_model_view(name: str) -> Response:
    with services().session() as session:
        rows = _named(session, name)
        return jsonify(model_view(rows[-1], detail=True))


@bp.delete("/models/<name>")
@require_token
def delete_model(name: str) -> Response:
    """Delete a team model version (`name@2`: the previous leads again) or all of a name."""
    svc = services()
    with svc.session() as session:
        rows = _named(session, name)
        if any(row.owner == LIBRARY for row in rows):
            raise Conflict(f"{name} belongs to the shared library; only team models can be deleted")
        deleted = [row.name for row in rows]
        prefixes = [svc.store.key_of(row.artifact_uri) for row in rows]
        for row in rows:
            session.delete(row)
        session.commit()
    for prefix in prefixes:
        for item in svc.store.list(prefix) if prefix else ():
            svc.store.delete(item.key)
    return jsonify(deleted=deleted)


@bp.post("/models")
@require_token
def train_from_file() -> tuple[Response, int]:
    """Train a team model from a labeled CSV (multipart `file`, `name`, optional `label`)."""
    key, fields = receive_upload(check=False)
    svc = services()
    try:
        if not (fields.get("name") or "").strip():
            raise InputError("field `name` is missing: name the model (letters, digits, . _ -)")
        form = parse(TrainForm, fields, "form")
    except InputError:
        svc.store.delete(key)
        raise
    label = (form.label or "").strip()
    options = {"name": form.name, **({"label": label} if label else {})}
    with svc.session() as session:
        job = _start_training(session, svc.store.uri_for(key), options, uploaded=key)
        return jsonify(job_view(job, _base_url())), 202


def _scored_job(session: Any, job_id: str) -> Job:
    job = _own_job(session, job_id)
    if job.kind != JOB_SCORE or job.state != S.SUCCEEDED:
        raise Conflict(f"job {job_id} is {job.state}: labels are for scored jobs that succeeded")
    if job.purged_at is not None:
        raise Conflict(
            f"job {job_id}'s files were removed by retention: its rows cannot be labeled"
        )
    return job


def _input_rows(job: Job, labels: Labels) -> Iterator[pa.Table]:
    """The job's input, as (row_number, id) blocks, when labels name rows by id."""
    if labels.key == ROW_NUMBER:
        return
    store = services().store
    key = store.key_of(job.input_uri)
    if key is None:
        raise InputError("the job's input is not in this service's object store")
    with tempfile.TemporaryDirectory(prefix="fraudscore-labels-") as folder:
        local = Path(folder) / file_name(job.input_uri)  # .gz: read as gzip
        try:
            store.get_file(key, local)
        except ObjectNotFound:
            raise InputError(
                "the job's uploaded file is gone; label its rows by row_number"
            ) from None
        offset = 0
        for table in iter_chunks(sniff(local), 200_000, [labels.key]):
            numbers = pa.array(range(offset + 1, offset + table.num_rows + 1))
            offset += table.num_rows
            yield table.append_column(ROW_NUMBER, numbers)


def _rejected(job: Job, rejected: Rejected) -> tuple[Response, int]:
    rejection = uuid.uuid4()
    key = labels_key(job.owner, job.id, f"rejected-{rejection.hex}.csv")
    services().store.put_stream(key, io.BytesIO(rejected.errors_csv()))
    url = f"{_base_url()}/api/v1/jobs/{job.id}/labels/rejected/{rejection}"
    body = {"error": {"code": "bad_request", "message": rejected.message}, "errors_url": url}
    return jsonify(body), 422


def _pooled(session: Any, schema: str) -> tuple[int, int]:
    rows, positives = session.execute(
        select(
            func.coalesce(func.sum(LabelSet.rows), 0),
            func.coalesce(func.sum(LabelSet.positives), 0),
        ).where(LabelSet.owner == g.owner, LabelSet.schema == schema)
    ).one()
    return int(rows), int(positives)


def _start_training(
    session: Any, input_uri: str, options: dict[str, Any], uploaded: str | None = None
) -> Job:
    job = Job(owner=g.owner, kind=JOB_TRAIN, input_uri=input_uri, options=options)
    session.add(job)
    session.commit()
    enqueue_or_withdraw(session, job, uploaded)
    return job


def _named(session: Any, name: str) -> list[ReferenceModel]:
    """The visible models called `name` (`x@2`), or every version of a team model `x`."""
    if not NAMED.match(name):
        raise NotFound(f"no model {name[:80]!r}")
    rows = session.scalars(
        select(ReferenceModel)
        .where(
            visible_to(g.owner),
            ReferenceModel.name.in_([name])
            | ReferenceModel.name.startswith(f"{name}@", autoescape=True),
        )
        .order_by(ReferenceModel.created_at)
    ).all()
    exact = [r for r in rows if r.name == name]
    found = exact or [r for r in rows if r.owner == g.owner and r.name.rsplit("@", 1)[0] == name]
    if not found:
        raise NotFound(f"no model {name}")
    return found


def _columns_of(job: Job) -> list[str]:
    """The job input's columns (from its summary; a job scored before summaries listed them:
    from the stored file's header)."""
    listed = (job.methods or {}).get("input_columns")
    if listed:
        return list(listed)
    store = services().store
    key = store.key_of(job.input_uri)
    with tempfile.TemporaryDirectory(prefix="fraudscore-labels-") as folder:
        head = Path(folder) / file_name(job.input_uri)
        try:
            with store.open(key or "") as stream:
                head.write_bytes(stream.read(1 << 20))
            return list(sniff(head).columns)
        except (ObjectNotFound, InputError, OSError, EOFError):
            raise Conflict("this job's file is gone: score the file again to label it") from None
