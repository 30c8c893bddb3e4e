"""The OpenAPI document of the JSON API, served at /api/v1/openapi.json."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify

from shared.engine.options import JobOptions

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
    }
    return {str(code): _json(_ERROR, names[code]) for code in codes}


CSV = {"description": "a CSV file", "content": {"text/csv": {"schema": {"type": "string"}}}}
ACCEPTED = _json({"$ref": "#/components/schemas/Accepted"}, "job accepted")
JOB = _json({"$ref": "#/components/schemas/Job"}, "the job")
OPTIONS = JobOptions.model_json_schema()["properties"]

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
                "parameters": [
                    {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1}},
                    {
                        "name": "per_page",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                    },
                ],
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
                "parameters": [
                    _JOB_ID,
                    {"name": "redirect", "in": "query", "schema": {"type": "string"}},
                ],
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
                "parameters": [_JOB_ID],
                "responses": {"200": CSV, **_errors(401, 404)},
            },
        },
        "/api/apply_unlabeled": {
            "post": {
                "summary": "Score a file the caller uploaded (earlier synchronous API's route)",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["filepath"],
                                "properties": {
                                    "filepath": {"type": "string"},
                                    "model_name": {"type": "string"},
                                },
                            }
                        }
                    },
                },
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
                    }
                ],
                "responses": {"200": CSV, **_errors(401, 404)},
            },
        },
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
                    "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
                    "stage": {"type": ["string", "null"]},
                    "progress": {
                        "type": "object",
                        "properties": {
                            "rows_done": {"type": "integer"},
                            "rows_total": {"type": ["integer", "null"]},
                            "percent": {"type": "number"},
                        },
                    },
                    "stats": {"type": "object"},
                    "methods_used": {"type": "object"},
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
