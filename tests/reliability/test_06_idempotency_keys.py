"""Item 6: the same idempotency key twice is one effect (the first answer again, marked
`Idempotent-Replayed: true`); the same key with a changed body answers 409
`idempotency_conflict` and changes nothing. Over HTTP, for consume, grant and purchase."""

from decimal import Decimal

import pytest

from billing.services import payment_method_attach, platform_key_create
from credits.models import CreditGrant, CreditPurchase, CreditTransaction
from credits.services import credit_grant
from tests.credits.factories import CreditPackFactory

from .helpers import balance, bearer, credits_url

pytestmark = pytest.mark.django_db


def test_consume_same_key_once_changed_body_409(key_client, organization):
    credit_grant(organization=organization, amount=10)
    body = {"amount": "2.5", "reason": "sms", "idempotency_key": "k1"}
    first = key_client.post(credits_url(organization, "/consume"), body, format="json")
    again = key_client.post(credits_url(organization, "/consume"), body, format="json")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers.get("Idempotent-Replayed") == "true"
    assert "Idempotent-Replayed" not in first.headers
    changed = key_client.post(credits_url(organization, "/consume"), {**body, "amount": "3"}, format="json")
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_conflict"
    assert balance(organization) == Decimal("7.5")
    assert CreditTransaction.objects.filter(organization=organization, kind="consume").count() == 1


def test_grant_same_key_once_changed_body_409(organization):
    client = bearer(platform_key_create(name="ops", scopes=["credits:grant"]).raw_key)
    body = {"amount": "100", "reason": "goodwill", "idempotency_key": "g1"}
    first = client.post(credits_url(organization, "/grant"), body, format="json")
    again = client.post(credits_url(organization, "/grant"), body, format="json")
    assert first.status_code == 201, first.content
    # The replay answers the first grant again; 200 rather than 201: nothing was created this time.
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    changed = client.post(credits_url(organization, "/grant"), {**body, "amount": "101"}, format="json")
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_conflict"
    assert balance(organization) == 100
    assert CreditGrant.objects.filter(organization=organization).count() == 1


def test_purchase_same_key_one_payment_changed_body_409(billing_client, billing_org, stripe_emulator):
    CreditPackFactory(code="p100", credits=Decimal(100), amount=1000)
    CreditPackFactory(code="p200", credits=Decimal(200), amount=1800)
    card = payment_method_attach(organization=billing_org, payment_method_id="pm_card_visa").id
    body = {"pack": "p100", "payment_method": card, "idempotency_key": "buy-1"}
    first = billing_client.post(credits_url(billing_org, "/purchase"), body, format="json")
    again = billing_client.post(credits_url(billing_org, "/purchase"), body, format="json")
    assert first.status_code in (200, 201), first.content
    # The replay answers the first result again; 200 rather than 201: nothing was created this time.
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    changed = billing_client.post(
        credits_url(billing_org, "/purchase"), {**body, "pack": "p200"}, format="json"
    )
    assert changed.status_code == 409 and changed.json()["error"] == "idempotency_conflict"
    assert stripe_emulator.request_count("POST", "/v1/payment_intents") == 1
    assert CreditPurchase.objects.filter(organization=billing_org).count() == 1
    assert balance(billing_org) == 100
