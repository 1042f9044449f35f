"""Meter events for a customer on a Stripe test clock (the soak's renewals): Stripe judges a meter
event's timestamp by the customer's clock (at most 35 days old, at most 5 minutes ahead), while
usage happens in real time. The sync stamps each event inside what Stripe accepts, and usage
whose period lies wholly outside Stripe's window is marked expired and alerted once -- not sent,
refused, and reported as drift at every reconcile (the 30-minute soak's `reconcile` exit 1).

Real emulator (in-process), real test clocks, real webhooks, real meter sync: nothing mocked."""

from __future__ import annotations

import logging
import time

import pytest

from billing.models import Organization
from billing.services import subscription_create
from tests.stripe_helpers import advance, organization_on_test_clock
from usage.models import MeterEventStatus, UsageMeterEvent
from usage.services import usage_events_record, usage_meter_drift_list, usage_meter_sync

pytestmark = pytest.mark.django_db
METER_EVENTS = "/v1/billing/meter_events"


def business_on_clock(owner, webhooks, capture, *, start: int):
    org, clock = organization_on_test_clock(owner=owner, start=start)
    with capture(execute=True):
        subscription_create(
            organization=org, plan="business", interval="month", payment_method="pm_card_visa", trial_days=0
        )
    webhooks.deliver()
    org = Organization.objects.get(pk=org.pk)
    assert org.plan.code == "business" and org.subscription_status == "active"
    return org, clock


def sms(org, key: str, quantity: int):
    result = usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": quantity, "idempotency_key": key}]
    )
    assert result.accepted == 1


def sms_events(emulator) -> list[dict]:
    return [e for e in emulator.objects("meter_event") if e["event_name"] == "sms_sent"]


def test_a_clock_frozen_behind_real_time_gets_events_stamped_at_its_time(
    catalogue, billing_owner, webhooks, stripe_emulator, django_capture_on_commit_callbacks
):
    """The clock was frozen 20 minutes ago (the soak's clocks between two jumps): an event
    stamped with the real time would be 20 minutes in the customer's future, and refused."""
    frozen = int(time.time()) - 20 * 60
    org, _clock = business_on_clock(billing_owner, webhooks, django_capture_on_commit_callbacks, start=frozen)
    sms(org, "a", 100_040)
    result = usage_meter_sync(organization=org)
    assert (result.sent, result.failed) == (1, 0)
    [event] = sms_events(stripe_emulator)
    assert event["payload"]["value"] == "40" and frozen - 35 * 86400 < event["timestamp"] <= frozen + 300
    # A resend after a crash carries the same identifier and timestamp: one event on Stripe.
    UsageMeterEvent.objects.filter(organization_id=org.pk).update(status=MeterEventStatus.PENDING)
    again = usage_meter_sync(organization=org)
    assert again.sent + again.duplicates == 1 and again.failed == 0
    assert len(sms_events(stripe_emulator)) == 1
    assert usage_meter_drift_list(organization_ids=[org.pk]) == []


def test_a_period_the_clock_has_left_behind_is_expired_and_alerted_once_not_drift(
    catalogue, billing_owner, webhooks, stripe_emulator, django_capture_on_commit_callbacks, caplog
):
    """Three renewals by test clock (96 days): the usage recorded now belongs to a period more
    than 35 days before the customer's time, which Stripe refuses whatever the stamp."""
    org, clock = business_on_clock(
        billing_owner, webhooks, django_capture_on_commit_callbacks, start=int(time.time())
    )
    for _ in range(3):
        advance(clock, days=32)
        webhooks.deliver()
    org = Organization.objects.get(pk=org.pk)
    assert org.subscription_status == "active"
    sms(org, "a", 100_025)
    posts = stripe_emulator.request_count("POST", METER_EVENTS)
    with caplog.at_level(logging.ERROR, logger="alerts"), django_capture_on_commit_callbacks(execute=True):
        result = usage_meter_sync(organization=org)
    assert stripe_emulator.request_count("POST", METER_EVENTS) == posts  # nothing sent to be refused
    # Recorded as expired, not queued to be sent.
    assert (result.queued, result.expired, result.sent, result.failed) == (0, 1, 0, 0)
    [row] = UsageMeterEvent.objects.filter(organization_id=org.pk)
    assert (row.status, row.value) == (MeterEventStatus.EXPIRED, 25)
    alerts = [r for r in caplog.records if getattr(r, "alert", "") == "meter_event_outside_stripe_window"]
    assert len(alerts) == 1 and "25 unit(s)" in alerts[0].getMessage()
    assert usage_meter_drift_list(organization_ids=[org.pk]) == []
    # Not retried: the next sync queues and sends nothing for it.
    again = usage_meter_sync(organization=org)
    assert (again.queued, again.sent, again.failed) == (0, 0, 0)
    assert UsageMeterEvent.objects.filter(organization_id=org.pk).count() == 1


def test_a_queued_event_left_unsent_past_the_window_is_expired_not_sent(
    catalogue, billing_owner, webhooks, stripe_emulator, django_capture_on_commit_callbacks, caplog
):
    """Queued in time, then the clock moved on before the send (an outage as long as Stripe's
    window): the row is expired on its send, without a refused request, and alerted."""
    frozen = int(time.time()) - 20 * 60
    org, clock = business_on_clock(billing_owner, webhooks, django_capture_on_commit_callbacks, start=frozen)
    sms(org, "a", 100_010)
    stripe_emulator.faults.add(method="POST", path=METER_EVENTS, status=500, times=None)
    with pytest.raises(Exception):
        usage_meter_sync(organization=org)
    stripe_emulator.faults.clear()
    # Three periods on (96 days): Stripe's window for the customer then starts 61 days after the
    # real time, past the end of the real calendar month whatever today's date (with two periods,
    # 29 days on, the first days of a month overlapped it).
    for _ in range(3):
        advance(clock, days=32)
        webhooks.deliver()
    posts = stripe_emulator.request_count("POST", METER_EVENTS)
    with caplog.at_level(logging.ERROR, logger="alerts"), django_capture_on_commit_callbacks(execute=True):
        result = usage_meter_sync(organization=org)
    assert stripe_emulator.request_count("POST", METER_EVENTS) == posts
    assert (result.sent, result.failed) == (0, 0)
    # (With the clock three months on, the mirror's period no longer covers the real time, so the
    # usage is also counted in the calendar month: that row is expired when queued.)
    statuses = set(UsageMeterEvent.objects.filter(organization_id=org.pk).values_list("status", flat=True))
    assert statuses == {MeterEventStatus.EXPIRED}
    # Both counted as expired: the one expired on its send and the one expired when queued.
    assert result.expired == UsageMeterEvent.objects.filter(organization_id=org.pk).count() == 2
    assert any(getattr(r, "alert", "") == "meter_event_outside_stripe_window" for r in caplog.records)
    assert not any("refused by Stripe" in line for line in usage_meter_drift_list(organization_ids=[org.pk]))
