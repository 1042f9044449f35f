"""Item 22: our Stripe idempotency key sent again with a changed amount (the purchase row
changed between two attempts of its charge): Stripe refuses it, the operators are alerted, the
refill is marked failed instead of being retried, and nothing more is charged. Over the API,
the client's key with a changed body is a 409 before Stripe is called."""

import logging
from decimal import Decimal

import pytest

from billing.services import payment_method_attach
from credits.models import CreditGrant, CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_run, auto_refill_set, credit_consume, credit_grant
from credits.services.purchases import purchase_payment_intent_create
from tests.credits.factories import CreditPackFactory

from .helpers import balance, credits_url

pytestmark = pytest.mark.django_db


def test_a_changed_amount_under_the_same_stripe_key_is_refused_and_alerted(
    billing_org, stripe_emulator, caplog
):
    pack = CreditPackFactory(code="k1k", credits=Decimal(1000), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    credit_grant(organization=billing_org, amount=100)
    auto_refill_set(organization=billing_org, enabled=True, threshold=50, pack=pack, payment_method=card)
    credit_consume(organization=billing_org, amount=60, idempotency_key="cross")  # the task is not run here
    refill = CreditPurchase.objects.get(kind=PurchaseKind.AUTO_REFILL)
    purchase_payment_intent_create(purchase=refill)  # Stripe charged 1000; the worker died before saving it
    CreditPurchase.objects.filter(pk=refill.pk).update(amount=1500)  # the row changed meanwhile
    with caplog.at_level(logging.ERROR, logger="alerts"):
        settled = auto_refill_run(purchase_id=refill.pk)
    assert settled.status == PurchaseStatus.FAILED and settled.failure_code == "stripe_error"
    assert any(getattr(r, "alert", "") == "stripe_idempotency_mismatch" for r in caplog.records)
    intents = stripe_emulator.objects("payment_intent")
    assert len(intents) == 1 and intents[0]["amount"] == 1000  # no second charge
    assert not CreditGrant.objects.filter(organization=billing_org, source="purchase").exists()
    assert balance(billing_org) == 40


def test_the_api_refuses_a_client_key_with_a_changed_amount_before_stripe(
    billing_client, billing_org, stripe_emulator
):
    CreditPackFactory(code="a1", credits=Decimal(10), amount=500)
    CreditPackFactory(code="a2", credits=Decimal(20), amount=900)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    first = {"pack": "a1", "payment_method": card, "idempotency_key": "same"}
    assert billing_client.post(credits_url(billing_org, "/purchase"), first, format="json").status_code == 201
    changed = billing_client.post(
        credits_url(billing_org, "/purchase"), {**first, "pack": "a2"}, format="json"
    )
    assert changed.status_code == 409
    assert stripe_emulator.request_count("POST", "/v1/payment_intents", include_replays=True) == 1
