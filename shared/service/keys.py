"""Where an owner's uploads and a job's results live in the object store."""

from __future__ import annotations

from typing import Any


def upload_prefix(owner: str) -> str:
    """Where an owner's uploads live in the object store (and the only inputs they may name)."""
    return f"uploads/{owner}/"


def result_key(owner: str, job_id: Any, name: str) -> str:
    """Where a job's output files live in the object store."""
    return f"results/{owner}/{job_id}/{name}"
