"""Where an owner's uploads and a job's results live in the object store."""

from __future__ import annotations

from typing import Any


def upload_prefix(owner: str) -> str:
    """Where an owner's uploads live in the object store (and the only inputs they may name)."""
    return f"uploads/{owner}/"


def result_key(owner: str, job_id: Any, name: str) -> str:
    """Where a job's output files live in the object store."""
    return f"results/{owner}/{job_id}/{name}"


def model_prefix(owner: str, name: str) -> str:
    """Where an owner's team model's files live in the object store (`name` with its version)."""
    return f"models/{owner}/{name}/"


def labels_key(owner: str, job_id: Any, name: str) -> str:
    """Where a job's label sets (and rejected labels' errors files) live in the object store."""
    return f"labels/{owner}/{job_id}/{name}"


def work_prefix(job_id: Any, attempt: int) -> str:
    """Where an attempt that cut its file into parts keeps the plan, the parts and their
    results until the job ends."""
    return f"work/{job_id}/a{attempt}/"
