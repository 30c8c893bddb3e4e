"""The jobs API end to end: real worker process, Redis, PostgreSQL and the S3 endpoint."""

from __future__ import annotations

import io
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared import states as J
from shared.db.models import Job
from shared.engine.pipeline import Pipeline, ScoreOptions
from shared.library.build import write_csv
from shared.library.cache import ModelStore, RegistrySource
from shared.service.auth import create_token
from shared.service.keys import upload_prefix
from shared.service.runner import run_job
from shared.settings import Settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def upload(tmp_path: Path) -> Path:
    path = tmp_path / "upload.csv"
    write_csv(simulate(with_rows(example_spec(), 2000), labeled=False), path)
    return path


def submit(client: FlaskClient, path: Path, headers: dict[str, str], **fields: str):  # type: ignore[no-untyped-def]
    data = {"file": (io.BytesIO(path.read_bytes()), path.name), **fields}
    return client.post(
        "/api/v1/jobs", data=data, headers=headers, content_type="multipart/form-data"
    )


def wait_done(client: FlaskClient, job_id: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json
        if body["state"] in J.FINISHED_STATES:
            return body
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id} still {body['state']}")


def test_submit_poll_and_download_give_the_offline_predictions(
    client: FlaskClient,
    worker: str,
    registered_library: Path,
    alice: dict,
    upload: Path,
    settings: Settings,
    tmp_path: Path,
) -> None:
    response = submit(client, upload, alice, top_k="2")
    assert response.status_code == 202, response.json
    job_id = response.json["job_id"]
    assert response.json["status_url"].endswith(f"/api/v1/jobs/{job_id}")
    done = wait_done(client, job_id, alice)
    assert done["state"] == "succeeded", done
    assert done["stats"]["total_transactions"] == 2000
    assert done["progress"]["percent"] == 100.0 and done["methods_used"]["top_k_models"] == 2
    downloaded = client.get(f"/api/v1/jobs/{job_id}/result", headers=alice)
    assert downloaded.status_code == 200 and downloaded.mimetype == "text/csv"

    offline = tmp_path / "offline.csv"
    options = ScoreOptions(
        top_k=2,
        chunk_rows=settings.score_chunk_rows,
        high_threshold=settings.risk_high_threshold,
        medium_threshold=settings.risk_medium_threshold,
    )
    store = ModelStore(settings)
    Pipeline(RegistrySource(settings, store), options).run(upload, offline)
    assert downloaded.data == offline.read_bytes()
    assert_redirects_only_to_a_public_endpoint(client, job_id, alice, downloaded.data)


def assert_redirects_only_to_a_public_endpoint(
    client: FlaskClient, job_id: str, alice: dict, data: bytes
) -> None:
    """`?redirect=1` streams while the store's endpoint is private (S3_ENDPOINT_URL alone),
    and links to S3_PUBLIC_ENDPOINT_URL once that is set."""
    import os
    import urllib.request

    from api import create_app
    from shared.settings import get_settings

    url = f"/api/v1/jobs/{job_id}/result?redirect=1"
    streamed = client.get(url, headers=alice)
    assert streamed.status_code == 200 and streamed.data == data
    public = os.environ["S3_ENDPOINT_URL"].replace("127.0.0.1", "localhost")
    os.environ["S3_PUBLIC_ENDPOINT_URL"] = public
    get_settings.cache_clear()
    try:
        linked = create_app().test_client().get(url, headers=alice)
    finally:
        del os.environ["S3_PUBLIC_ENDPOINT_URL"]
        get_settings.cache_clear()
    assert linked.status_code == 302 and linked.location.startswith(public + "/")
    with urllib.request.urlopen(linked.location, timeout=10) as answer:
        assert answer.read() == data


def test_a_bad_csv_ends_failed_with_a_readable_reason(
    client: FlaskClient, worker: str, registered_library: Path, alice: dict, tmp_path: Path
) -> None:
    bad = tmp_path / "people.csv"
    bad.write_text("first_name,city\nAda,London\n")
    job_id = submit(client, bad, alice).json["job_id"]
    done = wait_done(client, job_id, alice)
    assert done["state"] == "failed"
    assert done["error"].startswith("no amount-like column found")
    assert client.get(f"/api/v1/jobs/{job_id}/result", headers=alice).status_code == 404


