"""Job states and stages, named once for the API and the worker."""

from __future__ import annotations

QUEUED = "queued"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})

STAGE_MATCHING = "matching"
STAGE_SCORING = "scoring"
STAGE_ANOMALY = "anomaly"
STAGE_CALIBRATION = "calibration"
STAGE_WRITING = "writing"

STAGES = (STAGE_MATCHING, STAGE_SCORING, STAGE_ANOMALY, STAGE_CALIBRATION, STAGE_WRITING)
