"""JSON logs carry the job id and stage of the job being run."""

from __future__ import annotations

import json
import logging

from shared.logs import JsonFormatter, _JobFields, job_context, set_stage


def test_lines_logged_inside_a_job_carry_its_id_and_stage() -> None:
    record = logging.LogRecord(
        "shared.service.runner", logging.INFO, __file__, 1, "chunk %d", (3,), None
    )
    fields = _JobFields()
    with job_context("1b2c"):
        set_stage("scoring")
        fields.filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "1b2c" and line["stage"] == "scoring"
    assert line["message"] == "chunk 3" and line["level"] == "INFO"


def test_lines_outside_a_job_have_no_job_fields() -> None:
    record = logging.LogRecord("api", logging.WARNING, __file__, 1, "hello", (), None)
    _JobFields().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert "job_id" not in line and "stage" not in line
