"""Item 18: a webhook handler that crashes halfway (after it wrote the grant, before the
webhook's transaction committed): everything it wrote is rolled back, the failure is recorded
on the delivery's trigger row, the answer is a non-2xx so Stripe delivers again, and the
redelivery applies the event once."""

from decimal import Decimal

import pytest
from djstripe.models import Event, WebhookEventTrigger

from credits import receivers
from credits.models import CreditGrant, CreditPurchase, CreditTransaction, PurchaseStatus
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import post

from .helpers import balance, credits_checkout_paid

pytestmark = pytest.mark.django_db


def test_a_crash_halfway_rolls_back_and_the_redelivery_applies_once(
    recorder,
    webhooks,
    client,
    billing_client,
    billing_org,
    stripe_emulator,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    CreditPackFactory(code="p300", credits=Decimal(300), amount=2500)
    credits_checkout_paid(billing_client, billing_org, stripe_emulator, "p300")
    stripe_emulator.deliver_webhooks()
    (completed,) = recorder.of_type("checkout.session.completed")
    real_fulfil = receivers.services.credit_purchase_fulfil

    def fulfil_then_crash(**kwargs):
        real_fulfil(**kwargs)
        assert CreditTransaction.objects.filter(organization=billing_org).count() == 1  # written...
        raise RuntimeError("worker lost its database halfway")  # ...and then the handler dies

    monkeypatch.setattr(receivers.services, "credit_purchase_fulfil", fulfil_then_crash)
    client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, completed).status_code == 500
    assert not CreditTransaction.objects.filter(organization=billing_org).exists()
    assert not CreditGrant.objects.filter(organization=billing_org).exists()
    assert CreditPurchase.objects.get(organization=billing_org).status != PurchaseStatus.SUCCEEDED
    assert not Event.objects.filter(type="checkout.session.completed").exists()
    trigger = WebhookEventTrigger.objects.order_by("-created").first()
    assert "halfway" in trigger.exception and "RuntimeError" in trigger.traceback and not trigger.processed

    monkeypatch.setattr(receivers.services, "credit_purchase_fulfil", real_fulfil)
    for _ in range(3):  # Stripe's redelivery, and a few more
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, completed).status_code == 200
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == 300
    assert CreditPurchase.objects.get(organization=billing_org).status == PurchaseStatus.SUCCEEDED
    assert Event.objects.filter(type="checkout.session.completed").count() == 1
