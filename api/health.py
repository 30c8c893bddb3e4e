"""Liveness (/healthz) and readiness (/readyz) probes."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from api import services
from shared.service.health import run_checks

bp = Blueprint("health", __name__)


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
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
    }
    return jsonify(body), 200 if ready else 503
