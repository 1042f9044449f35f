"""API rate limits: fixed windows counted in Redis, in leases, open when Redis is not.

Every API request is counted twice:

- per caller: the organization API key, the platform key or the signed-in user (`THROTTLE_USER`),
  or, for an anonymous caller, its address (`THROTTLE_ANON`);
- per client address, whoever the caller is (`THROTTLE_ADDRESS`, by default `THROTTLE_USER`), so
  one address cannot spread its load over many keys.

Each process takes its counts from Redis in **leases**: `INCRBY lease` (and `EXPIRE`) of each
counter that needs one, in one pipeline (one round trip), then spends the lease locally, request by
request, without asking Redis again until it is spent or the window ends. A lease is
`THROTTLE_LEASE_FRACTION` (1%) of the limit, at least 1: a limit under 200 a window is counted one
request at a time in Redis, exactly; a larger one costs one round trip per lease (at the default
6000/min, one per 60 requests of a caller in each process) instead of one per request. The price:
counts a process leased and has not spent yet are already counted in Redis, so a caller may be
refused up to (processes - 1) x lease requests before its limit (2 processes: 1% of it), never
after. A counter found over its limit stays refused in that process until its window ends, without
asking Redis again.

The address is `config.client_ip.client_ip` (forwarded addresses count only behind
`TRUSTED_PROXY_COUNT` trusted proxies). A refusal is DRF's 429 `rate_limited` with `retry_after`
(seconds until the window ends) and a `Retry-After` header.

One Redis client per process (its connection pool is thread-safe), made on first use. When Redis
does not answer (down, or slower than `THROTTLE_REDIS_TIMEOUT`), the request is not refused for
it: the limits are counted in this process instead (a local fixed window, so a limit holds per
worker process rather than in total) and Redis is tried again after `THROTTLE_REDIS_RETRY_SECONDS`.
An outage logs one warning when it starts and one when Redis is back; `STATS` (shown by
`/healthz`) counts the outages, the Redis errors and the requests decided locally.
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
# Leases: Redis key (its window's index included) -> [counts left, over the limit?, window's end].
_leases: dict[str, list] = {}
_lease_prune: dict[str, int] = {"index": -1}


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
        _leases.clear()


def redis_down() -> bool:
    """True while the throttles count locally after a Redis failure."""
    return time.monotonic() < _state["down_until"]


def in_outage() -> bool:
    """True from a Redis failure until Redis answers again (shown by /healthz)."""
    return bool(_state.get("outage"))


def _count_in_redis(keys: list[tuple[str, int]], amounts: list[int] | None = None) -> list[int]:
    """`INCRBY` + `EXPIRE` for each (key, window) in one pipeline: one round trip."""
    pipe = _client().pipeline(transaction=False)
    for i, (key, window) in enumerate(keys):
        pipe.incrby(key, amounts[i] if amounts else 1)
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


def _redis_failed(exc: redis.RedisError) -> None:
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


def _redis_answered() -> None:
    if _state.get("outage"):
        _state["outage"] = False
        logger.warning("throttling: Redis is back; counting limits in Redis again")


def count(keys: list[tuple[str, int]], now: float) -> list[int]:
    """The counts after this request, from Redis, or from this process while Redis is away."""
    if not redis_down():
        try:
            counts = _count_in_redis(keys)
        except redis.RedisError as exc:
            _redis_failed(exc)
        else:
            _redis_answered()
            return counts
    return _count_locally(keys, now)


def lease_size(limit: int) -> int:
    return max(1, int(limit * settings.THROTTLE_LEASE_FRACTION))


def _prune_leases(now: float) -> None:
    """Drop the leases of windows that have ended, once a minute (the caller holds the lock)."""
    minute = int(now // 60)
    if minute != _lease_prune["index"]:
        _lease_prune["index"] = minute
        for key in [k for k, lease in _leases.items() if lease[2] <= now]:
            del _leases[key]


def decide(counters: list[tuple[str, int, int]], now: float) -> list[bool]:
    """Whether each (key, limit, window) counter still has room for this request: from this
    process's lease, else from a new lease taken in Redis (one round trip for all the counters
    that need one), else, while Redis is away, from the local count."""
    allowed: list[bool | None] = [None] * len(counters)
    with _lock:
        _prune_leases(now)
        for i, (key, _limit, _window) in enumerate(counters):
            lease = _leases.get(key)
            if lease is not None and lease[1]:
                allowed[i] = False  # over the limit until the window ends
            elif lease is not None and lease[0] > 0:
                lease[0] -= 1
                allowed[i] = True
    needed = [i for i, a in enumerate(allowed) if a is None]
    if not needed:
        return allowed  # type: ignore[return-value]
    if not redis_down():
        sizes = [lease_size(counters[i][1]) for i in needed]
        try:
            totals = _count_in_redis([(counters[i][0], counters[i][2]) for i in needed], sizes)
        except redis.RedisError as exc:
            _redis_failed(exc)
        else:
            _redis_answered()
            with _lock:
                for i, size, total in zip(needed, sizes, totals, strict=True):
                    key, limit, window = counters[i]
                    # What this lease may spend: its counts that fall within the limit.
                    usable = max(0, min(size, limit - (total - size)))
                    ends = (int(now // window) + 1) * window
                    _leases[key] = [usable - 1, False, ends] if usable else [0, True, ends]
                    allowed[i] = usable > 0
            return allowed  # type: ignore[return-value]
    counts = _count_locally([(key, window) for key, _limit, window in counters], now)
    return [seen <= limit for seen, (_key, limit, _window) in zip(counts, counters, strict=True)]


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
    """Per caller and per address, from leases of counts taken in Redis; see the module's docstring."""

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
        counters = [
            (f"{settings.THROTTLE_KEY_PREFIX}:{name}:{int(now // window)}", limit, window)
            for name, (limit, window) in limits
        ]
        for (_key, _limit, window), ok in zip(counters, decide(counters, now), strict=True):
            if not ok:
                wait = window - (now % window)
                self._wait = max(self._wait or 0.0, wait)
        return self._wait is None

    def wait(self) -> float | None:
        return math.ceil(self._wait) if self._wait is not None else None
