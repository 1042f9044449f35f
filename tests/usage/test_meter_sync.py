"""Usage above the plan's limit, sent to Stripe meters (the in-process emulator counts what
arrives): replays send nothing twice, a renewal invoice bills the usage, the drift report."""

from __future__ import annotations

import pytest
import stripe

from billing.models import Organization, PlanMeteredPrice
from billing.services import subscription_create
from usage.models import MeterEventStatus, SyncStatus, UsageMeterEvent, UsageSyncState
from usage.services import usage_events_record, usage_meter_drift_list, usage_meter_sync
from usage.tasks import meter_sync_all_task

from .conftest import url

pytestmark = pytest.mark.django_db
METER_EVENTS = "/v1/billing/meter_events"


@pytest.fixture
def business(billing_org, webhooks, django_capture_on_commit_callbacks):
    """An organization on Business (SMS past 100,000 billed at 1 cent), paid by card."""
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org,
            plan="business",
            interval="month",
            payment_method="pm_card_visa",
            trial_days=0,
        )
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.plan.code == "business" and org.subscription_status == "active"
    return org


def sms(org, key: str, quantity: int):
    result = usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": quantity, "idempotency_key": key}]
    )
    assert result.accepted == 1


def meter_events(emulator) -> list[dict]:
    return [e for e in emulator.objects("meter_event") if e["event_name"] == "sms_sent"]


def test_the_catalogue_has_a_metered_overage_price_on_a_meter(catalogue, stripe_emulator):
    item = PlanMeteredPrice.objects.get(plan__code="business", metric="SMS_SENT")
    price = stripe_emulator.get(item.stripe_price_id)
    assert (
        price["recurring"]["usage_type"] == "metered" and price["recurring"]["meter"] == item.stripe_meter_id
    )
    assert price["unit_amount"] == 1
    assert stripe_emulator.get(item.stripe_meter_id)["event_name"] == "sms_sent"


def test_usage_above_the_limit_is_sent_once_and_a_renewal_invoice_bills_it(
    business, stripe_emulator, webhooks
):
    sms(business, "a", 99_990)
    assert usage_meter_sync(organization=business).queued == 0  # within the limit: nothing to bill
    sms(business, "b", 60)
    first = usage_meter_sync(organization=business)
    assert (first.queued, first.sent) == (1, 1)
    assert [e["payload"]["value"] for e in meter_events(stripe_emulator)] == ["50"]
    # A replayed sync sends nothing.
    again = usage_meter_sync(organization=business)
    assert (again.queued, again.sent, again.duplicates) == (0, 0, 0)
    assert stripe_emulator.request_count("POST", METER_EVENTS) == 1
    # A worker that died after Stripe took the event, before it was marked sent: the resend
    # carries the same identifier (and idempotency key), and Stripe counts it once.
    UsageMeterEvent.objects.filter(organization_id=business.pk).update(status=MeterEventStatus.PENDING)
    crashed = usage_meter_sync(organization=business)
    assert crashed.queued == 0 and crashed.sent + crashed.duplicates == 1
    assert len(meter_events(stripe_emulator)) == 1
    sms(business, "c", 30)
    assert usage_meter_sync(organization=business).sent == 1
    assert sorted(int(e["payload"]["value"]) for e in meter_events(stripe_emulator)) == [30, 50]
    assert usage_meter_drift_list() == []
    state = UsageSyncState.objects.get(organization=business)
    assert state.status == SyncStatus.IDLE and state.events_sent >= 2 and state.last_success_at is not None

    stripe_emulator.advance(
        days=32
    )  # (32: past a 31-day month too) the renewal bills the period's metered usage in arrears
    webhooks.deliver()
    item = PlanMeteredPrice.objects.get(plan__code="business", metric="SMS_SENT")
    invoices = [i for i in stripe_emulator.objects("invoice") if i["billing_reason"] == "subscription_cycle"]
    assert len(invoices) == 1
    metered = [
        line
        for line in invoices[0]["lines"]["data"]
        if (line.get("pricing") or {}).get("price_details", {}).get("price") == item.stripe_price_id
    ]
    assert len(metered) == 1 and metered[0]["quantity"] == 80 and metered[0]["amount"] == 80
    assert invoices[0]["status"] == "paid"


def test_the_drift_report_is_clean_then_shows_a_planted_difference(business, stripe_emulator):
    sms(business, "a", 100_010)
    usage_meter_sync(organization=business)
    assert usage_meter_drift_list() == []
    customer = meter_events(stripe_emulator)[0]["payload"]["stripe_customer_id"]
    stripe.billing.MeterEvent.create(  # someone else sent usage for this customer
        event_name="sms_sent",
        payload={"stripe_customer_id": customer, "value": "7"},
        identifier="planted",
        api_key="sk_test_" + "x" * 24,
    )
    drift = usage_meter_drift_list()
    assert len(drift) == 1 and "Stripe's meter has 17" in drift[0] and "10 were sent" in drift[0]
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("usage_drift", stdout=out)
    assert exited.value.code == 1 and "Stripe's meter has 17" in out.getvalue()


def test_a_rate_limited_sync_backs_off_and_finishes(business, stripe_emulator):
    sms(business, "a", 100_005)
    stripe_emulator.faults.add(method="POST", path=METER_EVENTS, retry_after=1, times=2)
    waits = []
    result = usage_meter_sync(organization=business, sleep=waits.append)
    assert result.sent == 1
    # At least Stripe's Retry-After, doubling, jittered by up to half (config/backoff.py); the
    # pacing between events (well under a second) is left out.
    waits = [w for w in waits if w >= 1]
    assert len(waits) == 2 and 1.0 <= waits[0] <= 1.5 and 2.0 <= waits[1] <= 3.0
    assert len(meter_events(stripe_emulator)) == 1


def test_post_usage_sync_answers_202_and_the_beat_task_covers_metered_organizations(
    business, billing_client, stripe_emulator, celery_eager, django_capture_on_commit_callbacks
):
    sms(business, "a", 100_003)
    with django_capture_on_commit_callbacks(execute=True):
        response = billing_client.post(url(business, "/sync"))
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert [e["payload"]["value"] for e in meter_events(stripe_emulator)] == ["3"]
    assert UsageSyncState.objects.get(organization=business).status == SyncStatus.IDLE
    assert meter_sync_all_task() == 1
    assert len(meter_events(stripe_emulator)) == 1
