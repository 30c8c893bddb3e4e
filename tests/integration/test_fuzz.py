"""A property-based fuzz of the HTTP API from its own OpenAPI document (schemathesis), against
the API served over real HTTP on the test services: no 500, no hang, no answer that breaks its
documented schema. Bounded: FUZZ_EXAMPLES per operation, each call within CALL_TIMEOUT_S."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from sqlalchemy.orm import Session

from shared.service.auth import create_token

pytestmark = pytest.mark.integration
FUZZ_EXAMPLES = int(os.environ.get("FRAUDSCORE_FUZZ_EXAMPLES", "12"))
CALL_TIMEOUT_S = 20


def test_no_generated_request_breaks_the_api(
    live_api: str, registered_library: Path, db: Session
) -> None:
    schema = schemathesis.openapi.from_url(f"{live_api}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {create_token(db, 'fuzz')}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: list[str] = []
    calls: dict[str, int] = {}
    for operation in operations:

        @settings(
            max_examples=FUZZ_EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            label = case.operation.label
            calls[label] = calls.get(label, 0) + 1
            case.call_and_validate(
                base_url=live_api,
                headers=headers,
                timeout=CALL_TIMEOUT_S,
                checks=[not_a_server_error, response_schema_conformance],
            )

        try:
            call()
        except Exception as exc:  # the first failure of each operation, all reported at once
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    assert not failures, "\n\n".join(failures)
    assert sum(calls.values()) >= 3 * len(operations), calls  # it did call them, many times
