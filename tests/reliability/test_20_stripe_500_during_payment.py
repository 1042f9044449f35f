"""Item 20: Stripe answers 500 during a purchase or while a Checkout page is made (whether or
not it carried the request out): the API answers 503 `stripe_unavailable`, no credits; the
client's retry with the same key ends with one PaymentIntent (or one Checkout session) and the
credits granted once, only when paid."""

from decimal import Decimal

import pytest

from billing.services import payment_method_attach
from credits.models import CreditGrant, CreditPurchase
from tests.credits.factories import CreditPackFactory
from tests.stripe_helpers import post

from .helpers import balance, credits_url

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("processed", [True, False], ids=["charged-then-500", "500-before-charging"])
def test_a_purchase_through_a_stripe_500(billing_client, billing_org, stripe_emulator, processed):
    CreditPackFactory(code="p100", credits=Decimal(100), amount=1000)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    stripe_emulator.faults.add(
        method="POST", path="/v1/payment_intents", status=500, processed=processed, times=2
    )
    body = {"pack": "p100", "payment_method": card, "idempotency_key": "buy-500"}
    for _ in range(2):
        failed = billing_client.post(credits_url(billing_org, "/purchase"), body, format="json")
        assert failed.status_code == 503 and failed.json()["error"] == "stripe_unavailable", failed.content
        assert balance(billing_org) == 0
    done = billing_client.post(credits_url(billing_org, "/purchase"), body, format="json")
    assert done.status_code in (200, 201), done.content
    assert done.json()["status"] == "succeeded"
    intents = stripe_emulator.objects("payment_intent")
    assert len(intents) == 1 and intents[0]["status"] == "succeeded"
    assert CreditPurchase.objects.filter(organization=billing_org).count() == 1
    assert CreditGrant.objects.filter(organization=billing_org).count() == 1
    assert balance(billing_org) == 100


def test_a_checkout_through_a_stripe_500_grants_only_once_paid(
    recorder,
    webhooks,
    client,
    billing_client,
    billing_org,
    stripe_emulator,
    django_capture_on_commit_callbacks,
):
    CreditPackFactory(code="p200", credits=Decimal(200), amount=1800)
    stripe_emulator.faults.add(
        method="POST", path="/v1/checkout/sessions", status=500, processed=True, times=1
    )
    body = {
        "kind": "credits",
        "pack": "p200",
        "success_url": "http://localhost/ok",
        "cancel_url": "http://localhost/no",
    }
    url = f"/api/v1/organizations/{billing_org.pk}/checkout-sessions"
    failed = billing_client.post(url, body, format="json")
    assert failed.status_code == 503 and failed.json()["error"] == "stripe_unavailable"
    page = billing_client.post(url, body, format="json")
    assert page.status_code == 201, page.content
    assert balance(billing_org) == 0  # a page is not a payment
    assert stripe_emulator.checkout_submit(page.json()["id"], "success")["status"] == "complete"
    stripe_emulator.deliver_webhooks()
    for delivery in recorder.sent:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, delivery).status_code == 200
    paid = [s for s in stripe_emulator.objects("checkout_session") if s["payment_status"] == "paid"]
    assert len(paid) == 1
    assert len([i for i in stripe_emulator.objects("payment_intent") if i["status"] == "succeeded"]) == 1
    assert CreditGrant.objects.filter(organization=billing_org).count() == 1
    assert balance(billing_org) == 200
