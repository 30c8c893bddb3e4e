"""Server-rendered pages: upload a file, list jobs, watch a job. The pages call the JSON API
with the token the user pastes once (kept in the browser's localStorage)."""

from __future__ import annotations

import uuid

from flask import Blueprint, abort, render_template

bp = Blueprint(
    "pages",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)


@bp.get("/")
@bp.get("/upload")
def upload() -> str:
    return render_template("upload.html")


@bp.get("/jobs")
def jobs() -> str:
    return render_template("jobs.html")


@bp.get("/jobs/<job_id>")
def job(job_id: str) -> str:
    try:
        uuid.UUID(job_id)
    except ValueError:
        abort(404)
    return render_template("job.html", job_id=job_id)
