"""A real Celery worker consumes from Redis."""

import pytest
from celery.contrib.testing.worker import start_worker

from finanzapro.celery import app, ping


@pytest.mark.django_db(transaction=True)
def test_a_worker_consumes_a_task_from_redis() -> None:
    assert app.conf.broker_url.startswith("redis://")
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        assert ping.delay().get(timeout=30) == "pong"


def test_celery_settings_are_safe_for_redelivery() -> None:
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 2  # the next task at hand, no more
    assert conf.task_serializer == "json"
    assert conf.accept_content == ["json"]
    assert conf.task_soft_time_limit < conf.task_time_limit
