"""Issue 17, found 5: with Redis down the API keeps serving what PostgreSQL can serve.

Redis is a real server (tests/redis_outage.py) killed with SIGKILL mid-test: its port is closed,
no client is mocked. The throttles count in the process while it is away (and still refuse past
the limit), the cache misses, the usage quota counters count from the database, `/healthz` answers
503 naming what is down, and everything comes back when Redis does.
"""

from __future__ import annotations

import logging
import time

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from billing.models import Role
from config import throttling
from tests.billing.factories import MembershipFactory
from tests.redis_outage import DisposableRedis, redis_for_this_process
from tests.usage.conftest import organization_on, plan_with_limits, seed_catalogues

pytestmark = pytest.mark.django_db


@pytest.fixture
def disposable_redis(tmp_path):
    server = DisposableRedis(tmp_path / "redis")
    server.start()
    try:
        with redis_for_this_process(server):
            yield server
    finally:
        server.stop()


@pytest.fixture
def round_trips(monkeypatch):
    """Counts the requests this process writes to any Redis (a pipeline is one)."""
    sent: list[bytes] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, check_health=True):
        sent.append(b"".join(command) if isinstance(command, list | tuple) else bytes(command))
        return original(self, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


class _FixedClock:
    """The throttles' clock, stopped in the middle of a window (no window ends during a test)."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def time() -> float:
        return 1_800_000_030.0


def test_a_small_limit_is_counted_in_redis_request_by_request(api_client, round_trips, monkeypatch, settings):
    settings.THROTTLE_RATES = {"anon": "120/min", "user": "6000/min", "address": "6000/min"}
    monkeypatch.setattr(throttling, "time", _FixedClock)
    assert api_client.get("/api/v1/plans").status_code == 200  # connects (and says hello) once
    for _ in range(3):
        round_trips.clear()
        assert api_client.get("/api/v1/plans").status_code == 200
        # One round trip: the anonymous caller's counter (120/min: a lease of 1), by one.
        assert len(round_trips) == 1, round_trips
        assert round_trips[0].count(b"INCRBY") == 1 and round_trips[0].count(b"EXPIRE") == 1
        assert b"anon:" in round_trips[0] and b"$1\r\n1\r\n*3\r\n$6\r\nEXPIRE" in round_trips[0]


def test_a_key_takes_its_counts_from_redis_in_leases(
    key_client, organization, round_trips, monkeypatch, settings
):
    settings.THROTTLE_RATES = {"anon": "120/min", "user": "1000/min", "address": "1000/min"}  # leases of 10
    monkeypatch.setattr(throttling, "time", _FixedClock)
    path = f"/api/v1/organizations/{organization.pk}/credits"
    assert key_client.get(path).status_code == 200  # connects, and takes a lease of each counter
    round_trips.clear()
    for _ in range(9):  # the rest of the leases: no round trip
        assert key_client.get(path).status_code == 200
    assert round_trips == []
    assert key_client.get(path).status_code == 200
    # The next leases, of both counters, in one round trip (INCRBY 10 + EXPIRE of each).
    assert len(round_trips) == 1, round_trips
    assert round_trips[0].count(b"INCRBY") == 2 and round_trips[0].count(b"EXPIRE") == 2
    assert round_trips[0].count(b"$2\r\n10\r\n") == 2


def test_a_lease_spends_only_what_is_left_under_the_limit(
    key_client, api_key, organization, monkeypatch, settings
):
    """Another process holds leases: this one may spend only what the limit leaves, then refuses
    until the window ends without asking Redis again."""
    settings.THROTTLE_RATES = {"anon": "120/min", "user": "1000/min", "address": "100000/min"}
    monkeypatch.setattr(throttling, "time", _FixedClock)
    now = _FixedClock.time()
    key = f"{settings.THROTTLE_KEY_PREFIX}:id:key:{api_key.api_key.pk}:{int(now // 60)}"
    throttling._client().set(key, 995, ex=120)  # 995 counted elsewhere
    path = f"/api/v1/organizations/{organization.pk}/credits"
    codes = [key_client.get(path).status_code for _ in range(6)]
    assert codes == [200] * 5 + [429]  # 5 of the first lease were under the limit
    # The second lease found nothing left; the key is refused from now on without Redis.
    assert int(throttling._client().get(key)) == 1015
    assert key_client.get(path).status_code == 429
    assert int(throttling._client().get(key)) == 1015
    body = key_client.get(path).json()
    assert body["error"] == "rate_limited" and body["retry_after"] == 30


def test_the_api_serves_from_postgresql_while_redis_is_down(disposable_redis, caplog):
    seed_catalogues()
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    admin = APIClient()
    admin.force_authenticate(MembershipFactory(organization=org, role=Role.ADMIN).user)
    anonymous = APIClient()
    assert anonymous.get("/api/v1/plans").status_code == 200
    assert redis.Redis.from_url(disposable_redis.url).keys(f"{settings.THROTTLE_KEY_PREFIX}:*")

    disposable_redis.stop()
    errors_before = throttling.STATS["redis_errors"]
    with caplog.at_level(logging.WARNING):
        assert anonymous.get("/api/v1/plans").status_code == 200
        assert anonymous.get("/api/v1/credit-packs").status_code == 200
        consume = admin.post(
            f"/api/v1/organizations/{org.pk}/credits/consume",
            {"amount": "2.5", "reason": "redis down", "idempotency_key": "rd-1"},
            format="json",
        )
        assert consume.status_code == 200, consume.json()
        assert consume.json()["balance"] == "97.5"
        track = admin.post(
            f"/api/v1/organizations/{org.pk}/usage/track",
            {"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "rd-2"},
            format="json",
        )
        assert track.status_code == 201, track.json()
        assert track.json()["current"] == "3"  # the quota counted from the database
        assert admin.get(f"/api/v1/organizations/{org.pk}/credits").status_code == 200
        assert admin.get(f"/api/v1/organizations/{org.pk}/usage").status_code == 200

    assert throttling.STATS["redis_errors"] > errors_before
    assert throttling.STATS["local_decisions"] > 0
    assert any("throttling: Redis unavailable" in r.getMessage() for r in caplog.records)

    health = anonymous.get("/healthz")
    assert health.status_code == 503
    body = health.json()
    assert body["down"] == ["redis", "celery"]
    assert body["checks"]["database"]["ok"] is True
    assert body["degradation"]["throttle"]["redis_errors"] >= 1

    assert body["degradation"]["throttle"]["counting_locally"] is True
    outages = throttling.STATS["outages"]
    assert sum("throttling: Redis unavailable" in r.getMessage() for r in caplog.records) == 1

    disposable_redis.start()
    with caplog.at_level(logging.WARNING):
        assert anonymous.get("/api/v1/plans").status_code == 200
    assert any("throttling: Redis is back" in r.getMessage() for r in caplog.records)
    assert throttling.STATS["outages"] == outages
    assert not throttling.redis_down()
    assert redis.Redis.from_url(disposable_redis.url).keys(f"{settings.THROTTLE_KEY_PREFIX}:*")
    assert anonymous.get("/healthz").json()["checks"]["redis"]["ok"] is True


def test_while_redis_is_down_the_limits_are_counted_in_the_process(disposable_redis, api_client, settings):
    settings.THROTTLE_RATES = {"anon": "3/min", "user": "100/min", "address": "100/min"}
    disposable_redis.stop()
    answers = [api_client.get("/api/v1/plans") for _ in range(4)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429]
    body = answers[-1].json()
    assert body["error"] == "rate_limited" and 1 <= body["retry_after"] <= 60
    assert answers[-1]["Retry-After"] == str(body["retry_after"])


def test_the_cache_misses_instead_of_failing_while_redis_is_down(disposable_redis):
    from django.core.cache import cache

    from config import cache as resilient_cache

    cache.set("k", "v", 60)
    assert cache.get("k") == "v"
    disposable_redis.stop()
    before = resilient_cache.STATS["errors"]
    assert cache.get("k") is None
    assert cache.get("k", "fallback") == "fallback"
    cache.set("k", "w", 60)  # dropped, not raised
    assert resilient_cache.STATS["errors"] == before + 3


def test_sessions_are_stored_in_postgresql():
    assert settings.SESSION_ENGINE == "django.contrib.sessions.backends.db"


def test_a_signed_in_page_renders_while_redis_is_down(disposable_redis, client):
    seed_catalogues()
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=5)
    owner = MembershipFactory(organization=org, role=Role.OWNER).user
    client.force_login(owner)
    disposable_redis.stop()
    assert client.get(f"/billing/{org.pk}/").status_code == 200
    assert client.get(f"/billing/{org.pk}/credits/").status_code == 200


def test_each_caller_and_each_address_has_its_own_limit(organization, api_key, settings):
    from billing.services import api_key_create

    settings.THROTTLE_RATES = {"anon": "100/min", "user": "2/min", "address": "3/min"}
    other = api_key_create(organization=organization, name="second key")

    def client_for(raw: str, address: str) -> APIClient:
        client = APIClient(REMOTE_ADDR=address)
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return client

    path = f"/api/v1/organizations/{organization.pk}"
    first = client_for(api_key.raw_key, "198.51.100.1")
    assert [first.get(path).status_code for _ in range(3)] == [200, 200, 429]  # per key: 2
    # Another key from another address is counted apart ...
    second = client_for(other.raw_key, "198.51.100.2")
    assert second.get(path).status_code == 200
    # ... but from the first key's address, the address's limit (3) is reached.
    second_same_address = client_for(other.raw_key, "198.51.100.1")
    assert second_same_address.get(path).status_code == 429
