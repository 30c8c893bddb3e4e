"""Celery worker: the app, thin task shells and process signals."""
