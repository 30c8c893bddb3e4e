"""A real worker process answers over the machine's Redis."""

from __future__ import annotations

import pytest

from shared.service.queue import QUEUE_CONTROL, TASK_PING, CeleryConfig, create_celery
from shared.settings import Settings, load_settings

pytestmark = pytest.mark.integration


def test_the_health_task_makes_a_round_trip(worker: str, settings: Settings) -> None:
    app = create_celery(settings)
    result = app.send_task(TASK_PING).get(timeout=30)
    assert result["pong"] is True and result["pid"] > 0


def test_the_worker_answers_a_broadcast_ping(worker: str, settings: Settings) -> None:
    replies = create_celery(settings).control.ping(timeout=2)
    assert replies and all("ok" in next(iter(r.values())) for r in replies)


def test_the_worker_consumes_the_named_queues(worker: str, settings: Settings) -> None:
    active = create_celery(settings).control.inspect(timeout=2).active_queues()
    names = {q["name"] for queues in active.values() for q in queues}
    assert names == {"jobs", "parts", "control", "training"}


def test_the_configuration_is_safe_for_long_jobs() -> None:
    config = CeleryConfig(load_settings(job_soft_time_limit_s=600, job_time_limit_s=660))
    assert config.worker_prefetch_multiplier == 1
    assert config.task_acks_late and config.task_reject_on_worker_lost
    assert config.task_serializer == "json" and config.accept_content == ("json",)
    assert (config.task_soft_time_limit, config.task_time_limit) == (600, 660)
    assert config.broker_transport_options["visibility_timeout"] > 660
    assert config.task_routes[TASK_PING]["queue"] == QUEUE_CONTROL
