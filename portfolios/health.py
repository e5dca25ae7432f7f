"""What the load balancer's health check reports: database, Redis, and the worker's heartbeat.

Cheap by design: one `SELECT 1`, one Redis PING and one cache GET, no session or user lookup.
The answer is 200 while the database answers (pages that only read still work without Redis or a
worker), 503 when it does not; Redis and the worker are reported so a monitor can alert on them.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import redis
from django.conf import settings
from django.db import DatabaseError, connection

from advisor.heartbeat import MAX_AGE_SECONDS, heartbeat_age

logger = logging.getLogger("advisor.health")


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=0.5, socket_timeout=0.5)


def database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError:
        logger.warning("health: the database does not answer", exc_info=True)
        return False


def redis_ok() -> bool:
    try:
        return bool(_redis().ping())
    except redis.RedisError:
        return False


def health_report() -> dict[str, object]:
    db = database_ok()
    broker = redis_ok()
    age = heartbeat_age() if broker else None
    if not broker:
        worker = "unknown"  # the heartbeat lives in Redis
    elif age is None:
        worker = "missing"  # no worker has written one (none started, or none for 10 minutes)
    else:
        worker = "ok" if age <= MAX_AGE_SECONDS else "stale"
    return {
        "ok": db,
        "status": "down" if not db else ("ok" if broker and worker == "ok" else "degraded"),
        "database": "ok" if db else "down",
        "redis": "ok" if broker else "down",
        "worker": worker,
        "worker_seen_seconds_ago": None if age is None else round(age, 1),
    }
