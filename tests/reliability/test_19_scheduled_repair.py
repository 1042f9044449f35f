"""Item 19, on a schedule: the daily reconcile beat task first does what lost webhooks would have
done (`reconcile --repair`), so state lost with webhooks comes back without anyone running the
command: a subscription canceled on Stripe's side and a paid Checkout whose webhooks never came."""

from decimal import Decimal

import pytest
import stripe
from django_celery_beat.models import PeriodicTask

from billing.models import Organization
from credits.models import CreditGrant, CreditPurchase, PurchaseStatus, ReconcileRun
from credits.tasks import reconcile_daily_task
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import STRIPE_KEY, Recorder

from .helpers import balance, credits_checkout_paid, ledger_sum, subscribe

pytestmark = pytest.mark.django_db


def test_the_daily_reconcile_is_scheduled():
    task = PeriodicTask.objects.get(name="credits: daily reconcile")
    assert task.task == "credits.reconcile_daily_task" and task.enabled
    assert (task.interval.every, task.interval.period) == (24 * 60, "minutes")


def test_the_daily_beat_run_repairs_what_lost_webhooks_carried(
    webhooks, billing_client, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    Organization.objects.filter(pk=billing_org.pk).update(trial_used_at="2026-01-01T00:00Z")
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(Organization.objects.get(pk=billing_org.pk))
    webhooks.deliver()

    stripe_emulator.set_webhook_transport(Recorder())  # from here on, every delivery is lost
    CreditPackFactory(code="p500", credits=Decimal(500), amount=4000)
    credits_checkout_paid(billing_client, billing_org, stripe_emulator, "p500")
    stripe.Subscription.cancel(
        Organization.objects.get(pk=billing_org.pk).stripe_subscription_id, **STRIPE_KEY
    )
    stripe_emulator.deliver_webhooks()
    assert Organization.objects.get(pk=billing_org.pk).subscription_status == "active"  # stale here
    before = balance(billing_org)

    with django_capture_on_commit_callbacks(execute=True):
        run_id = reconcile_daily_task.apply().get()
    run = ReconcileRun.objects.get(pk=run_id)
    assert Organization.objects.get(pk=billing_org.pk).subscription_status == "canceled"
    purchase = CreditPurchase.objects.get(organization=billing_org)
    assert purchase.status == PurchaseStatus.SUCCEEDED and purchase.grant is not None
    assert balance(billing_org) == before + 500 == ledger_sum(billing_org)
    assert (run.trigger, run.status, run.drifts) == ("beat", ReconcileRun.Status.OK, [])
    assert "repaired first (2)" in run.summary

    # The next day's run finds nothing to repair and grants nothing twice.
    with django_capture_on_commit_callbacks(execute=True):
        again = ReconcileRun.objects.get(pk=reconcile_daily_task.apply().get())
    assert again.status == ReconcileRun.Status.OK and "repaired" not in again.summary
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == before + 500


def test_the_daily_beat_run_gives_back_metered_items_whose_task_was_lost(
    webhooks, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    """The items task enqueued by a subscription webhook was lost (committed, never enqueued):
    the subscription lacks its plan's metered item, so usage above the limit would not be billed."""
    from billing.models import PlanMeteredPrice

    with django_capture_on_commit_callbacks(execute=True):
        subscribe(Organization.objects.get(pk=billing_org.pk), plan="business")
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    metered = set(
        PlanMeteredPrice.objects.filter(plan__code="business").values_list("stripe_price_id", flat=True)
    )

    def metered_on_stripe() -> set[str]:
        sub = stripe.Subscription.retrieve(org.stripe_subscription_id, **STRIPE_KEY)
        return {i["price"]["id"] for i in sub["items"]["data"]} & metered

    assert metered and metered_on_stripe() == metered
    sub = stripe.Subscription.retrieve(org.stripe_subscription_id, **STRIPE_KEY)
    lost = Recorder()
    stripe_emulator.set_webhook_transport(lost)
    stripe.Subscription.modify(
        org.stripe_subscription_id,
        items=[{"id": i["id"], "deleted": True} for i in sub["items"]["data"] if i["price"]["id"] in metered],
        **STRIPE_KEY,
    )
    stripe_emulator.deliver_webhooks()
    assert metered_on_stripe() == set()

    with django_capture_on_commit_callbacks(execute=True):
        run = ReconcileRun.objects.get(pk=reconcile_daily_task.apply().get())
    assert metered_on_stripe() == metered
    assert "metered items" in run.summary
    with django_capture_on_commit_callbacks(execute=True):
        again = ReconcileRun.objects.get(pk=reconcile_daily_task.apply().get())
    assert "repaired" not in again.summary and metered_on_stripe() == metered
