"""Item 21: a Celery retry of a charge (the auto-refill task, retried on a Stripe 500) sends the
same idempotency key every attempt, so Stripe creates one PaymentIntent however many attempts
reached it; the credits land once."""

from decimal import Decimal

import pytest

from billing.services import payment_method_attach
from credits.models import CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.credits.factories import CreditPackFactory

from .helpers import balance

pytestmark = pytest.mark.django_db


def test_every_attempt_of_a_retried_charge_uses_one_key(
    billing_org, stripe_emulator, celery_eager, django_capture_on_commit_callbacks
):
    from config.celery import app

    # Eager tasks retry in place (Celery's `apply` follows each Retry) when errors do not propagate.
    app.conf.task_eager_propagates = False  # the celery_eager fixture puts it back
    pack = CreditPackFactory(code="r1k", credits=Decimal(1000), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    credit_grant(organization=billing_org, amount=100)
    auto_refill_set(organization=billing_org, enabled=True, threshold=50, pack=pack, payment_method=card)
    # The first attempt is carried out by Stripe but answered 500; the second is refused with a
    # 500 before Stripe does anything; the third gets through.
    stripe_emulator.faults.add(method="POST", path="/v1/payment_intents", status=500, processed=True, times=1)
    stripe_emulator.faults.add(
        method="POST", path="/v1/payment_intents", status=500, processed=False, times=1
    )
    with django_capture_on_commit_callbacks(execute=True):
        credit_consume(organization=billing_org, amount=60, idempotency_key="cross")
    attempts = [
        entry
        for entry in stripe_emulator.request_log
        if entry["method"] == "POST" and entry["path"] == "/v1/payment_intents"
    ]
    refill = CreditPurchase.objects.get(kind=PurchaseKind.AUTO_REFILL)
    assert len(attempts) == 3
    assert {entry["idempotency_key"] for entry in attempts} == {refill.stripe_idempotency_key}
    assert refill.stripe_idempotency_key and str(refill.pk) in refill.stripe_idempotency_key
    assert len(stripe_emulator.objects("payment_intent")) == 1
    assert refill.status == PurchaseStatus.SUCCEEDED
    assert CreditGrant.objects.filter(organization=billing_org, source="purchase").count() == 1
    assert balance(billing_org) == Decimal(1040)
