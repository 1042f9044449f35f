"""Item 13: `invoice.paid` arriving before this site knows the customer (a subscription made on
Stripe's side, its `customer.created` not delivered yet): the event is processed, or answered
with a non-2xx so that Stripe delivers it again; it is never dropped. Once everything has
arrived, the organization has its plan and its period's credits."""

import pytest
import stripe
from djstripe.models import Customer

from billing.models import Organization
from credits.models import CreditGrant
from tests.stripe_helpers import STRIPE_KEY, post

pytestmark = pytest.mark.django_db


def test_invoice_paid_before_the_customer_is_never_dropped(
    recorder, webhooks, client, billing_org, catalogue, stripe_emulator, django_capture_on_commit_callbacks
):
    Customer.objects.filter(subscriber=billing_org).delete()  # this site never heard of it
    customer = stripe.Customer.create(
        email="ap@acme.test",
        metadata={"djstripe_subscriber": str(billing_org.pk), "organization_id": str(billing_org.pk)},
        **STRIPE_KEY,
    )
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id, **STRIPE_KEY)
    price = catalogue["starter"].prices.get(interval="month").stripe_price_id
    stripe.Subscription.create(
        customer=customer.id, items=[{"price": price}], default_payment_method=card.id, **STRIPE_KEY
    )
    stripe_emulator.deliver_webhooks()
    (paid,) = recorder.of_type("invoice.paid")
    client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, paid)
    retry = first.status_code >= 300  # refused for now: Stripe will deliver it again
    for delivery in recorder.sent:
        if delivery is not paid:
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, delivery).status_code == 200
    if retry:
        with django_capture_on_commit_callbacks(execute=True):
            assert post(client, paid).status_code == 200  # Stripe's redelivery
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("starter", "active")
    grants = CreditGrant.objects.filter(organization=billing_org, source="subscription")
    assert grants.count() == 1 and grants.get().amount == org.plan.included_credits
