"""Item 23: Stripe answering 429 with Retry-After again and again: the meter sync waits at least
Retry-After, doubling, never more than the cap, with jitter (no two workers in step); after a
bounded number of tries it gives up (the task retries later) and the usage stays queued."""

import random

import pytest

from billing.exceptions import StripeUnavailable
from config.backoff import backoff_delay
from usage.models import MeterEventStatus, UsageMeterEvent
from usage.services import usage_meter_sync
from usage.services.meter_sync import MAX_BACKOFF, MAX_RATE_LIMIT_RETRIES

from .helpers import meter_events, sms

pytestmark = pytest.mark.django_db
METER_EVENTS = "/v1/billing/meter_events"


def test_the_delay_is_bounded_jittered_and_honours_retry_after():
    rng = random.Random(5)
    for attempt in range(12):
        for retry_after in (None, 0.5, 3, 120):
            wait = backoff_delay(attempt, retry_after=retry_after, cap=30, rng=rng)
            floor = min(30, max(retry_after or 0, 2**attempt))
            assert floor <= wait <= min(30, floor * 1.5)
    spread = {round(backoff_delay(2, retry_after=1, rng=rng), 6) for _ in range(20)}
    assert len(spread) > 10  # jittered, not in lockstep


def test_repeated_429_backs_off_then_finishes(business, stripe_emulator):
    sms(business, "a", 100_005)
    stripe_emulator.faults.add(method="POST", path=METER_EVENTS, retry_after=2, times=3)
    waits: list[float] = []
    assert usage_meter_sync(organization=business, sleep=waits.append).sent == 1
    waits = [w for w in waits if w >= 1]  # leaves out the pacing between events (under a second)
    assert len(waits) == 3
    assert all(2 <= w <= MAX_BACKOFF for w in waits)
    assert waits[2] >= 4  # doubled past Retry-After
    assert len(set(waits)) == 3
    assert len(meter_events(stripe_emulator)) == 1


def test_endless_429_gives_up_after_a_bounded_time(business, stripe_emulator):
    sms(business, "a", 100_007)
    stripe_emulator.faults.add(method="POST", path=METER_EVENTS, retry_after=1, times=None)
    waits: list[float] = []
    with pytest.raises(StripeUnavailable):
        usage_meter_sync(organization=business, sleep=waits.append)
    waits = [w for w in waits if w >= 1]
    assert len(waits) == MAX_RATE_LIMIT_RETRIES
    assert sum(waits) <= MAX_RATE_LIMIT_RETRIES * MAX_BACKOFF
    assert UsageMeterEvent.objects.get(organization_id=business.pk).status == MeterEventStatus.PENDING
    assert meter_events(stripe_emulator) == []
