"""The default cache: Django's Redis cache, as a cache should be when Redis is away.

Everything kept in it can be recomputed (a Stripe invoice preview, ...), so while Redis does not
answer a read is a miss and a write is dropped, with one warning per outage and a count in
`STATS` (shown by `/healthz`), instead of an error for the request. Short socket timeouts
(`CACHE_REDIS_TIMEOUT`) keep a hung Redis from holding requests.
"""

from __future__ import annotations

import functools
import logging
import threading
import time

import redis
from django.core.cache.backends.redis import RedisCache

logger = logging.getLogger(__name__)

STATS = {"errors": 0}
_state = {"warned_at": 0.0}
_lock = threading.Lock()
_WARN_EVERY = 60.0  # seconds between two warnings of one outage


def _note(operation: str, exc: Exception) -> None:
    with _lock:
        STATS["errors"] += 1
        now = time.monotonic()
        warn = now - _state["warned_at"] >= _WARN_EVERY
        if warn:
            _state["warned_at"] = now
    if warn:
        logger.warning(
            "cache: Redis unavailable on %s (%s); treated as a miss", operation, type(exc).__name__
        )


def _safe(default):
    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except redis.RedisError as exc:
                _note(method.__name__, exc)
                fallback = default(args, kwargs) if callable(default) else default
                return fallback

        return wrapper

    return decorate


def _default_arg(args, kwargs):
    return kwargs.get("default", args[1] if len(args) > 1 else None)


class ResilientRedisCache(RedisCache):
    get = _safe(_default_arg)(RedisCache.get)
    get_many = _safe({})(RedisCache.get_many)
    set = _safe(None)(RedisCache.set)
    set_many = _safe([])(RedisCache.set_many)
    add = _safe(False)(RedisCache.add)
    touch = _safe(False)(RedisCache.touch)
    delete = _safe(False)(RedisCache.delete)
    delete_many = _safe(None)(RedisCache.delete_many)
    has_key = _safe(False)(RedisCache.has_key)
    clear = _safe(False)(RedisCache.clear)
