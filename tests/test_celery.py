"""A task round trip through a real Celery worker and the real Redis."""

import pytest
from django.conf import settings

from advisor.celery import app, ping


@pytest.mark.broker
def test_it_round_trips_a_task_through_a_real_worker(celery_worker):
    result = ping.delay("hello from the tests")
    assert result.get(timeout=30) == "hello from the tests"
    assert app.conf.broker_url.startswith("redis://")


def test_celery_is_never_eager_and_does_not_lose_work():
    assert app.conf.task_always_eager is False
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.task_serializer == "json"
    assert app.conf.task_time_limit > app.conf.task_soft_time_limit > 0
    assert settings.CELERY_BEAT_SCHEDULER.startswith("django_celery_beat")
