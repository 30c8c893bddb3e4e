"""The OpenAPI document of the JSON API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from api.owners import Defaults
from api.schemas import (
    ApplyUnlabeled,
    Download,
    JobsPage,
    LabelsForm,
    TrainForm,
    form_schema,
    query_parameters,
)
from shared.engine.options import JobOptions
from shared.engine.summary import MethodsUsed, Stats

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    names = {
        400: "bad request",
        401: "missing or bad token",
        404: "no such job for this token",
        409: "job already finished",
        413: "upload too large",
        422: "labels that are not rows of the job (see errors_url)",
    }
    return {str(code): _json(_ERROR, names[code]) for code in codes}


CSV = {"description": "a CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}}
ACCEPTED = _json({"$ref": "#/components/schemas/Accepted"}, "job accepted")
JOB = _json({"$ref": "#/components/schemas/Job"}, "the job")
OPTIONS = JobOptions.model_json_schema()["properties"]
_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
MODEL = {"$ref": "#/components/schemas/Model"}


def _body(schema: dict[str, Any], kind: str = "multipart/form-data") -> dict[str, Any]:
    return {"required": True, "content": {kind: {"schema": schema}}}


DEFAULTS = _json(Defaults.model_json_schema(), "your defaults")


def _components(model: type[BaseModel]) -> dict[str, Any]:
    """A pydantic model's schema and those it refers to, as OpenAPI components."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return {**schema.pop("$defs", {}), model.__name__: schema}


