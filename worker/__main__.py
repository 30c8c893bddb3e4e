"""`python -m worker [flower]`: the one command line of the Celery worker and of Flower,
used by the Procfile, the Dockerfile, compose and `make run`."""

from __future__ import annotations

import os
import sys
import warnings

from shared.service.queue import QUEUES
from shared.settings import Settings, get_settings

APP = ["-A", "worker.celery_app:app"]


def celery_args(role: str, settings: Settings) -> list[str]:
    """Celery's arguments for the worker or for Flower, from settings."""
    if role == "worker":
        return [
            *APP,
            "worker",
            "--loglevel=INFO",
            f"--queues={','.join(QUEUES)}",
            f"--concurrency={settings.worker_concurrency}",
            "--hostname=fraudscore@%h",
        ]
    if role == "flower":
        # Flower lists every owner's jobs and can stop them: never without a password (with
        # one, Flower also refuses cross-site requests).
        if not settings.flower_basic_auth or ":" not in settings.flower_basic_auth:
            raise SystemExit(
                "fraudscore: Flower needs FLOWER_BASIC_AUTH=user:password (make run makes one)"
            )
        flower = [*APP, "flower", f"--port={settings.flower_port}"]
        flower.append(f"--address={settings.api_host}")
        flower.append(f"--basic-auth={settings.flower_basic_auth}")
        return flower
    raise SystemExit(f"usage: python -m worker [worker|flower], not {role!r}")


def lock_flower_routes() -> None:
    """Flower answers /metrics and /healthcheck without its password (worker names, task
    counts): they ask for it like every other route."""
    import tornado.web
    from flower.views import monitor

    for handler in (monitor.Metrics, monitor.Healthcheck):
        handler.get = tornado.web.authenticated(handler.get)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    from celery.bin.celery import main as celery_main

    settings = get_settings()
    if settings.fraudscore_env != "production" and os.geteuid() == 0:
        # Development and tests run as root in containers and CI; production keeps the warning.
        from celery.exceptions import SecurityWarning

        warnings.filterwarnings("ignore", category=SecurityWarning)
    role = argv[0] if argv else "worker"
    if role == "flower":
        lock_flower_routes()
    sys.argv = ["celery", *celery_args(role, settings)]
    celery_main()


if __name__ == "__main__":
    main()
