"""Health and readiness probes, and JSON errors."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from api import create_app
from tests.services import free_port

pytestmark = pytest.mark.integration


def test_healthz_says_the_process_is_up(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_readyz_reports_every_dependency_ok_with_a_live_worker(
    client: FlaskClient, worker: str
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.json
    checks = response.json["checks"]
    assert set(checks) == {"database", "broker", "object_store", "workers"}
    assert all(check["ok"] for check in checks.values())
    assert checks["database"]["detail"] == "postgresql"
    assert checks["object_store"]["detail"] == "s3"


def test_readyz_is_503_naming_the_broker_when_it_is_down(service_env: dict[str, str]) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    client = create_app({"redis_url": closed, "readiness_timeout_s": 1}).test_client()
    response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json["checks"]
    assert checks["broker"]["ok"] is False and "refused" in checks["broker"]["detail"].lower()
    assert checks["workers"] == {"ok": False, "detail": "unknown: broker unreachable"}
    assert checks["database"]["ok"] and checks["object_store"]["ok"]


def test_readyz_is_503_when_no_worker_runs(service_env: dict[str, str]) -> None:
    client = create_app({"redis_url": service_env["REDIS_URL"].rsplit("/", 1)[0] + "/14"})
    response = client.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["workers"]["ok"] is False


def test_unknown_routes_get_a_json_404(client: FlaskClient) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_a_wrong_method_gets_a_json_405(client: FlaskClient) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405 and response.json["error"]["code"] == "method_not_allowed"


def test_an_unexpected_error_is_a_json_500_without_a_traceback(service_env: dict[str, str]) -> None:
    app = create_app()

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert response.json == {
        "error": {"code": "internal_error", "message": "internal error; see the server log"}
    }
    assert b"Traceback" not in response.data and b"secret" not in response.data