STATS_SCHEMAS = {**_components(Stats), **_components(MethodsUsed)}
TEAM_PATHS: dict[str, Any] = {
    "/api/v1/settings": {
        "get": {
            "summary": "Your defaults for every job",
            "responses": {"200": DEFAULTS, **_errors(401)},
        },
        "put": {
            "summary": "Set your defaults (JSON; null clears one)",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": Defaults.model_json_schema()}},
            },
            "responses": {"200": DEFAULTS, **_errors(400, 401)},
        },
    },
    "/api/v1/jobs/{job_id}/labels": {
        "post": {
            "summary": "Confirmed outcomes of a scored job (CSV: row_number or the job's id "
            "column, and a label: 1/0, yes/no, true/false, fraud/legit); trains the owner's "
            "team model of that schema once its labels hold enough of both classes",
            "parameters": [_JOB_ID],
            "requestBody": _body(form_schema(LabelsForm)),
            "responses": {
                "201": _json({"type": "object"}, "labels stored (and training_job, if started)"),
                **_errors(400, 401, 404, 409, 413, 422),
            },
        },
        "get": {
            "summary": "The job's stored label sets",
            "parameters": [_JOB_ID],
            "responses": {"200": _json({"type": "object"}, "label sets"), **_errors(401, 404)},
        },
    },
    "/api/v1/jobs/{job_id}/labels/rejected/{rejection}": {
        "get": {
            "summary": "The errors file of a refused labels file",
            "parameters": [
                _JOB_ID,
                {"name": "rejection", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "responses": {"200": CSV, **_errors(401, 404)},
        },
    },
    "/api/v1/models": {
        "get": {
            "summary": "The shared library's models and the caller's team models",
            "responses": {
                "200": _json(
                    {"type": "object", "properties": {"models": {"type": "array", "items": MODEL}}},
                    "models",
                ),
                **_errors(401),
            },
        },
        "post": {
            "summary": "Train a team model from a labeled CSV (a training job)",
            "requestBody": _body(form_schema(TrainForm)),
            "responses": {"202": JOB, **_errors(400, 401, 413)},
        },
    },
    "/api/v1/models/{name}": {
        "get": {
            "summary": "One model (a team model by `name@version`, or its newest by `name`)",
            "parameters": [_NAME],
            "responses": {"200": _json(MODEL, "the model"), **_errors(401, 404)},
        },
        "delete": {
            "summary": "Delete a team model version (`name@2`: the previous leads again), or all",
            "parameters": [_NAME],
            "responses": {"200": _json({"type": "object"}, "deleted"), **_errors(401, 404, 409)},
        },
    },
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "fraudscore",
        "version": "1",
        "description": "Batch fraud scoring of unlabeled transaction files.",
    },
    "security": [{"bearer": []}],
    "paths": {
        "/api/v1/jobs": {
            "post": {
                "summary": "Submit a CSV (multipart 'file') or an object already uploaded",
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["file"],
                                "properties": {
                                    "file": {"type": "string", "format": "binary"},
                                    **OPTIONS,
                                },
                            }
                        },
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["input_uri"],
                                "properties": {"input_uri": {"type": "string"}, **OPTIONS},
                            }
                        },
                    },
                },
                "responses": {"202": ACCEPTED, "200": ACCEPTED, **_errors(400, 401, 413)},
            },
            "get": {
                "summary": "The caller's jobs, newest first",
                "parameters": query_parameters(JobsPage),
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "jobs": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/Job"},
                                },
                                "page": {"type": "integer"},
                                "per_page": {"type": "integer"},
                                "total": {"type": "integer"},
                            },
                        },
                        "a page of jobs",
                    ),
                    **_errors(401),
                },
            },
        },
        "/api/v1/jobs/{job_id}": {
            "get": {
                "summary": "State, stage, progress and, when done, the summary",
                "parameters": [_JOB_ID],
                "responses": {"200": JOB, **_errors(401, 404)},
            },
            "delete": {
                "summary": "Cancel (queued: at once; running: at the next chunk)",
                "parameters": [_JOB_ID],
                "responses": {"200": JOB, **_errors(401, 404, 409)},
            },
        },
        "/api/v1/jobs/{job_id}/result": {
            "get": {
                "summary": "The predictions CSV (?redirect=1: a short-lived S3 URL)",
                "parameters": [_JOB_ID, *query_parameters(Download)],
                "responses": {
                    "200": CSV,
                    "302": {"description": "presigned URL"},
                    **_errors(401, 404),
                },
            },
        },
        "/api/v1/jobs/{job_id}/errors": {
            "get": {
                "summary": "The per-row errors CSV",
                "parameters": [_JOB_ID, *query_parameters(Download)],
                "responses": {"200": CSV, **_errors(401, 404)},
            },
        },
        "/api/apply_unlabeled": {
            "post": {
                "summary": "Score a file the caller uploaded (earlier synchronous API's route)",
                "requestBody": _body(form_schema(ApplyUnlabeled, file=False), "application/json"),
                "responses": {"202": ACCEPTED, "200": ACCEPTED, **_errors(400, 401)},
            },
        },
        "/download/predictions/{filename}": {
            "get": {
                "summary": "The caller's predictions by predictions_file name",
                "parameters": [
                    {
                        "name": "filename",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    *query_parameters(Download),
                ],
                "responses": {"200": CSV, **_errors(401, 404)},
            },
        },
        **TEAM_PATHS,
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            **STATS_SCHEMAS,
            "TrainingStats": {
                "type": "object",
                "required": ["model", "version", "metrics"],
                "properties": {
                    "model": {"type": "string"},
                    "version": {"type": "integer"},
                    "metrics": {"type": "object"},
                },
            },
            "Model": {
                "type": "object",
                "required": ["name", "kind", "owner"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "kind": {"enum": ["reference", "team"]},
                    "owner": {"enum": ["library", "you"]},
                    "roc_auc": {"type": ["number", "null"]},
                    "fraud_rate": {"type": ["number", "null"]},
                    "created_at": {"type": ["string", "null"]},
                    "usage_count": {"type": "integer"},
                },
            },
            "Accepted": {
                "type": "object",
                "required": ["job_id", "status_url"],
                "properties": {
                    "job_id": {"type": "string", "format": "uuid"},
                    "status_url": {"type": "string"},
                },
            },
            "Job": {
                "type": "object",
                "required": ["job_id", "state", "progress"],
                "properties": {
                    "job_id": {"type": "string", "format": "uuid"},
                    "kind": {"enum": ["score", "train"]},
                    "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                    "stage": {"type": ["string", "null"]},
                    "progress": {
                        "type": "object",
                        "properties": {
                            "rows_done": {"type": "integer"},
                            "rows_total": {"type": ["integer", "null"]},
                            "percent": {"type": "number"},
                            "parts": {
                                "type": ["integer", "null"],
                                "description": "parts the file went to many workers in",
                            },
                            "eta_seconds": {
                                "type": ["number", "null"],
                                "description": "seconds left at the pace so far (running)",
                            },
                            "queued_ahead": {
                                "type": ["integer", "null"],
                                "description": "jobs of its kind queued before it (queued; "
                                "in a job's own view, not in lists)",
                            },
                        },
                    },
                    "stats": {
                        "anyOf": [
                            {"$ref": "#/components/schemas/Stats"},
                            {"$ref": "#/components/schemas/TrainingStats"},
                        ]
                    },
                    "methods_used": {"$ref": "#/components/schemas/MethodsUsed"},
                    "download_url": {"type": "string"},
                    "errors_url": {"type": "string"},
                    "error": {"type": "string"},
                    "success": {"type": ["boolean", "null"]},
                    "message": {"type": "string"},
                    "predictions_file": {"type": "string"},
                },
            },
        },
    },
}


@bp.get("/api/v1/openapi.json")
def document() -> Response:
    return jsonify(DOCUMENT)
