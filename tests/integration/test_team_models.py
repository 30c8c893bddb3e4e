"""Learning from a team's outcomes end to end: labels for a scored job, a team model trained
as a job on the `training` queue by a real worker, owner-only, versioned, leading the owner's
next files of that schema (real Redis, PostgreSQL and S3 endpoint)."""

from __future__ import annotations

import io
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from shared import states as S
from shared.db.models import JOB_TRAIN, Job, LabelSet, ReferenceModel
from shared.service import training
from shared.service.training import run_training
from shared.settings import Settings, get_settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows

pytestmark = pytest.mark.integration


def labeled_file(seed: int, rows: int = 3000) -> pd.DataFrame:
    """A simulated file with a column only labels explain (higher for fraud)."""
    spec = replace(with_rows(example_spec(), rows), seed=seed)
    frame = simulate(spec)
    y = frame[spec.column_names()["label"]].astype(int).to_numpy()
    frame["risk_note"] = (np.random.default_rng(seed).normal(size=len(y)) + 2.5 * y).round(3)
    return frame


LABEL = example_spec().column_names()["label"]


def post_file(
    client: FlaskClient, url: str, data: bytes, headers: dict[str, str], **fields: str
) -> Any:
    form = {"file": (io.BytesIO(data), "file.csv"), **fields}
    return client.post(url, data=form, headers=headers, content_type="multipart/form-data")


