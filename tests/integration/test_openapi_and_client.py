"""The OpenAPI document covers the API; the client CLI submits, waits and downloads."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared.library.build import write_csv
from shared.service.auth import create_token
from shared.training.simulator import example_spec, simulate, with_rows
from tests.services import REPO_ROOT

pytestmark = pytest.mark.integration


def test_the_openapi_document_lists_every_api_route(app: Flask, client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, item in document["paths"].items() for method in item
    }
    routes = set()
    for rule in app.url_map.iter_rules():
        path = rule.rule.replace("<", "{").replace(">", "}")
        if path.startswith(("/api/", "/download/")) and path != "/api/v1/openapi.json":
            routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented
    for item in document["paths"].values():
        for operation in item.values():
            assert {"200", "201", "202"} & set(operation["responses"])


def run_client(
    *args: str, url: str | None, token: str, cwd: Path, **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, FRAUDSCORE_TOKEN=token, **env_vars)
    env.pop("FRAUDSCORE_URL", None)
    if url is not None:
        env["FRAUDSCORE_URL"] = url
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "scripts/fraudscore_client.py"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_client_submits_waits_and_downloads_into_the_current_directory(
    live_api: str, worker: str, registered_library: Path, db: Session, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "work").mkdir()
    src = tmp_path / "data" / "march.csv"
    write_csv(simulate(with_rows(example_spec(), 1200), labeled=False), src)
    token = create_token(db, "quinn")
    port = live_api.rsplit(":", 1)[1]
    # No --url and no FRAUDSCORE_URL: the client finds the API on API_PORT, as `make run` sets.
    run = run_client(
        "submit", str(src), "--wait", url=None, token=token, cwd=tmp_path / "work", API_PORT=port
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path / "work" / "march.predictions.csv"
    assert len(pd.read_csv(out)) == 1200
    assert not (tmp_path / "data" / "march.predictions.csv").exists()  # not beside the input
    assert "upload" in run.stderr and "100" in run.stderr  # the progress bars


def test_the_client_names_the_url_it_could_not_reach(tmp_path: Path) -> None:
    from tests.services import free_port

    src = tmp_path / "x.csv"
    src.write_text("amount\n1\n")
    port = str(free_port())
    run = run_client("submit", str(src), url=None, token="fs_x", cwd=tmp_path, API_PORT=port)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert f"cannot reach the API at http://127.0.0.1:{port}" in last and "FRAUDSCORE_URL" in last
    other = f"http://127.0.0.1:{free_port()}"
    run = run_client("--url", other, "status", "x", url="http://unused:1", token="t", cwd=tmp_path)
    assert f"cannot reach the API at {other}" in run.stderr  # --url wins over FRAUDSCORE_URL


def test_the_client_reports_a_bad_token_without_a_traceback(live_api: str, tmp_path: Path) -> None:
    src = tmp_path / "x.csv"
    src.write_text("amount\n1\n")
    run = run_client("submit", str(src), url=live_api, token="fs_wrong", cwd=tmp_path)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("fraudscore_client: HTTP 401")
    assert "Traceback" not in run.stderr


def test_the_client_trains_lists_and_deletes_team_models_and_sets_defaults(
    live_api: str, worker: str, registered_library: Path, db: Session, tmp_path: Path
) -> None:
    spec = with_rows(example_spec(), 1500)
    labeled = tmp_path / "labeled.csv"
    write_csv(simulate(spec), labeled)
    token = create_token(db, "rio")
    label = spec.column_names()["label"]
    run = run_client(
        "train", str(labeled), "--name", "disputes", "--label", label, "--wait",
        url=live_api, token=token, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("trained disputes@1: on your labels, out of time, ROC 0.")
    listed = run_client("models", url=live_api, token=token, cwd=tmp_path)
    assert re.search(r"^disputes@1 +team +you +ROC 0\.\d{3}$", listed.stdout, re.M), listed.stdout
    assert re.search(r" reference +library ", listed.stdout)
    gone = run_client("models", "--delete", "disputes", url=live_api, token=token, cwd=tmp_path)
    assert gone.stdout.strip() == "deleted disputes@1"
    bad = run_client(
        "train", str(labeled), "--name", "../x", url=live_api, token=token, cwd=tmp_path
    )
    assert bad.returncode == 1 and "invalid model name" in bad.stderr

    rate = run_client(
        "defaults", "--expected-fraud-rate", "0.03", url=live_api, token=token, cwd=tmp_path
    )
    assert json.loads(rate.stdout) == {"expected_fraud_rate": 0.03}
    unlabeled = tmp_path / "unlabeled.csv"
    write_csv(simulate(spec, labeled=False), unlabeled)
    run = run_client("submit", str(unlabeled), "--wait", url=live_api, token=token, cwd=tmp_path)
    stats = json.loads(run.stdout)["stats"]
    assert stats["fraud_rate_level"] == "stated"
    assert abs(stats["estimated_fraud_rate"] - 0.03) < 0.006
    cleared = run_client("defaults", "--clear", url=live_api, token=token, cwd=tmp_path)
    assert json.loads(cleared.stdout) == {"expected_fraud_rate": None}


def test_finished_jobs_answer_in_the_documented_schema(
    client: FlaskClient, worker: str, registered_library: Path, db: Session, tmp_path: Path
) -> None:
    import io
    import time

    import jsonschema

    document = client.get("/api/v1/openapi.json").json
    # The Job schema with the document's components beside it, so that its $refs resolve.
    job_schema = {**document["components"]["schemas"]["Job"], "components": document["components"]}
    headers = {"Authorization": f"Bearer {create_token(db, 'schema')}"}
    spec = with_rows(example_spec(), 1200)
    labeled = simulate(spec).to_csv(index=False).encode()
    label = spec.column_names()["label"]
    unlabeled = simulate(spec, labeled=False).to_csv(index=False).encode()
    sent = [
        ("/api/v1/jobs", {"file": (io.BytesIO(unlabeled), "a.csv")}),
        ("/api/v1/jobs", {"file": (io.BytesIO(unlabeled), "b.csv"), "reasons": "false"}),
        ("/api/v1/models", {"file": (io.BytesIO(labeled), "l.csv"), "name": "s", "label": label}),
    ]
    scored: dict[str, Any] = {}
    for route, form in sent:
        accepted = client.post(
            route, data=form, headers=headers, content_type="multipart/form-data"
        )
        job_id = accepted.json["job_id"]
        deadline = time.monotonic() + 90
        while (body := client.get(f"/api/v1/jobs/{job_id}", headers=headers).json)["state"] in (
            "queued",
            "running",
        ) and time.monotonic() < deadline:
            time.sleep(0.3)
        assert body["state"] == "succeeded", body
        jsonschema.validate(body, job_schema)  # stats and methods: every field named and typed
        scored = scored or body
    assert scored["methods_used"]["stage_seconds"] and scored["methods_used"]["models"]
    stray = {**scored, "methods_used": {**scored["methods_used"], "surprise": 1}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(stray, job_schema)
    bad = {**body, "stats": {**body["stats"], "surprise": 1}, "kind": "score"}
    bad["stats"].pop("model")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, job_schema)
