"""JSON errors everywhere: {"error": {"code", "message"}}, never an HTML traceback."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from shared.errors import (
    Conflict,
    FraudscoreError,
    InputError,
    NotFound,
    TooLarge,
    Unauthorized,
    Unavailable,
)

logger = logging.getLogger(__name__)
RETRY_AFTER_S = 5  # what a 503 tells clients to wait

# The HTTP status of each error kind; the most specific class listed wins.
STATUS: dict[type[FraudscoreError], int] = {
    InputError: 400,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    TooLarge: 413,
    Unavailable: 503,
}


def status_of(exc: FraudscoreError) -> int:
    """The HTTP status for an error of the shared family (500 for one not mapped)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


def register(app: Flask) -> None:
    @app.errorhandler(FraudscoreError)
    def _known(exc: FraudscoreError) -> tuple[Response, int]:
        response, status = error_response(status_of(exc), exc.code, exc.message)
        if status == 503:
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError) -> tuple[Response, int]:
        logger.warning("database unavailable: %s", exc.orig)
        response, status = error_response(503, Unavailable.code, "the database is unavailable")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(KombuOperationalError)
    @app.errorhandler(RedisError)
    def _broker_down(exc: Exception) -> tuple[Response, int]:
        logger.warning("broker unavailable: %s", exc)
        response, status = error_response(503, Unavailable.code, "the job queue is unavailable")
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        logger.exception("unhandled error")
        return error_response(500, "internal_error", "internal error; see the server log")
