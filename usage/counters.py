"""Current-period usage counters in Redis, for the quota check: a cache, never the only copy.

A counter holds, for one organization, metric and period, the period's usage plus the quantity
of the active reservations, as integer ten-thousandths. It is only changed by a caller holding
the organization's account lock, before that caller commits (and deleted again when the
commit fails), so whoever takes the lock next reads a counter that includes every committed
change. When a key is missing (never built, expired, Redis flushed or restarted empty) the
caller rebuilds it from the database under the lock. When Redis does not answer, callers count
from the database instead, and the first of them to reach Redis again moves every counter to a
new epoch (all keys are rebuilt), because the increments it could not make are missing there.
Keys expire after `USAGE_COUNTER_TTL` seconds, which bounds how long any other divergence
(a process killed between its increment and its commit) can last.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

SCALE = Decimal(10_000)
EPOCH_KEY = "usage:q:epoch"

# KEYS[1] epoch key. ARGV: base key, delta, limit ('' none), mode ('sum'|'max'), force ('1'
# adds over the limit), a fresh epoch (used when none exists).
# Answers {0} missing, {1, new} applied, {2, current} refused.
_CHECK_ADD = """
local e = redis.call('GET', KEYS[1])
if not e then e = ARGV[6]; redis.call('SET', KEYS[1], e) end
local k = ARGV[1] .. ':' .. e
local v = redis.call('GET', k)
if not v then return {0, ''} end
v = tonumber(v)
local d = tonumber(ARGV[2])
local new
if ARGV[4] == 'max' then new = math.max(v, d) else new = v + d end
if ARGV[3] ~= '' and new > tonumber(ARGV[3]) and ARGV[5] ~= '1' then return {2, tostring(v)} end
redis.call('SET', k, string.format('%d', new), 'KEEPTTL')
return {1, string.format('%d', new)}
"""
# KEYS[1] epoch key. ARGV: a fresh epoch, then (base key, delta, mode) for each counter: adds
# (or raises to, mode 'max') with no limit, as _CHECK_ADD with force. Answers, per counter, the
# new value, or '' when the counter is missing.
_ADD_MANY = """
local e = redis.call('GET', KEYS[1])
if not e then e = ARGV[1]; redis.call('SET', KEYS[1], e) end
local out = {}
for i = 2, #ARGV, 3 do
  local k = ARGV[i] .. ':' .. e
  local v = redis.call('GET', k)
  if v then
    v = tonumber(v)
    local d = tonumber(ARGV[i + 1])
    local new
    if ARGV[i + 2] == 'max' then new = math.max(v, d) else new = v + d end
    redis.call('SET', k, string.format('%d', new), 'KEEPTTL')
    out[#out + 1] = string.format('%d', new)
  else
    out[#out + 1] = ''
  end
end
return out
"""
# KEYS[1] epoch key. ARGV: base key, value, ttl, fresh epoch.
_SET = """
local e = redis.call('GET', KEYS[1])
if not e then e = ARGV[4]; redis.call('SET', KEYS[1], e) end
redis.call('SET', ARGV[1] .. ':' .. e, ARGV[2], 'EX', ARGV[3])
return 1
"""
# KEYS[1] epoch key. ARGV: base keys...
_GET = """
local e = redis.call('GET', KEYS[1])
local out = {}
for i, k in ipairs(ARGV) do
  if e then out[i] = redis.call('GET', k .. ':' .. e) or '' else out[i] = '' end
end
return out
"""
_DELETE = """
local e = redis.call('GET', KEYS[1])
if e then for i, k in ipairs(ARGV) do redis.call('DEL', k .. ':' .. e) end end
return 1
"""


class CountersUnavailable(Exception):
    """Redis did not answer: count from the database."""


@dataclass(frozen=True)
class Outcome:
    status: str  # "missing", "applied", "refused"
    value: Decimal | None = None


_lock = threading.Lock()
_state = {"client": None, "down_until": 0.0, "missed": False, "scripts": None}


def _client() -> redis.Redis:
    if _state["client"] is None:
        with _lock:
            if _state["client"] is None:
                timeout = settings.USAGE_REDIS_TIMEOUT
                client = redis.Redis.from_url(
                    settings.USAGE_COUNTERS_REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
                )
                _state["scripts"] = {
                    name: client.register_script(src)
                    for name, src in (
                        ("check_add", _CHECK_ADD),
                        ("add_many", _ADD_MANY),
                        ("set", _SET),
                        ("get", _GET),
                        ("delete", _DELETE),
                    )
                }
                _state["client"] = client
    return _state["client"]


def reset() -> None:
    """Forget the connection and the outage state (tests, after a fork)."""
    with _lock:
        if _state["client"] is not None:
            _state["client"].close()
        _state.update(client=None, down_until=0.0, missed=False, scripts=None)


def _run(script: str, keys: list[str], args: list) -> object:
    if time.monotonic() < _state["down_until"]:
        raise CountersUnavailable()
    client = _client()
    try:
        if _state["missed"]:
            # Increments were skipped while Redis was away: every counter starts again.
            client.set(EPOCH_KEY, uuid.uuid4().hex)
            _state["missed"] = False
            logger.warning("usage counters: Redis is back; counters move to a new epoch and rebuild")
        return _state["scripts"][script](keys=keys, args=args)
    except redis.RedisError as exc:
        _state["down_until"] = time.monotonic() + settings.USAGE_REDIS_RETRY_SECONDS
        logger.warning(
            "usage counters: Redis unavailable (%s); counting from the database", type(exc).__name__
        )
        raise CountersUnavailable() from exc


def missed_write() -> None:
    """A change the counters should have seen was made while Redis was away."""
    _state["missed"] = True


def key(organization_id, metric_id: int, period_start) -> str:
    return f"usage:q:{organization_id}:{metric_id}:{int(period_start.timestamp())}"


def _units(value: Decimal) -> int:
    return int(value * SCALE)


def check_add(
    counter: str, delta: Decimal, *, limit: Decimal | None, mode: str = "sum", force: bool = False
) -> Outcome:
    """Add `delta` (or raise to it, mode `max`) unless that passes `limit`."""
    reply = _run(
        "check_add",
        [EPOCH_KEY],
        [
            counter,
            _units(delta),
            "" if limit is None else _units(limit),
            mode,
            "1" if force else "0",
            uuid.uuid4().hex,
        ],
    )
    code, value = int(reply[0]), reply[1]
    if code == 0:
        return Outcome("missing")
    return Outcome("applied" if code == 1 else "refused", Decimal(int(value)) / SCALE)


def add_many(changes: list[tuple[str, Decimal, str]]) -> list[Decimal | None]:
    """Add (or raise to, mode `max`) each `(counter, delta, mode)` with no limit, in one call:
    the new values, None for a missing counter (left missing: the caller rebuilds it)."""
    args: list = [uuid.uuid4().hex]
    for counter, delta, mode in changes:
        args.extend((counter, _units(delta), mode))
    reply = _run("add_many", [EPOCH_KEY], args)
    return [Decimal(int(v)) / SCALE if v not in (b"", "", None) else None for v in reply]


def put(counter: str, value: Decimal) -> None:
    _run("set", [EPOCH_KEY], [counter, _units(value), settings.USAGE_COUNTER_TTL, uuid.uuid4().hex])


def get_many(counters: list[str]) -> list[Decimal | None]:
    reply = _run("get", [EPOCH_KEY], counters)
    return [Decimal(int(v)) / SCALE if v not in (b"", "", None) else None for v in reply]


def forget(counters: list[str]) -> None:
    """Delete counters (a failed commit after an increment): the next caller rebuilds them."""
    try:
        _run("delete", [EPOCH_KEY], counters)
    except CountersUnavailable:
        missed_write()


def seen_once(marker: str) -> bool:
    """Whether a once-only action (a notice) is already marked done; False when Redis is away
    (the caller then relies on its own idempotency, the notice outbox's key)."""
    try:
        client = _client()
        if time.monotonic() < _state["down_until"]:
            return False
        return bool(client.exists(f"usage:once:{marker}"))
    except redis.RedisError:
        return False


def mark_once(marker: str, ttl: int = 40 * 86400) -> None:
    try:
        if time.monotonic() >= _state["down_until"]:
            _client().set(f"usage:once:{marker}", 1, ex=ttl)
    except redis.RedisError:
        pass
