"""Item 30: a meter sync replayed three times (again after it finished, again after a crash
between Stripe's answer and our bookkeeping, and three copies at once): one meter event per
identifier on Stripe, the usage counted once. And unsent usage nearing Stripe's 35-day window
raises an alert (the sync and the drift report both say so)."""

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from billing.exceptions import StripeUnavailable
from usage.models import MeterEventStatus, UsageMeterEvent
from usage.services import (
    usage_meter_backlog_check,
    usage_meter_drift_list,
    usage_meter_events_queue,
    usage_meter_sync,
)
from usage.tasks import meter_sync_task

from .helpers import meter_events, run_together, sms

pytestmark = pytest.mark.django_db


def identifiers(emulator) -> list[str]:
    return [e["identifier"] for e in meter_events(emulator)]


def test_a_sync_replayed_three_times_sends_each_identifier_once(business, stripe_emulator, celery_eager):
    sms(business, "a", 100_040)
    for _ in range(3):
        meter_sync_task.delay(str(business.pk))
    assert len(identifiers(stripe_emulator)) == 1
    sms(business, "b", 25)
    for _ in range(3):  # a worker died after Stripe took the events, before they were marked sent
        meter_sync_task.delay(str(business.pk))
        UsageMeterEvent.objects.filter(organization_id=business.pk).update(status=MeterEventStatus.PENDING)
    meter_sync_task.delay(str(business.pk))
    ids = identifiers(stripe_emulator)
    assert len(ids) == len(set(ids)) == 2
    assert sorted(int(e["payload"]["value"]) for e in meter_events(stripe_emulator)) == [25, 40]
    assert usage_meter_drift_list() == []


@pytest.mark.django_db(transaction=True)
def test_three_copies_at_once_send_each_identifier_once(business, stripe_emulator, celery_eager):
    sms(business, "a", 100_100)
    results = run_together(3, lambda i: meter_sync_task.apply(args=[str(business.pk)]).result)
    assert all(kind == "ok" for kind, _ in results), results
    assert sum(r["sent"] for _, r in results) == 1
    assert len(identifiers(stripe_emulator)) == 1


def test_unsent_usage_near_the_35_day_window_alerts(business, stripe_emulator, caplog):
    sms(business, "a", 100_010)
    assert usage_meter_events_queue(organization=business) == 1
    assert usage_meter_backlog_check(organization=business) is None  # fresh: fine
    with connection.cursor() as cursor:  # Stripe has been refusing us for a month
        cursor.execute(
            "UPDATE usage_usagemeterevent SET timestamp = %s WHERE organization_id = %s",
            [timezone.now() - timedelta(days=31), business.pk],
        )
    stripe_emulator.faults.add(method="POST", path="/v1/billing/meter_events", status=500, times=None)
    with caplog.at_level(logging.ERROR, logger="alerts"), pytest.raises(StripeUnavailable):
        usage_meter_sync(organization=business)
    alerts = [r for r in caplog.records if getattr(r, "alert", "") == "meter_backlog_near_stripe_window"]
    assert len(alerts) == 1 and "4.0 days" in alerts[0].getMessage()
    assert any("Stripe refuses it in" in line for line in usage_meter_drift_list())
