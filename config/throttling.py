"""API rate limits: fixed windows counted in Redis, one round trip per request, open when Redis is not.

Every API request is counted twice, in one Redis pipeline (`INCR` and `EXPIRE` of each counter,
sent together: one round trip):

- per caller: the organization API key, the platform key or the signed-in user (`THROTTLE_USER`),
  or, for an anonymous caller, its address (`THROTTLE_ANON`);
- per client address, whoever the caller is (`THROTTLE_ADDRESS`, by default `THROTTLE_USER`), so
  one address cannot spread its load over many keys.

The address is `config.client_ip.client_ip` (forwarded addresses count only behind
`TRUSTED_PROXY_COUNT` trusted proxies). A refusal is DRF's 429 `rate_limited` with `retry_after`
(seconds until the window ends) and a `Retry-After` header.

When Redis does not answer (down, or slower than `THROTTLE_REDIS_TIMEOUT`), the request is not
refused for it: the limits are counted in this process instead (a local fixed window, so a limit
holds per worker process rather than in total) and Redis is tried again after
`THROTTLE_REDIS_RETRY_SECONDS`. An outage logs one warning when it starts and one when Redis is back;
`STATS` (shown by `/healthz`) counts the outages, the Redis errors and the requests decided locally.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import lru_cache

import redis
from django.conf import settings
from rest_framework.throttling import BaseThrottle

from config.client_ip import client_ip

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_lock = threading.Lock()
_state: dict = {"client": None, "down_until": 0.0, "outage": False}
# Read by /healthz: requests decided by the local limiter, Redis errors seen, outages begun.
STATS = {"local_decisions": 0, "redis_errors": 0, "outages": 0}
_local: dict[str, int] = {}
_local_window: dict[str, int] = {"index": -1}


@lru_cache(maxsize=32)
def parse_rate(rate: str | None) -> tuple[int, int] | None:
    """ "120/min" -> (120, 60); None or "" -> None (no limit)."""
    if not rate:
        return None
    count, _, period = rate.partition("/")
    period = period.strip().lower()
    digits = "".join(ch for ch in period if ch.isdigit())
    unit = period.lstrip("0123456789")[:1]
    return int(count), _PERIODS[unit] * (int(digits) if digits else 1)


def _client() -> redis.Redis:
    if _state["client"] is None:
        with _lock:
            if _state["client"] is None:
                timeout = settings.THROTTLE_REDIS_TIMEOUT
                _state["client"] = redis.Redis.from_url(
                    settings.THROTTLE_REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
                )
    return _state["client"]


def reset() -> None:
    """Forget the connection, the outage state and the local counters (tests)."""
    with _lock:
        if _state["client"] is not None:
            _state["client"].close()
        _state.update(client=None, down_until=0.0, outage=False)
        _local.clear()
        _local_window["index"] = -1


def redis_down() -> bool:
    """True while the throttles count locally after a Redis failure."""
    return time.monotonic() < _state["down_until"]


def in_outage() -> bool:
    """True from a Redis failure until Redis answers again (shown by /healthz)."""
    return bool(_state.get("outage"))


def _count_in_redis(keys: list[tuple[str, int]]) -> list[int]:
    """`INCR` + `EXPIRE` for each (key, window) in one pipeline: one round trip."""
    pipe = _client().pipeline(transaction=False)
    for key, window in keys:
        pipe.incr(key)
        pipe.expire(key, window + 1)
    replies = pipe.execute()
    return [int(replies[i]) for i in range(0, len(replies), 2)]


def _count_locally(keys: list[tuple[str, int]], now: float) -> list[int]:
    with _lock:
        STATS["local_decisions"] += 1
        # Keys carry their window's index; drop the counters of past windows once a minute.
        minute = int(now // 60)
        if minute != _local_window["index"]:
            _local.clear()
            _local_window["index"] = minute
        out = []
        for key, _window in keys:
            _local[key] = _local.get(key, 0) + 1
            out.append(_local[key])
        return out


def count(keys: list[tuple[str, int]], now: float) -> list[int]:
    """The counts after this request, from Redis, or from this process while Redis is away."""
    if not redis_down():
        try:
            counts = _count_in_redis(keys)
        except redis.RedisError as exc:
            with _lock:
                STATS["redis_errors"] += 1
                _state["down_until"] = time.monotonic() + settings.THROTTLE_REDIS_RETRY_SECONDS
                first = not _state.get("outage")
                _state["outage"] = True
            if first:
                STATS["outages"] += 1
                logger.warning(
                    "throttling: Redis unavailable (%s); counting limits in this process, retrying every %ss",
                    type(exc).__name__,
                    settings.THROTTLE_REDIS_RETRY_SECONDS,
                )
        else:
            if _state.get("outage"):
                _state["outage"] = False
                logger.warning("throttling: Redis is back; counting limits in Redis again")
            return counts
    return _count_locally(keys, now)


def caller_identity(request) -> str | None:
    """ "key:<pk>", "platform:<pk>" or "user:<pk>" for an authenticated caller, else None."""
    auth = getattr(request, "auth", None)
    if auth is not None and getattr(auth, "pk", None) is not None:
        kind = "platform" if type(auth).__name__ == "PlatformKey" else "key"
        return f"{kind}:{auth.pk}"
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated and getattr(user, "pk", None) is not None:
        return f"user:{user.pk}"
    return None


class ApiRateThrottle(BaseThrottle):
    """Per caller and per address, in one Redis round trip; see the module's docstring."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request, view) -> bool:
        rates = settings.THROTTLE_RATES
        address = client_ip(request)
        identity = caller_identity(request)
        limits = []
        caller = parse_rate(rates.get("user") if identity else rates.get("anon"))
        if caller is not None:
            limits.append((f"{'id:' + identity if identity else 'anon:' + address}", caller))
        per_address = parse_rate(rates.get("address"))
        if per_address is not None:
            limits.append((f"addr:{address}", per_address))
        if not limits:
            return True
        now = time.time()
        keys = [
            (f"{settings.THROTTLE_KEY_PREFIX}:{name}:{int(now // window)}", window)
            for name, (_limit, window) in limits
        ]
        counts = count(keys, now)
        for (_name, (limit, window)), seen in zip(limits, counts, strict=True):
            if seen > limit:
                wait = window - (now % window)
                self._wait = max(self._wait or 0.0, wait)
        return self._wait is None

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None
