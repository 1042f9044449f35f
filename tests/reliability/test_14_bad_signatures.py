"""Item 14: a tampered body, a signature made with the wrong secret, or no signature header:
400, and nothing changed (no event stored, no state touched)."""

import pytest
from djstripe.models import Event

from billing.models import Organization
from credits.models import CreditGrant
from stripe_emulator.webhooks import signature_header
from tests.stripe_helpers import post

from .helpers import subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def delivery(recorder, webhooks, billing_org, stripe_emulator):
    subscribe(billing_org)
    stripe_emulator.deliver_webhooks()
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    return recorder.of_type("invoice.paid")[0]


def nothing_changed(org):
    assert not Event.objects.exists()
    assert not CreditGrant.objects.filter(organization=org).exists()
    fresh = Organization.objects.get(pk=org.pk)
    assert (fresh.plan_id, fresh.subscription_status) == (None, "")


def test_tampered_body(client, delivery, billing_org):
    body = delivery[2]
    tampered = body.replace(b'"amount_paid": ', b'"amount_paid": 1', 1)
    assert tampered != body
    assert post(client, delivery, body=tampered).status_code == 400
    nothing_changed(billing_org)


def test_wrong_secret(client, delivery, billing_org):
    url, headers, body = delivery
    forged = {**headers, "Stripe-Signature": signature_header(body, "whsec_" + "f" * 32)}
    assert post(client, (url, forged, body)).status_code == 400
    nothing_changed(billing_org)


def test_missing_header(client, delivery, billing_org):
    url, headers, body = delivery
    bare = {k: v for k, v in headers.items() if k.lower() != "stripe-signature"}
    assert post(client, (url, bare, body)).status_code == 400
    nothing_changed(billing_org)
