"""Staff alerts through the notice outbox (failed payment, cancellation, dispute, unusual
consumption, reconcile drift), each e-mailed to BILLING_ADMIN_EMAILS once; the stored
reconcile runs, the daily beat schedule, and `latest_reconcile_run()`."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from billing.models import BillingNotice, Organization
from billing.services import subscription_cancel, subscription_create
from credits.models import CreditAccount, ReconcileRun
from credits.selectors import latest_reconcile_run
from credits.services import credit_consume, credit_grant, reconcile_run, unusual_consumption_alerts
from tests.stripe_helpers import advance, organization_on_test_clock, post

pytestmark = pytest.mark.django_db

STAFF = ["ops@billing.test", "cfo@billing.test"]


def staff_notices(kind: str):
    return BillingNotice.objects.filter(audience="staff", kind=kind)


def staff_mails():
    return [m for m in mail.outbox if m.subject.startswith("[Billing staff]")]


@override_settings(BILLING_ADMIN_EMAILS=STAFF)
def test_failed_payment_alerts_staff_once(catalogue, billing_owner, webhooks, stripe_emulator):
    org, clock = organization_on_test_clock(owner=billing_owner)
    subscription_create(
        organization=org, plan="starter", interval="month", payment_method="pm_card_visa", trial_days=0
    )
    webhooks.deliver()
    stripe_emulator.faults.add(decline="insufficient_funds", times=2)  # the renewal and its first retry
    sub = stripe_emulator.get(Organization.objects.get(pk=org.pk).stripe_subscription_id)
    advance(clock, to=sub["items"]["data"][0]["current_period_end"] + 3600)
    webhooks.deliver()
    advance(clock, days=3.5)
    webhooks.deliver()
    assert BillingNotice.objects.filter(kind="payment_failed", audience="organization").count() >= 1
    alerts = staff_notices("staff_payment_failed")
    assert alerts.count() == 1 and alerts.get().organization_id == org.pk
    sent = [m for m in staff_mails() if "Payment failed" in m.subject]
    assert len(sent) == 1 and sorted(sent[0].to) == sorted(STAFF) and org.name in sent[0].body


@override_settings(BILLING_ADMIN_EMAILS=STAFF)
def test_cancellation_and_dispute_alert_staff_once(
    billing_org, webhooks, billing_client, stripe_emulator, pack, recorder, client,
    django_capture_on_commit_callbacks,
):  # fmt: skip
    posted = 0

    def deliver_each_twice():
        nonlocal posted
        stripe_emulator.deliver_webhooks()
        for delivery in recorder.sent[posted:]:
            for _ in range(2):
                with django_capture_on_commit_callbacks(execute=True):
                    post(client, delivery)
        posted = len(recorder.sent)

    subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    deliver_each_twice()
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(organization=billing_org, immediately=False)
    deliver_each_twice()
    with django_capture_on_commit_callbacks(execute=True):
        subscription_cancel(organization=billing_org, immediately=True)
    deliver_each_twice()
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/credits/purchase",
        {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "buy-1"},
        format="json",
    )
    deliver_each_twice()
    charge = stripe_emulator.get(response.json()["payment_intent"])["latest_charge"]
    stripe_emulator.create_dispute(charge if isinstance(charge, str) else charge["id"])
    deliver_each_twice()
    scheduled = staff_notices("staff_subscription_canceled").filter(key__contains="cancel_scheduled")
    ended = staff_notices("staff_subscription_canceled").exclude(key__contains="cancel_scheduled")
    assert scheduled.count() == 1 and ended.count() == 1
    dispute = staff_notices("staff_dispute").get()
    assert dispute.organization_id == billing_org.pk
    subjects = [m.subject for m in staff_mails()]
    assert sum("Payment disputed" in s for s in subjects) == 1
    assert sum("Subscription ended" in s for s in subjects) == 1
    assert sum("Cancellation scheduled" in s for s in subjects) == 1


@override_settings(
    BILLING_ADMIN_EMAILS=STAFF,
    BILLING_UNUSUAL_CONSUMPTION={"factor": 5, "baseline_days": 14, "min_credits": 100},
)
def test_unusual_consumption_against_the_organizations_own_average(
    organization, celery_eager, django_capture_on_commit_callbacks
):
    steady = Organization.objects.create(name="Steady", billing_email="s@steady.test")
    start = timezone.now() - timedelta(days=15) + timedelta(hours=1)
    with time_machine.travel(start, tick=False) as clock:
        for org in (organization, steady):
            credit_grant(organization=org, amount=100000, reason="seed")
        for day in range(14):  # 50 credits a day each, for two weeks
            for org in (organization, steady):
                credit_consume(organization=org, amount=50, reason="daily", idempotency_key=f"{org.pk}-{day}")
            clock.shift(timedelta(days=1))
    credit_consume(organization=organization, amount=400, reason="spike", idempotency_key="spike")  # 8x
    credit_consume(organization=steady, amount=60, reason="normal", idempotency_key="normal")
    with django_capture_on_commit_callbacks(execute=True):
        assert unusual_consumption_alerts() == 1
        assert unusual_consumption_alerts() == 0  # once a day
    alert = staff_notices("staff_unusual_consumption").get()
    assert alert.organization_id == organization.pk
    assert "400 credits consumed" in alert.context["lines"][0]
    assert "50.00 credits" in alert.context["lines"][1]
    assert [m for m in staff_mails() if "Unusual consumption" in m.subject]


def _consumers(organizations: int, *, at):
    """`organizations` busy but steady consumers (400 credits a day for three days, 150 in the
    last hour: above the floor, below twice their average) and one organization far over its
    own average, all before `at`."""
    orgs = [
        Organization.objects.create(name=f"Org {at:%Y%m%d} {i}", billing_email=f"o{i}@steady.test")
        for i in range(organizations)
    ]
    spiking = Organization.objects.create(name=f"Spike {at:%Y%m%d}", billing_email="s@spike.test")
    with time_machine.travel(at - timedelta(days=3, hours=1), tick=False) as clock:
        for org in [*orgs, spiking]:
            credit_grant(organization=org, amount=100000, reason="seed")
        for day in range(3):
            for org in orgs:
                credit_consume(
                    organization=org, amount=400, reason="daily", idempotency_key=f"{org.pk}-{day}"
                )
            credit_consume(organization=spiking, amount=20, reason="daily", idempotency_key=f"s-{day}")
            clock.shift(timedelta(days=1))
        clock.shift(timedelta(hours=-1))
        for org in orgs:
            credit_consume(organization=org, amount=150, reason="busy", idempotency_key=f"{org.pk}-busy")
        credit_consume(organization=spiking, amount=600, reason="spike", idempotency_key="spike")


@override_settings(
    BILLING_ADMIN_EMAILS=STAFF,
    BILLING_UNUSUAL_CONSUMPTION={"factor": 2, "baseline_days": 14, "min_credits": 100},
)
def test_unusual_consumption_check_queries_do_not_grow_with_organizations(
    celery_eager, django_assert_max_num_queries
):
    first = timezone.now() + timedelta(days=1)
    _consumers(2, at=first)
    with CaptureQueriesContext(connection) as few:
        assert unusual_consumption_alerts(now=first) == 1
    assert len(few) > 0
    later = first + timedelta(days=30)  # a window of its own (15 days), a fresh alert key
    _consumers(20, at=later)
    with django_assert_max_num_queries(len(few)):
        assert unusual_consumption_alerts(now=later) == 1
    assert sorted(
        BillingNotice.objects.filter(kind="staff_unusual_consumption").values_list(
            "organization__name", flat=True
        )
    ) == [f"Spike {first:%Y%m%d}", f"Spike {later:%Y%m%d}"]


@override_settings(BILLING_ADMIN_EMAILS=STAFF)
def test_reconcile_runs_are_stored_and_drift_emails_staff(
    organization, celery_eager, allow_ledger_drift, django_capture_on_commit_callbacks
):
    assert latest_reconcile_run() is None
    credit_grant(organization=organization, amount=10, reason="seed")
    ok = reconcile_run(trigger="beat", with_stripe=False)
    assert (ok.status, ok.drift_count, ok.finished_at is not None) == ("ok", 0, True)
    assert latest_reconcile_run() == ok and not staff_notices("staff_reconcile_drift").exists()

    CreditAccount.objects.filter(organization=organization).update(balance=D(11))  # a cached balance drifts
    with django_capture_on_commit_callbacks(execute=True):
        drift = reconcile_run(trigger="beat", with_stripe=False)
    assert drift.status == "drift" and drift.drift_count >= 1 and any("balance" in d for d in drift.drifts)
    assert latest_reconcile_run() == drift
    notice = staff_notices("staff_reconcile_drift").get()
    assert notice.organization is None and notice.key == f"staff:reconcile_drift:{drift.pk}"
    sent = [m for m in staff_mails() if "Reconcile found" in m.subject]
    assert len(sent) == 1 and sorted(sent[0].to) == sorted(STAFF)
    # The command stores its run too, and still exits 1 on drift.
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile", "--no-stripe")
    assert exited.value.code == 1
    assert ReconcileRun.objects.filter(trigger="command").count() == 1
    CreditAccount.objects.filter(organization=organization).update(balance=D(10))


def test_the_daily_reconcile_is_on_beat():
    daily = PeriodicTask.objects.get(name="credits: daily reconcile")
    assert daily.task == "credits.reconcile_daily_task" and daily.interval.every == 24 * 60
    assert daily.interval.period == "minutes" and daily.enabled
    hourly = PeriodicTask.objects.get(name="credits: unusual consumption alerts")
    assert hourly.task == "credits.unusual_consumption_alerts_task"


def test_the_daily_task_stores_a_run(organization, stripe_emulator):
    from credits.tasks import reconcile_daily_task

    run_id = reconcile_daily_task.apply().get()
    run = ReconcileRun.objects.get(pk=run_id)
    assert run.trigger == "beat" and run.status in ("ok", "drift") and run.with_stripe


@override_settings(BILLING_ADMIN_EMAILS=STAFF)
def test_auto_refill_turned_off_after_failed_payments_alerts_staff_once(organization, after_commit):
    from credits.models import CreditPurchase, PurchaseKind, PurchaseStatus
    from credits.services import auto_refill_payment_failed, auto_refill_set
    from tests.credits.factories import CreditPackFactory

    pack = CreditPackFactory(code="p1k", credits=D(1000), amount=1000)
    credit_grant(organization=organization, amount=100, source="purchase", reference="pi_seed")
    auto_refill_set(
        organization=organization,
        enabled=True,
        threshold=50,
        pack=pack,
        payment_method="pm_card_visa",
        max_refills_per_day=10,
    )
    for i in range(4):
        credit_consume(organization=organization, amount=60 if i == 0 else 1)
        pending = CreditPurchase.objects.filter(
            organization=organization, kind=PurchaseKind.AUTO_REFILL, status=PurchaseStatus.PENDING
        ).first()
        if pending is None:
            break
        with after_commit():
            for _ in range(2):  # a redelivery too
                auto_refill_payment_failed(purchase_id=pending.pk, decline_code="insufficient_funds")
    alert = staff_notices("staff_payment_failed").get()
    assert (
        alert.organization_id == organization.pk
        and "Turned off after 3 failed payments" in alert.context["lines"][0]
    )
    assert len([m for m in staff_mails() if "Auto-refill turned off" in m.subject]) == 1
