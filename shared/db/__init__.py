"""Metadata database: models, engine/session helpers, migrations."""

from shared.db.models import ApiToken, Base, Job, ReferenceModel
from shared.db.session import get_engine, session_scope, sessionmaker_for

__all__ = [
    "ApiToken",
    "Base",
    "Job",
    "ReferenceModel",
    "get_engine",
    "session_scope",
    "sessionmaker_for",
]
