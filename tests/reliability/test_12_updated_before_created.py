"""Item 12: `customer.subscription.updated` (active) delivered before
`customer.subscription.created` (incomplete): the organization ends active, because handlers act
on the subscription as Stripe has it now, not on the event's copy."""

import json

import pytest
import stripe
from djstripe.models import Customer

from billing.models import Organization
from tests.stripe_helpers import STRIPE_KEY, post

pytestmark = pytest.mark.django_db


def test_updated_active_before_created_incomplete_leaves_active(
    recorder, webhooks, client, billing_org, catalogue, stripe_emulator, django_capture_on_commit_callbacks
):
    customer = Customer.objects.get(subscriber=billing_org).id
    card = stripe.PaymentMethod.attach("pm_card_authenticationRequired", customer=customer, **STRIPE_KEY)
    price = catalogue["starter"].prices.get(interval="month").stripe_price_id
    stripe.Subscription.create(  # a card that asks for 3-D Secure: the subscription starts incomplete
        customer=customer,
        items=[{"price": price}],
        default_payment_method=card.id,
        payment_behavior="allow_incomplete",
        **STRIPE_KEY,
    )
    (sub,) = stripe_emulator.objects("subscription")
    assert sub["status"] == "incomplete"
    (intent,) = [i for i in stripe_emulator.objects("payment_intent") if i["status"] == "requires_action"]
    stripe_emulator.complete_authentication(intent["id"])
    assert stripe_emulator.get(sub["id"])["status"] == "active"
    stripe_emulator.deliver_webhooks()
    created = recorder.of_type("customer.subscription.created")
    updated = [
        d
        for d in recorder.of_type("customer.subscription.updated")
        if json.loads(d[2])["data"]["object"]["status"] == "active"
    ]
    assert json.loads(created[0][2])["data"]["object"]["status"] == "incomplete" and updated
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    for delivery in [*updated, *created]:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, delivery).status_code == 200
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("starter", "active")
