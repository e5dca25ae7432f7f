"""Celery application: settings come from Django's, under the CELERY_ namespace."""

import os

from celery import Celery
from celery.signals import worker_init, worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "advisor.settings")

app = Celery("advisor")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="advisor.ping")
def ping(value: str = "pong") -> str:
    """Round-trip check used by the health page and the tests."""
    return value


@worker_init.connect
def warm_engine(**kwargs) -> None:
    """Warm the engine's market caches in the worker's main process, before it forks its pool.

    Pool processes inherit what it built; its own database connection is closed so none is shared.
    """
    import logging

    from django.db import connections

    from portfolios.recommendations.engine_feed import warm_up

    logging.getLogger("advisor.worker").info(warm_up())
    connections.close_all()


_heartbeat = None


@worker_ready.connect
def heartbeat_start(**kwargs) -> None:
    """Write the worker heartbeat the health endpoint reads (advisor/heartbeat.py)."""
    global _heartbeat
    from advisor.heartbeat import HeartbeatThread

    _heartbeat = HeartbeatThread()
    _heartbeat.start()


@worker_shutdown.connect
def heartbeat_stop(**kwargs) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
