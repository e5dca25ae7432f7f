"""Celery application: settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="advisor.ping")
def ping(value: str = "pong") -> str:
    """Round-trip check used by the health page and the tests."""
    return value
