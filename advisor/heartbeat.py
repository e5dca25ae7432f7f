"""The worker's heartbeat: a timestamp a Celery worker writes to the shared cache every few seconds.

The health endpoint reads it (one cache GET) to tell whether a worker answered recently, without
asking the broker. A thread in the worker's main process writes it from `worker_ready` until
`worker_shutdown` (advisor/celery.py).
"""

from __future__ import annotations

import threading
import time

from django.core.cache import cache

KEY = "worker:heartbeat"
INTERVAL_SECONDS = 10.0
# A heartbeat older than this means no worker is alive (a few missed beats, not one slow one).
MAX_AGE_SECONDS = 60.0


def heartbeat_write(now: float | None = None) -> None:
    cache.set(KEY, time.time() if now is None else now, timeout=int(MAX_AGE_SECONDS * 10))


def heartbeat_age(now: float | None = None) -> float | None:
    """Seconds since a worker last wrote its heartbeat; None when none is recorded (or Redis is down)."""
    seen = cache.get(KEY)
    if not isinstance(seen, int | float):
        return None
    return max(0.0, (time.time() if now is None else now) - float(seen))


class HeartbeatThread(threading.Thread):
    def __init__(self, interval: float = INTERVAL_SECONDS) -> None:
        super().__init__(name="advisor-heartbeat", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            heartbeat_write()  # the cache degrades on its own when Redis is down
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
