"""Error kinds map to HTTP statuses; job options are validated once, by one schema."""

from __future__ import annotations

import pytest

from api.errors import status_of
from shared import errors as E
from shared.engine.options import JobOptions, parse_options
from shared.training.automl import TrainingError


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (E.InputError, 400, "bad_request"),
        (TrainingError, 400, "bad_request"),
        (E.Unauthorized, 401, "unauthorized"),
        (E.NotFound, 404, "not_found"),
        (E.Conflict, 409, "conflict"),
        (E.TooLarge, 413, "too_large"),
        (E.Unavailable, 503, "unavailable"),
        (E.FraudscoreError, 500, "error"),
    ],
)
def test_each_error_kind_has_a_status_and_a_stable_code(
    error: type[E.FraudscoreError], status: int, code: str
) -> None:
    exc = error("why")
    assert (status_of(exc), exc.code, exc.message) == (status, code, "why")


def test_options_from_a_form_are_typed_and_only_set_ones_are_stored() -> None:
    options = parse_options({"top_k": "2", "keep_columns": "on", "high_threshold": "", "x": 1})
    assert options == JobOptions(top_k=2, keep_columns=True)
    assert options.stored() == {"top_k": 2, "keep_columns": True}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"top_k": "lots"}, "invalid option top_k='lots'"),
        ({"top_k": 21}, "invalid option top_k=21"),
        ({"high_threshold": "1.5"}, "invalid option high_threshold='1.5'"),
        ({"model_name": "m" * 201}, "invalid option model_name="),
        ({"alert_rate": "0.6"}, "invalid option alert_rate='0.6'"),
        ({"alert_rate": "0"}, "invalid option alert_rate='0'"),
        ({"medium_threshold": 0.6, "high_threshold": 0.5}, "must not exceed high_threshold"),
    ],
)
def test_bad_options_are_input_errors_naming_the_option(raw: dict, message: str) -> None:
    with pytest.raises(E.InputError, match=message):
        parse_options(raw)
