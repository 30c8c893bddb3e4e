"""docs/operations.md's runbook, step by step, on PostgreSQL, Redis and an S3 endpoint (moto):
set-up twice (the second changes nothing), the Procfile's processes, a token, a scored file."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests import services
from tests.integration.test_make_run import CONFIGURED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
REPO = services.REPO_ROOT


@pytest.fixture
def fresh_database() -> Iterator[str]:
    """An empty PostgreSQL database: the runbook migrates it."""
    with services.postgres_database() as url:
        yield url


def deploy_env(tmp_path: Path, database: str, redis: str, s3: str) -> dict[str, str]:
    """The settings the runbook's first step tells an operator to set."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIGURED}
    port = services.free_port()
    env.update(
        FRAUDSCORE_ENV="production",
        SECRET_KEY=uuid.uuid4().hex * 2,
        DATABASE_URL=database,
        REDIS_URL=redis,
        OBJECT_STORE_URI=f"s3://runbook-{uuid.uuid4().hex[:8]}/fraudscore/",
        S3_ENDPOINT_URL=s3,
        S3_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        MODEL_CACHE_DIR=str(tmp_path / "model_cache"),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        WORKER_CONCURRENCY="1",
        # A small library keeps the test short; the runbook builds the full one.
        REFERENCE_LIBRARY_SIZE="2",
        REFERENCE_ROWS_SCALE="0.1",
    )
    return env


def run(args: list[str], env: dict[str, str], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def state(env: dict[str, str]) -> dict[str, Any]:
    """What set-up may change: the schema version, the registry, the bucket's objects."""
    import boto3

    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        models = conn.execute(
            text(
                "SELECT name, version, storage_type, artifact_uri, file_checksums::text "
                "FROM reference_models ORDER BY name"
            )
        ).all()
    engine.dispose()
    bucket = env["OBJECT_STORE_URI"].split("/")[2]
    s3 = boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    objects = sorted((o["Key"], o["Size"], o["ETag"]) for o in listed)
    return {"version": version, "models": [tuple(r) for r in models], "objects": objects}


def test_the_runbook_sets_up_twice_and_scores_a_file(
    tmp_path: Path, fresh_database: str, redis_url: str, s3_endpoint: str
) -> None:
    env = deploy_env(tmp_path, fresh_database, redis_url, s3_endpoint)

    # Step 2: set-up (the Procfile's release step). The bucket does not exist yet.
    first = run(["scripts/setup.py"], dict(env, VAR_DIR=str(tmp_path / "release1")))
    assert first.returncode == 0, first.stdout + first.stderr
    for line in ("(migrated empty -> ", "(bucket created)", "library   building 2 reference"):
        assert line in first.stdout, first.stdout
    assert "(moved 2; 0 already there)" in first.stdout
    after_first = state(env)
    assert [m[2] for m in after_first["models"]] == ["s3", "s3"]
    assert len(after_first["objects"]) == 8

    # The next deploy: a new release container (empty disk); nothing changes.
    second = run(["scripts/setup.py"], dict(env, VAR_DIR=str(tmp_path / "release2")))
    assert second.returncode == 0, second.stdout + second.stderr
    for line in ("(up to date)", "(ready)", "2 reference models registered, in the object store"):
        assert line in second.stdout, second.stdout
    assert "(nothing to move; 2 already there)" in second.stdout
    assert state(env) == after_first

    # Step 3: the Procfile's processes (web, worker), each with its own empty disk.
    logs = tmp_path / "logs"
    logs.mkdir()
    web = services.spawn(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "api.asgi:app"],
        dict(env, VAR_DIR=str(tmp_path / "web")),
        logs / "web.log",
    )
    worker = services.spawn(
        [sys.executable, "-m", "worker"],
        dict(env, VAR_DIR=str(tmp_path / "worker")),
        logs / "w.log",
    )
    try:
        api = env["PUBLIC_URL"]
        services.wait_for(lambda: ready(api), 90, "the API's /readyz")
        # Step 4: a token for the team, then a file scored through the client.
        token = run(["scripts/create_token.py", "--owner", "acme"], env)
        assert token.returncode == 0, token.stderr
        out = tmp_path / "scored.csv"
        client_env = dict(env, FRAUDSCORE_TOKEN=token.stdout.strip(), FRAUDSCORE_URL=api)
        sample = str(REPO / "examples" / "transactions_sample.csv")
        scored = run(
            ["scripts/fraudscore_client.py", "submit", sample, "--wait", "--output", str(out)],
            client_env,
        )
        assert scored.returncode == 0, scored.stderr + (logs / "w.log").read_text()[-3000:]
        with out.open() as rows:
            assert sum(1 for _ in csv.DictReader(rows)) == 8000
        assert json.loads(scored.stdout)["stats"]["total_transactions"] == 8000
    finally:
        services.stop_process(web)
        services.stop_process(worker)


def ready(api: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/readyz", timeout=3) as answer:
            return answer.status == 200
    except OSError:
        return False


def test_a_failed_step_names_what_to_fix_without_a_traceback(
    tmp_path: Path, fresh_database: str, redis_url: str, s3_endpoint: str
) -> None:
    env = dict(deploy_env(tmp_path, fresh_database, redis_url, s3_endpoint), VAR_DIR=str(tmp_path))
    bucket = env["OBJECT_STORE_URI"].split("/")[2]
    no_bucket = run(["scripts/setup.py", "--no-create-bucket"], env)
    assert no_bucket.returncode == 1
    assert f"bucket {bucket!r} does not exist: create it" in no_bucket.stderr
    no_database = dict(
        env, DATABASE_URL=f"postgresql+psycopg2://postgres@127.0.0.1:{services.free_port()}/x"
    )
    down = run(["scripts/setup.py"], no_database)
    assert down.returncode == 1 and "Connection refused (DATABASE_URL)" in down.stderr
    no_endpoint = dict(env, S3_ENDPOINT_URL=f"http://127.0.0.1:{services.free_port()}")
    away = run(["scripts/setup.py"], no_endpoint)
    assert away.returncode == 1 and "cannot reach the S3 endpoint" in away.stderr
    for answer in (no_bucket, down, away):
        assert "Traceback" not in answer.stderr
