"""Item 19: webhooks lost for an hour (the endpoint unreachable: nothing arrives) while Stripe
moves on: a credits Checkout is paid, one organization's subscription is canceled on Stripe's
side, another's renews a month later. `manage.py reconcile` reports the drift; `reconcile
--repair` restores the state from Stripe (status, purchase granted once, the new period's
credits), and a second check is clean."""

import json
from decimal import Decimal
from io import StringIO

import pytest
import stripe
from django.core.management import call_command

from billing.models import Organization
from billing.services import organization_create
from credits.models import CreditGrant, CreditPurchase, PurchaseStatus
from tests.billing.factories import UserFactory
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import STRIPE_KEY, Recorder, post

from .helpers import balance, credits_checkout_paid, ledger_sum, subscribe

pytestmark = pytest.mark.django_db


def reconcile(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except SystemExit as exit_:
        return int(exit_.code), out.getvalue()
    return 0, out.getvalue()


def test_reconcile_restores_what_lost_webhooks_carried(
    webhooks, billing_client, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    other = organization_create(name="Other", billing_email="ap@other.test", owner=UserFactory())
    Organization.objects.filter(pk__in=[billing_org.pk, other.pk]).update(trial_used_at="2026-01-01T00:00Z")
    with django_capture_on_commit_callbacks(execute=True):
        subscribe(Organization.objects.get(pk=billing_org.pk))
        subscribe(Organization.objects.get(pk=other.pk))
    webhooks.deliver()
    starter = Organization.objects.get(pk=billing_org.pk).plan
    assert balance(billing_org) == starter.included_credits
    assert reconcile()[0] == 0

    lost = Recorder()  # from here on, every delivery is lost
    stripe_emulator.set_webhook_transport(lost)
    CreditPackFactory(code="p500", credits=Decimal(500), amount=4000)
    credits_checkout_paid(billing_client, billing_org, stripe_emulator, "p500")
    stripe.Subscription.cancel(Organization.objects.get(pk=other.pk).stripe_subscription_id, **STRIPE_KEY)
    # billing_org's subscription renews and its invoice is paid (finalized an hour after the renewal):
    # 32 days, because a month can have 31 (advancing 31 days from 15 December lands on the renewal
    # itself, before the invoice is finalized)
    stripe_emulator.advance(days=32)
    stripe_emulator.deliver_webhooks()
    assert {"checkout.session.completed", "customer.subscription.deleted", "invoice.paid"} <= {
        json.loads(body)["type"] for _, _, body in lost.sent
    }
    assert Organization.objects.get(pk=other.pk).subscription_status == "active"  # stale here

    code, report = reconcile()
    assert code == 1
    assert f"organization {other.pk}" in report and "'canceled' on Stripe" in report
    assert "paid by" in report and "not granted" in report

    with django_capture_on_commit_callbacks(execute=True):
        code, report = reconcile("--repair")
    assert code == 0, report
    assert Organization.objects.get(pk=other.pk).subscription_status == "canceled"
    purchase = CreditPurchase.objects.get(organization=billing_org)
    assert purchase.status == PurchaseStatus.SUCCEEDED and purchase.grant is not None
    periods = CreditGrant.objects.filter(organization=billing_org, source="subscription")
    assert periods.count() == 2  # the first period's and the renewal's
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert ledger_sum(billing_org) == balance(billing_org)

    # Repairing again, or the late webhooks arriving after all, changes nothing.
    before = balance(billing_org)
    assert reconcile("--repair")[0] == 0
    for delivery in lost.sent:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(webhooks.client, delivery).status_code == 200
    assert balance(billing_org) == before
    assert CreditGrant.objects.filter(organization=billing_org).count() == 3
