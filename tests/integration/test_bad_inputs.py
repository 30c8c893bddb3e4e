"""The bad-input matrix: each kind of bad request or file gets a 4xx naming the problem, a
failed job with a reason, or rows in the errors file; never a 500, a hang or a silent score."""

from __future__ import annotations

import gzip
import io
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from shared.service.auth import create_token, revoke
from shared.settings import Settings
from shared.storage import open_store
from shared.training.simulator import example_spec, simulate, with_rows

pytestmark = pytest.mark.integration
GOOD = simulate(with_rows(example_spec(), 300), labeled=False)
AMOUNT = example_spec().column_names()["amount"]


def _csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def _with_amounts(values: list[str]) -> bytes:
    frame = GOOD.copy()
    frame[AMOUNT] = frame[AMOUNT].astype(str)
    frame.loc[: len(values) - 1, AMOUNT] = values
    return _csv(frame)


def _form(content: bytes, name: str = "upload.csv", **fields: str) -> dict:
    return {"file": (io.BytesIO(content), name), **fields}


@pytest.fixture
def owner(db: Session) -> tuple[str, dict[str, str]]:
    name = f"bad-{uuid.uuid4().hex[:8]}"
    return name, {"Authorization": f"Bearer {create_token(db, name)}"}


def _post(client: FlaskClient, headers: dict[str, str], **kwargs):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/jobs", headers=headers, **kwargs)


def _multipart(client: FlaskClient, headers: dict[str, str], data: dict):  # type: ignore[no-untyped-def]
    return _post(client, headers, data=data, content_type="multipart/form-data")


