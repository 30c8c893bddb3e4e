"""Flower, as ops see it: a failed job is a FAILURE under its job id, with the reason."""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared.service.auth import create_token
from tests import services

pytestmark = pytest.mark.integration
AUTH = ("ops", "flower-test-secret")


def get(url: str, auth: tuple[str, str] | None = None) -> tuple[int, bytes]:
    """(status, body) of a GET, with basic auth when given."""
    request = urllib.request.Request(url)
    if auth:
        token = base64.b64encode(":".join(auth).encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def flower(service_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    """A real Flower process on the test broker, behind basic auth; yields its URL."""
    port = services.free_port()
    env = dict(
        os.environ,
        **service_env,
        FLOWER_PORT=str(port),
        API_HOST="127.0.0.1",
        FLOWER_BASIC_AUTH=":".join(AUTH),
    )
    # In a session of its own, so that stop_process (a process-group kill) reaches it.
    proc = services.spawn([sys.executable, "-m", "worker", "flower"], env, tmp_path / "flower.log")
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError((tmp_path / "flower.log").read_text()[-3000:])
        try:
            return get(f"{url}/healthcheck", AUTH)[0] == 200
        except OSError:
            return False

    try:
        services.wait_for(up, 60, "flower")
        time.sleep(1)  # let Flower subscribe to task events before the job runs
        yield url
    finally:
        services.stop_process(proc)
        assert proc.poll() is not None


def test_a_failed_job_is_a_failure_in_flower_under_its_job_id(
    client: FlaskClient,
    worker: str,
    registered_library: Path,
    db: Session,
    flower: str,
) -> None:
    headers = {"Authorization": f"Bearer {create_token(db, 'ops-check')}"}
    data = {"file": (io.BytesIO(b"this is not a table of transactions\n"), "notes.txt")}
    response = client.post(
        "/api/v1/jobs", data=data, headers=headers, content_type="multipart/form-data"
    )
    job_id = response.json["job_id"]
    info: dict = {}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, body = get(f"{flower}/api/task/info/{job_id}", AUTH)
        info = json.loads(body) if status == 200 else {}
        if info.get("state") in ("FAILURE", "SUCCESS"):
            break
        time.sleep(0.5)
    assert info.get("state") == "FAILURE", info
    assert "notes.txt has a header but no rows" in info["exception"]
    assert job_id in str(info["args"])
    assert get(f"{flower}/api/tasks")[0] == 401  # without the password, no list of jobs
    for route in ("/metrics", "/healthcheck", "/", "/api/workers"):  # nor anything else
        assert get(f"{flower}{route}")[0] == 401, route
    assert b"flower_events_total" in get(f"{flower}/metrics", AUTH)[1]
