"""One error family with stable codes; the API maps each code to an HTTP status.

Only `InputError` (and its kin below) carries a message meant for users; anything else that
escapes a job or a request is an internal error, logged and reported as such.
"""

from __future__ import annotations


class FraudscoreError(Exception):
    """An error the service explains to its caller; `code` is stable, the message is for people."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(FraudscoreError, ValueError):
    """The caller's file, options or request is unusable as given; they can fix it."""

    code = "bad_request"


class Unauthorized(FraudscoreError):
    """No valid credentials."""

    code = "unauthorized"


class NotFound(FraudscoreError):
    """No such thing for this caller (also when it belongs to someone else)."""

    code = "not_found"


class Conflict(FraudscoreError):
    """The request contradicts the current state (e.g. cancelling a finished job)."""

    code = "conflict"


class TooLarge(FraudscoreError):
    """The upload is over the configured limit."""

    code = "too_large"


class Unavailable(FraudscoreError):
    """A dependency (database, broker, object store) cannot be reached; try again later."""

    code = "unavailable"
