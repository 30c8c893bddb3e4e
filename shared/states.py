"""Job states and stages, named once for the API, the worker and the database."""

from __future__ import annotations

STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED) = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
)
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

STAGES = (STAGE_MATCHING, STAGE_SCORING, STAGE_ANOMALY, STAGE_CALIBRATION, STAGE_WRITING) = (
    "matching",
    "scoring",
    "anomaly",
    "calibration",
    "writing",
)
