"""Gunicorn's settings for the API, read by every launcher (Procfile, Dockerfile, compose,
`make run`): `gunicorn -c gunicorn.conf.py api.asgi:app`. Host and port come from settings."""

import logging

from shared.settings import get_settings
from shared.storage import open_store

_settings = get_settings()

bind = f"{_settings.api_host}:{_settings.api_port}"
# Uvicorn workers read requests asynchronously: slow clients cannot hold the app's threads.
worker_class = "uvicorn_worker.UvicornWorker"
workers = 2
timeout = 300
# Nothing here uses gunicorn's control socket; its default path in the home folder is shared
# by every checkout on the machine (a second `make run` elsewhere took it over).
control_socket_disable = True


def on_starting(server: object) -> None:
    """Before serving: remove uploads that a killed API process left half written."""
    removed = open_store(settings=_settings).sweep_partial(_settings.partial_upload_max_age_s)
    if removed:
        logging.getLogger("api").warning("removed %d unfinished uploads", removed)
