"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from api.auth import request_owner
from api.services import services
from shared.service.health import run_checks

bp = Blueprint("health", __name__)
LOCAL = frozenset({"127.0.0.1", "::1"})


def _has_token() -> bool:
    try:
        return request_owner() is not None
    except Exception:  # the database is down: then not provably ops
        return False


@bp.get("/healthz")
def healthz() -> Response:
    """The process is up; checks nothing else."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Each dependency by name; 503 when any is down."""
    svc = services()
    checks = run_checks(svc.settings, svc.celery)
    ready = all(check.ok for check in checks)
    # Why a check failed (hosts, ports, error text) is for ops: local callers or token holders.
    ops = request.remote_addr in LOCAL or _has_token()
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {
            c.name: {"ok": c.ok, "detail": c.detail if c.ok or ops else "unavailable"}
            for c in checks
        },
    }
    return jsonify(body), 200 if ready else 503
