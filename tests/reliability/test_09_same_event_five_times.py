"""Item 9: one webhook event delivered five times in a row changes state once: a paid credits
Checkout (`checkout.session.completed`, `payment_intent.succeeded`) grants its credits once."""

from decimal import Decimal

import pytest
from djstripe.models import Event

from credits.models import CreditGrant, CreditPurchase, PurchaseStatus
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import post

from .helpers import balance, credits_checkout_paid, ledger_sum

pytestmark = pytest.mark.django_db


def test_each_event_five_times_one_grant(
    recorder,
    webhooks,
    client,
    billing_client,
    billing_org,
    stripe_emulator,
    django_capture_on_commit_callbacks,
):
    CreditPackFactory(code="p500", credits=Decimal(500), amount=4000)
    credits_checkout_paid(billing_client, billing_org, stripe_emulator, "p500")
    stripe_emulator.deliver_webhooks()
    paid = recorder.of_type("checkout.session.completed") + recorder.of_type("payment_intent.succeeded")
    assert len(paid) == 2
    for delivery in paid:
        for _ in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, delivery).status_code == 200
    assert (
        Event.objects.filter(type__in=["checkout.session.completed", "payment_intent.succeeded"]).count() == 2
    )
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == 500 == ledger_sum(billing_org)
    assert CreditPurchase.objects.get(organization=billing_org).status == PurchaseStatus.SUCCEEDED