def wait_done(client: FlaskClient, job_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json
        if body["state"] in S.FINISHED_STATES:
            return body
        time.sleep(0.3)
    raise TimeoutError(f"job {job_id} still {body['state']}")


def scored(client: FlaskClient, frame: pd.DataFrame, headers: dict[str, str]) -> dict[str, Any]:
    data = frame.drop(columns=[LABEL]).to_csv(index=False).encode()
    response = post_file(client, "/api/v1/jobs", data, headers)
    assert response.status_code == 202, response.json
    done = wait_done(client, response.json["job_id"], headers)
    assert done["state"] == S.SUCCEEDED, done
    return done


def labels_csv(frame: pd.DataFrame) -> bytes:
    labels = pd.DataFrame({"row_number": np.arange(1, len(frame) + 1), "is_fraud": frame[LABEL]})
    return labels.to_csv(index=False).encode()


def test_labels_train_an_owner_only_versioned_team_model_that_leads_their_next_files(
    client: FlaskClient, worker: str, registered_library: Path, alice: dict, bob: dict
) -> None:
    first = labeled_file(seed=11)
    job = scored(client, first, alice)
    assert job["methods_used"]["team_model"] is None
    url = f"/api/v1/jobs/{job['job_id']}/labels"
    response = post_file(client, url, labels_csv(first), alice, model_name="chargebacks")
    assert response.status_code == 201, response.json
    trained = wait_done(client, response.json["training_job"]["job_id"], alice)
    assert trained["state"] == S.SUCCEEDED and trained["model"] == "chargebacks@1", trained
    assert client.get(url, headers=alice).json["label_sets"][0]["rows"] == len(first)

    mine = {m["name"]: m for m in client.get("/api/v1/models", headers=alice).json["models"]}
    assert mine["chargebacks@1"]["owner"] == "you" and mine["chargebacks@1"]["kind"] == "team"
    theirs = [m["name"] for m in client.get("/api/v1/models", headers=bob).json["models"]]
    assert theirs and "chargebacks@1" not in theirs
    assert client.get("/api/v1/models/chargebacks@1", headers=bob).status_code == 404
    assert client.delete("/api/v1/models/chargebacks", headers=bob).status_code == 404

    second = labeled_file(seed=12)
    led = scored(client, second, alice)["methods_used"]["team_model"]
    assert led is not None and led["name"] == "chargebacks@1"
    assert scored(client, second, bob)["methods_used"]["team_model"] is None

    again = post_file(client, url, labels_csv(first), alice, model_name="chargebacks")
    retrained = wait_done(client, again.json["training_job"]["job_id"], alice)
    assert retrained["model"] == "chargebacks@2"
    assert scored(client, second, alice)["methods_used"]["team_model"]["name"] == "chargebacks@2"
    deleted = client.delete("/api/v1/models/chargebacks@2", headers=alice)
    assert deleted.status_code == 200 and deleted.json["deleted"] == ["chargebacks@2"]
    store = open_store(settings=get_settings())
    assert list(store.list("models/alice/chargebacks@2/")) == []
    assert list(store.list("models/alice/chargebacks@1/"))
    assert scored(client, second, alice)["methods_used"]["team_model"]["name"] == "chargebacks@1"
    library = next(m for m in theirs if "@" not in m)
    assert client.delete(f"/api/v1/models/{library}", headers=alice).status_code == 409


def test_bad_label_files_get_clear_errors_and_change_nothing(
    client: FlaskClient, worker: str, registered_library: Path, alice: dict, db: Session
) -> None:
    frame = labeled_file(seed=13, rows=1500)
    job = scored(client, frame, alice)
    url = f"/api/v1/jobs/{job['job_id']}/labels"
    unknown = b"row_number,label\n1,1\n2,0\n999999,1\n-4,0\n"
    refused = post_file(client, url, unknown, alice)
    assert refused.status_code == 422
    assert "2 row numbers are not rows of this job" in refused.json["error"]["message"]
    errors = client.get(refused.json["errors_url"].split("localhost")[-1], headers=alice)
    assert errors.status_code == 200 and b"999999" in errors.data and b"-4" in errors.data
    cases = {
        b"row_number,label\n1,maybe\n2,0\n": "1 values of `label` are not labels",
        b"row_number,label\n1,1\n1,0\n": "appear more than once",
        b"when,label\n1,1\n": "needs a `row_number` column",
        b"row_number,a,b\n1,1,2\n": "cannot tell which column holds the labels",
    }
    for body, message in cases.items():
        response = post_file(client, url, body, alice)
        assert response.status_code == 400 and message in response.json["error"]["message"]
    few = post_file(client, url, b"row_number,label\n1,1\n2,0\n3,0\n", alice)
    assert few.status_code == 201 and few.json["training_job"] is None
    assert "at least 10 of each are needed" in few.json["message"]
    ids = example_spec().column_names()["tx_id"]
    by_id = f"{ids},fraud\n{frame[ids].iloc[7]},yes\n{frame[ids].iloc[9]},no\n".encode()
    named = post_file(client, url, by_id, alice)
    assert named.status_code == 201 and named.json["label_set"]["rows"] == 2
    assert named.json["pooled"] == {"rows": 5, "positives": 2, "schema": ANY}
    assert db.scalar(select(func.count()).select_from(LabelSet)) == 2
    assert (
        db.scalar(
            select(func.count()).select_from(ReferenceModel).where(ReferenceModel.owner == "alice")
        )
        == 0
    )


def test_a_training_that_loses_its_job_mid_way_registers_nothing(
    client: FlaskClient,
    registered_library: Path,
    alice: dict,
    db: Session,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Run here, in this process: no message for a worker that a fixture may have started.
    monkeypatch.setattr("api.jobs.enqueue_job", lambda *args: None)
    data = labeled_file(seed=14, rows=1500).to_csv(index=False).encode()
    response = post_file(client, "/api/v1/models", data, alice, name="killed", label=LABEL)
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    real = training.TrainingRunner.register

    def cancelled_meanwhile(self: Any, *args: Any) -> str:
        with client.application.app_context():
            client.delete(f"/api/v1/jobs/{job_id}", headers=alice)
        return real(self, *args)

    monkeypatch.setattr(training.TrainingRunner, "register", cancelled_meanwhile)
    assert run_training(job_id, settings) == S.CANCELLED
    job = db.get(Job, uuid.UUID(job_id))
    db.refresh(job)
    assert job.kind == JOB_TRAIN and job.state == S.CANCELLED
    assert (
        db.scalar(
            select(func.count()).select_from(ReferenceModel).where(ReferenceModel.owner == "alice")
        )
        == 0
    )
    store = open_store(settings=settings)
    assert list(store.list("models/alice/killed")) == []


def test_full_automl_trains_registers_and_stores_a_model_in_one_command(
    registered_library: Path, settings: Settings, db: Session, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    from tests.services import REPO_ROOT

    path = tmp_path / "labeled.csv"
    labeled_file(seed=7).to_csv(path, index=False)
    args = ["scripts/full_automl.py", "--dataset", str(path), "--name", "ops-model"]
    env = dict(os.environ, AUTOML_MODELS_DIR=str(tmp_path / "models"))
    run = subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "registered ops-model (added)" in run.stderr and "next:" not in run.stderr
    assert "(moved 4; " in run.stderr  # it and the three local library models: set-up's last step
    row = db.scalars(select(ReferenceModel).where(ReferenceModel.name == "ops-model")).one()
    assert row.storage_type == "s3" and row.owner == ""
    store = open_store(row.artifact_uri, settings=settings)
    assert sorted(o.key for o in store.list()) == sorted(row.file_checksums)
