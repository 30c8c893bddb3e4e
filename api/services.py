"""What request handlers use, held on the app: settings, DB sessions, object store, Celery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery import Celery
from flask import current_app

from shared.db.session import sessionmaker_for
from shared.settings import Settings
from shared.storage import ObjectStore


@dataclass
class Services:
    """What request handlers use: settings, DB sessions, object store, Celery client."""

    settings: Settings
    celery: Celery
    store: ObjectStore

    def session(self) -> Any:
        return sessionmaker_for(self.settings.db_url)()


def services() -> Services:
    return current_app.extensions["fraudscore"]