def test_tokens_isolate_owners(
    client: FlaskClient, alice: dict, bob: dict, upload: Path, db: Session
) -> None:
    job_id = submit(client, upload, alice).json["job_id"]
    assert client.get(f"/api/v1/jobs/{job_id}", headers=bob).status_code == 404
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=bob).status_code == 404
    assert client.get(f"/api/v1/jobs/{job_id}/result", headers=bob).status_code == 404
    assert client.get("/api/v1/jobs", headers=bob).json["total"] == 0
    listed = client.get("/api/v1/jobs", headers=alice).json
    assert [j["job_id"] for j in listed["jobs"]] == [job_id] and listed["total"] == 1
    assert client.get("/api/v1/jobs/not-a-uuid", headers=alice).status_code == 404


@pytest.mark.parametrize("header", [None, "Bearer nope", "Basic abc"])
def test_every_api_route_needs_a_live_token(client: FlaskClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = client.get("/api/v1/jobs", headers=headers)
    assert response.status_code == 401 and response.json["error"]["code"] == "unauthorized"


def test_an_upload_above_the_limit_is_413_and_nothing_is_stored(
    service_env: dict[str, str], db: Session, upload: Path, settings: Settings
) -> None:
    from api import create_app

    carol = {"Authorization": f"Bearer {create_token(db, 'carol')}"}
    client = create_app({"upload_max_bytes": 10_000}).test_client()
    response = submit(client, upload, carol)
    assert response.status_code == 413 and response.json["error"]["code"] == "too_large"
    assert list(open_store(settings=settings).list(upload_prefix("carol"))) == []


def test_a_retried_submit_with_the_same_idempotency_key_returns_the_same_job(
    client: FlaskClient, alice: dict, upload: Path
) -> None:
    headers = {**alice, "Idempotency-Key": "batch-2026-11-29"}
    first = submit(client, upload, headers)
    again = submit(client, upload, headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json["job_id"] == first.json["job_id"]


def test_a_queued_job_is_cancelled_at_once_and_never_runs(
    client: FlaskClient, alice: dict, db: Session, settings: Settings
) -> None:
    job = Job(owner="alice", input_uri=open_store(settings=settings).uri_for("uploads/alice/x.csv"))
    db.add(job)
    db.commit()
    response = client.delete(f"/api/v1/jobs/{job.id}", headers=alice)
    assert response.status_code == 200 and response.json["state"] == "cancelled"
    assert run_job(str(job.id), settings) == "cancelled"
    assert client.delete(f"/api/v1/jobs/{job.id}", headers=alice).status_code == 409


def test_a_queued_job_shows_how_many_jobs_wait_before_it(
    client: FlaskClient, alice: dict, db: Session, settings: Settings
) -> None:
    uri = open_store(settings=settings).uri_for("uploads/alice/x.csv")
    now = datetime.now(UTC)
    jobs = [
        Job(owner=owner, input_uri=uri, created_at=now + timedelta(seconds=i))
        for i, owner in enumerate(["alice", "bob", "alice"])
    ]
    db.add_all(jobs)
    db.commit()
    ahead = [
        client.get(f"/api/v1/jobs/{job.id}", headers=alice).json["progress"]["queued_ahead"]
        for job in (jobs[0], jobs[2])
    ]
    assert ahead[1] == ahead[0] + 2  # bob's job counts too: it is in the same queue
    jobs[0].state = J.RUNNING
    db.commit()
    now_running = client.get(f"/api/v1/jobs/{jobs[0].id}", headers=alice).json["progress"]
    assert now_running["queued_ahead"] is None
    assert (
        client.get(f"/api/v1/jobs/{jobs[2].id}", headers=alice).json["progress"]["queued_ahead"]
        == ahead[1] - 1
    )
    for job in jobs:
        job.state = J.CANCELLED
    db.commit()


def test_an_object_already_in_the_store_can_be_submitted_within_the_callers_prefix(
    client: FlaskClient, alice: dict, upload: Path, settings: Settings
) -> None:
    store = open_store(settings=settings)
    store.put_file("uploads/alice/out-of-band.csv", upload)
    store.put_file("uploads/bob/theirs.csv", upload)
    mine = store.uri_for("uploads/alice/out-of-band.csv")
    ok = client.post("/api/v1/jobs", headers=alice, json={"input_uri": mine})
    assert ok.status_code == 202
    other = client.post(
        "/api/v1/jobs", headers=alice, json={"input_uri": store.uri_for("uploads/bob/theirs.csv")}
    )
    assert other.status_code == 400


def test_invalid_options_are_refused(client: FlaskClient, alice: dict, upload: Path) -> None:
    response = submit(client, upload, alice, top_k="lots")
    assert response.status_code == 400 and "top_k" in response.json["error"]["message"]


def test_the_seed_routes_run_a_job_and_serve_its_predictions(
    client: FlaskClient,
    worker: str,
    registered_library: Path,
    alice: dict,
    bob: dict,
    upload: Path,
    settings: Settings,
) -> None:
    store = open_store(settings=settings)
    store.put_file("uploads/alice/legacy.csv", upload)
    model = sorted(p.name for p in registered_library.iterdir())[0]
    response = client.post(
        "/api/apply_unlabeled", headers=alice, json={"filepath": "legacy.csv", "model_name": model}
    )
    assert response.status_code == 202, response.json
    done = wait_done(client, response.json["job_id"], alice)
    assert done["success"] is True and done["message"] == "scored 2000 transactions"
    assert [m["name"] for m in done["methods_used"]["models"]] == [model]
    assert done["predictions_file"] == f"{done['job_id']}.csv"
    path = done["download_url"].split("://", 1)[1].split("/", 1)[1]
    downloaded = client.get(f"/{path}", headers=alice)
    assert downloaded.status_code == 200 and downloaded.data.startswith(b'"row_number"')
    assert client.get(f"/{path}", headers=bob).status_code == 404


@pytest.mark.parametrize("filepath", ["../bob/theirs.csv", "/etc/passwd", "uploads/bob/theirs.csv"])
def test_the_seed_route_never_reads_outside_the_callers_prefix(
    client: FlaskClient, alice: dict, upload: Path, settings: Settings, filepath: str
) -> None:
    open_store(settings=settings).put_file("uploads/bob/theirs.csv", upload)
    response = client.post("/api/apply_unlabeled", headers=alice, json={"filepath": filepath})
    assert response.status_code == 400


def test_metrics_count_jobs_rows_stages_and_queues(
    client: FlaskClient, worker: str, registered_library: Path, alice: dict, upload: Path
) -> None:
    job_id = submit(client, upload, alice).json["job_id"]
    assert wait_done(client, job_id, alice)["state"] == "succeeded"
    text = client.get("/metrics").get_data(as_text=True)
    values = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert float(values['fraudscore_jobs{state="succeeded"}']) >= 1
    assert float(values["fraudscore_rows_scored_total"]) >= 2000
    assert float(values['fraudscore_stage_seconds_total{stage="features"}']) > 0
    assert 'fraudscore_queue_depth{queue="jobs"}' in values
    assert 'fraudscore_queue_depth{queue="parts"}' in values
    assert float(values["fraudscore_rows_left"]) >= 0
    assert float(values["fraudscore_broker_up"]) == 1
    count = float(values["fraudscore_job_duration_seconds_count"])
    assert (
        count >= 1 and float(values['fraudscore_job_duration_seconds_bucket{le="+Inf"}']) == count
    )
    assert float(values["fraudscore_job_duration_seconds_sum"]) > 0


def test_metrics_give_the_running_jobs_eta(client: FlaskClient, db: Session) -> None:
    job = Job(
        owner="alice",
        input_uri="s3://x/uploads/alice/eta.csv",
        state=J.RUNNING,
        started_at=datetime.now(UTC) - timedelta(seconds=10),
        rows_done=100,
        rows_total=400,
    )
    db.add(job)
    db.commit()
    try:
        text = client.get("/metrics").get_data(as_text=True)
        values = dict(line.rsplit(" ", 1) for line in text.splitlines() if line[0] != "#")
        assert float(values["fraudscore_eta_seconds"]) >= 29  # 300 rows left at 10 rows/s
    finally:
        job.state = J.CANCELLED
        db.commit()


def test_an_empty_submit_names_the_missing_file_field(client: FlaskClient, alice: dict) -> None:
    for response in (
        client.post("/api/v1/jobs", headers=alice),
        client.post("/api/v1/jobs", headers=alice, data={"top_k": "2"}),
    ):
        assert response.status_code == 400
        message = response.json["error"]["message"]
        assert message.startswith("field `file` is missing") and "file://" not in message


def test_an_unknown_model_name_is_refused_at_submit_and_its_upload_removed(
    client: FlaskClient, registered_library: Path, db: Session, upload: Path, settings: Settings
) -> None:
    owner = f"refused-{uuid.uuid4().hex[:8]}"  # an owner with no uploads from other tests
    headers = {"Authorization": f"Bearer {create_token(db, owner)}"}
    response = submit(client, upload, headers, model_name="no_such_model")
    assert response.status_code == 400
    assert "model_name='no_such_model'" in response.json["error"]["message"]
    store = open_store(settings=settings)
    assert list(store.list(upload_prefix(owner))) == []  # nothing stored for a refused job
    assert submit(client, upload, headers, alert_rate="2").status_code == 400
    assert list(store.list(upload_prefix(owner))) == []


def test_a_failed_job_is_a_failed_celery_task_named_by_its_job_id_and_the_users_file(
    client: FlaskClient, worker: str, registered_library: Path, alice: dict, tmp_path: Path
) -> None:
    from celery.result import AsyncResult

    from api.services import services

    notes = tmp_path / "notes.txt"
    notes.write_text("this is not a table of transactions\n")
    response = submit(client, notes, alice)
    assert response.status_code == 202
    job_id = response.json["job_id"]
    done = wait_done(client, job_id, alice)
    assert done["state"] == "failed"
    assert done["error"].startswith("notes.txt has a header but no rows"), done["error"]
    with client.application.app_context():
        task = AsyncResult(job_id, app=services().celery)  # the Celery task id is the job id
        deadline = time.monotonic() + 20
        while task.state != "FAILURE" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert task.state == "FAILURE"
        assert "notes.txt has a header but no rows" in str(task.result)
        assert job_id in str(task.result)


def test_apply_unlabeled_takes_a_file_in_the_request_or_the_name_of_an_earlier_upload(
    client: FlaskClient,
    worker: str,
    registered_library: Path,
    alice: dict,
    bob: dict,
    upload: Path,
) -> None:
    data = {"file": (io.BytesIO(upload.read_bytes()), "march.csv")}
    first = client.post(
        "/api/apply_unlabeled", data=data, headers=alice, content_type="multipart/form-data"
    )
    assert first.status_code == 202, first.json
    key = first.json["filepath"]
    assert key.startswith("uploads/alice/") and key.endswith("/march.csv")
    assert set(first.json) == {"job_id", "status_url", "filepath"}  # no store URI, no path
    again = client.post("/api/v1/jobs", headers=alice, json={"input_uri": key})
    assert again.status_code == 202 and again.json["filepath"] == key  # the key works there too
    by_name = client.post("/api/apply_unlabeled", headers=alice, json={"filepath": "march.csv"})
    assert by_name.status_code == 202 and by_name.json["filepath"] == key
    by_key = client.post("/api/apply_unlabeled", headers=alice, json={"filepath": key})
    assert by_key.status_code == 202 and by_key.json["filepath"] == key
    for answer in (first, by_name, by_key, again):
        assert wait_done(client, answer.json["job_id"], alice)["state"] == "succeeded"
    theirs = client.post("/api/apply_unlabeled", headers=bob, json={"filepath": "march.csv"})
    assert theirs.status_code == 400  # bob never uploaded a march.csv
    assert "no uploaded file called 'march.csv'" in theirs.json["error"]["message"]