def _two_files(client: FlaskClient, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    boundary = "b0undary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n\r\n'
        "amount\n1\n\r\n"
    )
    body = (part + part.replace("a.csv", "b.csv") + f"--{boundary}--\r\n").encode()
    return _post(
        client, headers, data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


# (kind, request, status, words the message must contain)
REQUESTS: list[tuple[str, Callable, int, str]] = [
    ("empty body", lambda c, h: _post(c, h), 400, "field `file` is missing"),
    ("form without file", lambda c, h: _multipart(c, h, {"top_k": "2"}), 400, "`file` is missing"),
    (
        "no boundary",
        lambda c, h: _post(c, h, data=b"x", content_type="multipart/form-data"),
        400,
        "boundary",
    ),
    ("two file parts", _two_files, 400, "second `file` part"),
    (
        "top_k not a number",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), top_k="lots")),
        400,
        "top_k",
    ),
    ("top_k zero", lambda c, h: _multipart(c, h, _form(_csv(GOOD), top_k="0")), 400, "top_k"),
    (
        "top_k too large",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), top_k="999")),
        400,
        "top_k",
    ),
    (
        "alert_rate above 0.5",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), alert_rate="2")),
        400,
        "alert_rate",
    ),
    (
        "threshold above 1",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), high_threshold="1.5")),
        400,
        "high_threshold",
    ),
    (
        "medium above high",
        lambda c, h: _multipart(
            c, h, _form(_csv(GOOD), high_threshold="0.2", medium_threshold="0.4")
        ),
        400,
        "medium_threshold",
    ),
    (
        "reasons not a boolean",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), reasons="maybe")),
        400,
        "reasons",
    ),
    (
        "unknown model_name",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), model_name="nope")),
        400,
        "model_name",
    ),
    (
        "input_uri of another owner",
        lambda c, h: _post(c, h, json={"input_uri": "s3://x/uploads/bob/a.csv"}),
        400,
        "files you uploaded",
    ),
    (
        "input_uri climbing out",
        lambda c, h: _post(c, h, json={"input_uri": "uploads/me/../../etc/passwd"}),
        400,
        "files you uploaded",
    ),
    ("JSON that is not an object", lambda c, h: _post(c, h, json=["a"]), 400, "`file` is missing"),
    ("no token", lambda c, h: c.get("/api/v1/jobs"), 401, "Bearer"),
    (
        "malformed token",
        lambda c, h: c.get("/api/v1/jobs", headers={"Authorization": "Bearer"}),
        401,
        "Bearer",
    ),
    (
        "unknown job id",
        lambda c, h: c.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=h),
        404,
        "no job",
    ),
    ("malformed job id", lambda c, h: c.get("/api/v1/jobs/not-a-uuid", headers=h), 404, "no job"),
    (
        "apply_unlabeled without filepath",
        lambda c, h: c.post("/api/apply_unlabeled", headers=h, json={}),
        400,
        "filepath",
    ),
    (
        "page beyond any page",
        lambda c, h: c.get("/api/v1/jobs?page=" + "9" * 30, headers=h),
        400,
        "query field `page`: Input should be less than or equal to 1000000",
    ),
    (
        "page 0",
        lambda c, h: c.get("/api/v1/jobs?page=0", headers=h),
        400,
        "query field `page`: Input should be greater than or equal to 1",
    ),
    (
        "per_page over 100",
        lambda c, h: c.get("/api/v1/jobs?per_page=1000", headers=h),
        400,
        "query field `per_page`",
    ),
    (
        "an unknown query field",
        lambda c, h: c.get("/api/v1/jobs?pgae=2", headers=h),
        400,
        "unknown query field 'pgae': expected `page`, `per_page`",
    ),
    (
        "an unknown JSON field",
        lambda c, h: c.post(
            "/api/apply_unlabeled", headers=h, json={"filepath": "a.csv", "modelname": "x"}
        ),
        400,
        "unknown JSON field 'modelname'",
    ),
    (
        "a filepath no key can have (found by the fuzz: a 500)",
        lambda c, h: c.post("/api/apply_unlabeled", headers=h, json={"filepath": "a\\b.csv"}),
        400,
        "you have no uploaded file called",
    ),
    (
        "a filepath that is not text",
        lambda c, h: c.post("/api/apply_unlabeled", headers=h, json={"filepath": 7}),
        400,
        "JSON field `filepath`: Input should be a valid string",
    ),
    (
        "a training name with a slash",
        lambda c, h: c.post(
            "/api/v1/models",
            headers=h,
            data={"file": (io.BytesIO(_csv(GOOD)), "l.csv"), "name": "a/b"},
            content_type="multipart/form-data",
        ),
        400,
        "form field `name`: invalid model name 'a/b'",
    ),
    (
        "an unknown training field",
        lambda c, h: c.post(
            "/api/v1/models",
            headers=h,
            data={"file": (io.BytesIO(_csv(GOOD)), "l.csv"), "name": "m", "lable": "y"},
            content_type="multipart/form-data",
        ),
        400,
        "unknown form field 'lable'",
    ),
    (
        "Idempotency-Key over 200 characters",
        lambda c, h: _multipart(c, {**h, "Idempotency-Key": "k" * 201}, _form(_csv(GOOD))),
        400,
        "Idempotency-Key",
    ),
    (
        "NUL in model_name",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), model_name="a\x00b")),
        400,
        "model_name",
    ),
    (
        "NUL in filepath",
        lambda c, h: c.post("/api/apply_unlabeled", headers=h, json={"filepath": "a\x00b.csv"}),
        400,
        "filepath",
    ),
    (
        "unknown option",
        lambda c, h: _multipart(c, h, _form(_csv(GOOD), topk="2")),
        400,
        "unknown option 'topk'",
    ),
    (
        "a file part without a filename",
        lambda c, h: _multipart(c, h, {"file": _csv(GOOD).decode()[:500]}),
        400,
        "the `file` part has no filename",
    ),
    (
        "60 form parts",
        lambda c, h: _multipart(c, h, {f"x{i}": "1" for i in range(60)} | _form(_csv(GOOD))),
        400,
        "more than 50 parts",
    ),
]


