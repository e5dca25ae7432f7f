"""The shared cache: Django's RedisCache, made to degrade instead of failing when Redis is down.

Everything the web process keeps in the cache can be recomputed (rendered result fragments, the
worker heartbeat) or is a best-effort guard (login and API rate limits). So when Redis errors or
times out, a call answers as a miss ("nothing cached", "lock acquired", "not stored") within the
short socket timeouts set in settings, logs one warning, and for the next few seconds the process
skips Redis altogether (a circuit breaker), so a page never waits on a dead Redis twice.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient
from redis.exceptions import RedisError

logger = logging.getLogger("advisor.cache")

# How long a process leaves Redis alone after an error before trying it again.
SKIP_SECONDS = 5.0


class _Breaker:
    def __init__(self) -> None:
        self._down_until = 0.0
        self._lock = threading.Lock()

    def open(self) -> bool:
        return time.monotonic() < self._down_until

    def trip(self, exc: Exception) -> None:
        with self._lock:
            first = not self.open()
            self._down_until = time.monotonic() + SKIP_SECONDS
        if first:
            logger.warning("Redis cache unavailable (%s: %s); serving without it for %.0f s",
                           type(exc).__name__, exc, SKIP_SECONDS)


def _degrading(fallback: Callable[..., Any]) -> Callable:
    """Run the RedisCache method; on a Redis error (or while the breaker is open) return fallback(*args)."""

    def decorate(method: Callable) -> Callable:
        @functools.wraps(method)
        def wrapper(self: ResilientRedisCache, *args: Any, **kwargs: Any) -> Any:
            if self.breaker.open():
                return fallback(*args, **kwargs)
            try:
                return method(self, *args, **kwargs)
            except RedisError as exc:
                self.breaker.trip(exc)
                return fallback(*args, **kwargs)

        return wrapper

    return decorate


def _default(key: str, default: Any = None, *args: Any, **kwargs: Any) -> Any:
    return default


class _ReusedClient(RedisCacheClient):
    """Django's client builds a new `redis.Redis` object (and its ~170 response callbacks) for every
    call; one per connection pool is enough (it is thread-safe, and the pool reconnects after a fork)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._client(connection_pool=self._get_connection_pool(write))
        return client


class ResilientRedisCache(RedisCache):
    """RedisCache whose every call answers within the socket timeouts, Redis up or down."""

    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _ReusedClient
        self.breaker = _Breaker()

    get = _degrading(_default)(RedisCache.get)
    add = _degrading(lambda *a, **k: True)(RedisCache.add)  # a lock "taken": callers go on unguarded
    set = _degrading(lambda *a, **k: None)(RedisCache.set)
    touch = _degrading(lambda *a, **k: False)(RedisCache.touch)
    delete = _degrading(lambda *a, **k: False)(RedisCache.delete)
    has_key = _degrading(lambda *a, **k: False)(RedisCache.has_key)
    get_many = _degrading(lambda *a, **k: {})(RedisCache.get_many)
    set_many = _degrading(lambda data, *a, **k: list(data))(RedisCache.set_many)
    delete_many = _degrading(lambda *a, **k: None)(RedisCache.delete_many)
    incr = _degrading(lambda key, delta=1, *a, **k: delta)(RedisCache.incr)
    clear = _degrading(lambda *a, **k: None)(RedisCache.clear)


def redis_answers(url: str, timeout: float = 0.3) -> bool:
    """One quick PING, for the development fallback decision at start."""
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout).ping())
    except RedisError:
        return False
