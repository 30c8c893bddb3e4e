"""Gunicorn's settings for the API, read by every launcher (Procfile, Dockerfile, compose,
`make run`): `gunicorn -c gunicorn.conf.py api.wsgi:app`. Host and port come from settings."""

from shared.settings import get_settings

_settings = get_settings()

bind = f"{_settings.api_host}:{_settings.api_port}"
worker_class = "gthread"
workers = 2
threads = 8
timeout = 300