@pytest.fixture(params=["postgresql", "sqlite"])
def edge(
    request: pytest.FixtureRequest,
    client: FlaskClient,
    owner: tuple[str, dict[str, str]],
    service_env: dict[str, str],
    tmp_path: Path,
) -> tuple[FlaskClient, str, dict[str, str]]:
    """The API and a caller's token on each database: (client, owner, headers)."""
    if request.param == "postgresql":
        return client, *owner
    from api import create_app
    from shared.db.migrate import upgrade
    from shared.db.session import session_scope

    url = f"sqlite:///{tmp_path / 'edge.db'}"
    upgrade(url)
    name = f"bad-{uuid.uuid4().hex[:8]}"
    with session_scope(url) as session:
        token = create_token(session, name)
    app = create_app({"database_url": url})
    return app.test_client(), name, {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("kind", "request_", "status", "words"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
def test_a_bad_request_is_a_4xx_that_names_the_problem(
    edge: tuple[FlaskClient, str, dict[str, str]],
    registered_library: Path,
    settings: Settings,
    kind: str,
    request_: Callable,
    status: int,
    words: str,
) -> None:
    client, name, headers = edge
    response = request_(client, headers)
    assert response.status_code == status, (kind, response.status_code, response.json)
    message = response.json["error"]["message"]
    assert words in message, (kind, message)
    assert "/tmp/" not in message and "file://" not in message  # no server paths
    assert list(open_store(settings=settings).list(f"uploads/{name}/")) == []  # nothing kept


def test_a_revoked_token_and_an_oversized_upload_are_refused(
    service_env: dict[str, str], db: Session, owner: tuple[str, dict[str, str]], settings: Settings
) -> None:
    from api import create_app

    _, headers = owner
    small = create_app({"upload_max_bytes": 5_000}).test_client()
    content = _csv(GOOD)
    assert len(content) > 5_000
    response = _multipart(small, headers, _form(content))
    assert (
        response.status_code == 413 and "limited to 5000 bytes" in response.json["error"]["message"]
    )
    fits = content[:4_990]  # the limit is on the file, not on the form around it
    assert _multipart(small, headers, _form(fits)).status_code == 202
    revoke(db, headers["Authorization"].split()[1])
    assert small.get("/api/v1/jobs", headers=headers).status_code == 401


def _wait(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).json
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.2)
    raise TimeoutError(job_id)


def _corrupt_gzip() -> bytes:
    whole = gzip.compress(_csv(GOOD))
    return whole[: len(whole) // 2]


def _unclosed_quote() -> bytes:
    """A quote opened in the last column of row 100 and never closed."""
    lines = _csv(GOOD).decode().splitlines(keepends=True)
    cells = lines[100].split(",")
    lines[100] = ",".join([*cells[:-1], '"' + cells[-1]])
    return "".join(lines).encode()


def _late_latin1() -> bytes:
    """UTF-8 for its first 256 KiB and more, then one Latin-1 byte (a cafe\xe9 in an id)."""
    big = _csv(simulate(with_rows(example_spec(), 4000), labeled=False))
    assert len(big) > 300_000
    lines = big.split(b"\n")
    lines[-2] = lines[-2].replace(b"T", b"Tcaf\xe9", 1)
    return b"\n".join(lines)


def _multiline_notes() -> bytes:
    """A last column of quoted notes with line breaks and a row's worth of commas."""
    frame = GOOD.copy()
    frame["note"] = ""
    frame.loc[::7, "note"] = "called the customer, no answer\nagain: a, b, c, d, e, f, g, h, i"
    return _csv(frame)


TIME = example_spec().column_names()["timestamp"]


def _times(fmt: str, every: int = 1) -> bytes:
    """GOOD with every `every`-th time written in another format (1: all of them)."""
    frame = GOOD.copy()
    stamps = pd.to_datetime(frame[TIME])
    rows = frame.index[::every]
    frame.loc[rows, TIME] = stamps[rows].dt.strftime(fmt)
    return _csv(frame)


def _ragged() -> bytes:
    return b"amount,card\n1.5,c1\n2.5,c2,extra,fields\n3.5,c3\n"


# (kind, file name, content, outcome: "failed", "errors", "warning" or "scored", words)
FILES: list[tuple[str, str, bytes, str, str]] = [
    ("empty file", "empty.csv", b"", "failed", "empty.csv is empty"),
    ("header only", "head.csv", b"amount,card\n", "failed", "head.csv has a header but no rows"),
    (
        "binary file",
        "photo.png",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 50,
        "failed",
        "photo.png is not a text CSV file",
    ),
    (
        "prose, not a table",
        "notes.txt",
        b"dear team, the numbers are attached\n",
        "failed",
        "notes.txt has a header but no rows",
    ),
    ("no amount-like column", "ids.csv", b"card,shop\nc1,s1\nc2,s2\nc3,s1\n", "failed", "amount"),
    (
        "duplicate column names",
        "dup.csv",
        b"amount,amount\n1,2\n",
        "failed",
        "the header names 'amount' more than once",
    ),
    (
        "an unnamed column beside column_2",
        "gap.csv",
        b"amount,,column_2\n1,2,3\n",
        "failed",
        "'column_2' more than once (an empty name counts as column_N",
    ),
    ("a Latin-1 byte past 256 KiB", "late.csv", _late_latin1(), "warning", "not UTF-8 throughout"),
    (
        "a header, then lines of spaces",
        "blank.csv",
        b"amount,card,shop\n  \n\t\n \n",
        "failed",
        "blank.csv has a header but no rows",
    ),
    (
        "dates as spreadsheets write them",
        "sheet.csv",
        _times("%b %d, %Y %I:%M %p"),
        "scored",
        "",
    ),
    (
        "two date formats",
        "mixed.csv",
        _times("%d.%m.%Y %H:%M", every=10),
        "warning",
        "30 rows (10.0%)",
    ),
    (
        "an amount column empty in every row",
        "noamount.csv",
        _with_amounts([""] * len(GOOD)),
        "failed",
        f"the amount column {AMOUNT!r} is empty in all of the first 300 rows",
    ),
    (
        "quoted notes with line breaks and commas",
        "notes.csv",
        _multiline_notes(),
        "scored",
        "",
    ),
    (
        "Excel's Unicode text (UTF-16 with BOM, tabs)",
        "excel.txt",
        GOOD.to_csv(index=False, sep="\t").encode("utf-16"),
        "scored",
        "",
    ),
    (
        "header line of 300 KiB",
        "wide.csv",
        b"a" * 300_000 + b"\n1\n",
        "failed",
        "header line is longer",
    ),
    (
        "amount field of 9 MiB",
        "long.csv",
        _csv(GOOD) + b'T1,2026-01-01 00:00:00,C1,M1,"' + b"9" * (9 << 20) + b'",x,y\n',
        "errors",
        "not a finite number",
    ),
    ("ragged rows", "ragged.csv", _ragged(), "failed", "malformed CSV"),
    (
        "unclosed quote in the last column",
        "quote.csv",
        _unclosed_quote(),
        "failed",
        "of row 100 is never closed",
    ),
    ("truncated gzip", "cut.csv.gz", _corrupt_gzip(), "failed", "cut.csv.gz"),
    (
        "unreadable amounts",
        "text.csv",
        _with_amounts(["abc", "12..5", "?"]),
        "errors",
        "unreadable amount",
    ),
    (
        "infinite amounts",
        "inf.csv",
        _with_amounts(["inf", "1e309", "-inf"]),
        "errors",
        "not a finite number",
    ),
    ("absurd amounts", "huge.csv", _with_amounts(["1e20"]), "errors", "amount beyond"),
    (
        "negative amounts",
        "refund.csv",
        _with_amounts(["-5", "-12.50"]),
        "warning",
        "negative amount",
    ),
]


@pytest.mark.parametrize(
    ("kind", "name", "content", "outcome", "words"), FILES, ids=[f[0] for f in FILES]
)
def test_a_bad_file_fails_with_a_reason_or_lists_its_rows(
    client: FlaskClient,
    worker: str,
    registered_library: Path,
    owner: tuple[str, dict[str, str]],
    kind: str,
    name: str,
    content: bytes,
    outcome: str,
    words: str,
) -> None:
    _, headers = owner
    response = _multipart(client, headers, _form(content, name))
    assert response.status_code == 202, (kind, response.json)
    job = _wait(client, headers, response.json["job_id"])
    if outcome == "failed":
        assert job["state"] == "failed", (kind, job["state"])
        assert words in job["error"] and "internal error" not in job["error"], (kind, job["error"])
        assert "/tmp/" not in job["error"] and "input.csv" not in job["error"]
        return
    assert job["state"] == "succeeded", (kind, job.get("error"))
    if outcome == "scored":  # every row, none failed, every value read
        assert job["stats"]["total_transactions"] == len(GOOD), job["stats"]
        assert job["stats"]["rows_failed"] == 0
        assert not [w for w in job["methods_used"]["warnings"] if "not read" in w]
        assert TIME not in job["methods_used"]["columns"]["anomaly_only"]  # read as the time
        return
    if outcome == "warning":
        assert any(words in w for w in job["methods_used"]["warnings"]), job["methods_used"]
        assert job["stats"]["rows_failed"] == 0
        return
    errors = client.get(f"/api/v1/jobs/{job['job_id']}/errors", headers=headers)
    assert errors.status_code == 200
    table = pd.read_csv(io.BytesIO(errors.data))
    assert len(table) == job["stats"]["rows_failed"] > 0 and words in table["reason"].iloc[0]
    scored = pd.read_csv(
        io.BytesIO(client.get(f"/api/v1/jobs/{job['job_id']}/result", headers=headers).data)
    )
    assert not set(scored["row_number"]) & set(table["row_number"])  # never silently scored


def test_formula_cells_come_back_neutralised(
    client: FlaskClient, worker: str, registered_library: Path, owner: tuple[str, dict[str, str]]
) -> None:
    _, headers = owner
    names = example_spec().column_names()
    frame = GOOD.copy()
    attacks = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "@SUM(1+1)", "-2+3", "\tx"]
    frame.loc[: len(attacks) - 1, names["tx_id"]] = attacks
    frame["=formula_column"] = "-5"
    for keep in ("false", "true"):
        response = _multipart(client, headers, _form(_csv(frame), keep_columns=keep))
        job = _wait(client, headers, response.json["job_id"])
        assert job["state"] == "succeeded", job.get("error")
        text = client.get(f"/api/v1/jobs/{job['job_id']}/result", headers=headers).data.decode()
        out = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        cells = out[names["tx_id"]].tolist()[: len(attacks)]
        assert cells == ["'" + a for a in attacks]
        for column in out.columns:
            assert not str(column).startswith("="), column
        if keep == "true":
            assert (out["'=formula_column"] == "-5").all()  # numbers are left alone


@pytest.mark.parametrize("backend", ["s3", "file"])
@pytest.mark.parametrize("name", ["..", ".", "...", "../../etc/x.csv", "a\\..\\b.csv"])
def test_an_upload_name_is_data_never_a_path(
    service_env: dict[str, str],
    registered_library: Path,
    owner: tuple[str, dict[str, str]],
    settings: Settings,
    tmp_path: Path,
    name: str,
    backend: str,
) -> None:
    from api import create_app

    owner_name, headers = owner
    uri = settings.store_uri if backend == "s3" else (tmp_path / "store").as_uri()
    client = create_app({"object_store_uri": uri}).test_client()
    first = _multipart(client, headers, _form(_csv(GOOD), name=name))
    assert first.status_code == 202, first.json
    again = _multipart(client, headers, _form(_csv(GOOD), name="next.csv"))
    assert again.status_code == 202, again.json  # the owner's folder is still a folder
    store = open_store(uri, settings=settings)
    keys = [item.key for item in store.list(f"uploads/{owner_name}/")]
    assert len(keys) == 2
    assert all(k.count("/") == 3 and not k.rsplit("/", 1)[1].startswith(".") for k in keys), keys


def test_a_percent_sign_is_no_wildcard_for_an_earlier_upload(
    client: FlaskClient, registered_library: Path, owner: tuple[str, dict[str, str]]
) -> None:
    _, headers = owner
    assert _multipart(client, headers, _form(_csv(GOOD), name="march.csv")).status_code == 202
    for pattern in ("%", "%.csv", "_arch.csv"):
        response = client.post("/api/apply_unlabeled", headers=headers, json={"filepath": pattern})
        assert response.status_code == 400, (pattern, response.json)
        assert "no uploaded file called" in response.json["error"]["message"]
    exact = client.post("/api/apply_unlabeled", headers=headers, json={"filepath": "march.csv"})
    assert exact.status_code == 202


def test_urls_in_answers_come_from_the_public_url_not_the_host_header(
    client: FlaskClient,
    registered_library: Path,
    owner: tuple[str, dict[str, str]],
    settings: Settings,
) -> None:
    _, headers = owner
    evil = {**headers, "Host": "evil.example"}
    accepted = _multipart(client, evil, _form(_csv(GOOD)))
    assert accepted.status_code == 202
    assert accepted.json["status_url"].startswith(settings.base_url + "/api/v1/jobs/")
    listed = client.get("/api/v1/jobs", headers=evil).json["jobs"]
    assert listed and "evil.example" not in str(listed)
