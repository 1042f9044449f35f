"""Stripe webhooks through dj-stripe's real endpoint: signed by the emulator, verified by
dj-stripe, re-fetched from the emulator, handled by billing/receivers.py."""

from __future__ import annotations

import pytest
from django.core import mail
from djstripe.models import Event

from billing.models import BillingNotice, Organization
from tests.stripe_helpers import post

pytestmark = pytest.mark.django_db


def subscribe(org, **kwargs):
    from billing.services import subscription_create

    return subscription_create(
        organization=org,
        plan=kwargs.pop("plan", "starter"),
        interval="month",
        payment_method=kwargs.pop("payment_method", "pm_card_visa"),
        trial_days=kwargs.pop("trial_days", 0),
    )


def test_events_are_delivered_signed_and_processed(webhooks, billing_org, stripe_emulator):
    subscribe(billing_org)
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    delivered = webhooks.deliver()
    assert delivered
    types = set(Event.objects.values_list("type", flat=True))
    assert {"customer.created", "customer.subscription.created", "invoice.paid"} <= types
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("starter", "active")


def test_every_event_delivered_five_times_changes_state_once(
    recorder, webhooks, client, billing_org, django_capture_on_commit_callbacks
):
    from billing.services import subscription_cancel

    with django_capture_on_commit_callbacks(execute=True):
        subscribe(billing_org)
        subscription_cancel(organization=billing_org, immediately=True)
    stripe = webhooks.emulator
    stripe.deliver_webhooks()
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    assert recorder.sent
    for delivery in recorder.sent:
        for _ in range(5):
            with django_capture_on_commit_callbacks(execute=True):
                assert post(client, delivery).status_code == 200
    assert Event.objects.count() == len(recorder.sent)
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.subscription_status == "canceled" and org.plan_id is None
    notices = BillingNotice.objects.filter(organization=billing_org, kind="subscription_canceled")
    assert notices.count() == 1
    assert len([m for m in mail.outbox if "has ended" in m.subject]) == 1


def test_updated_before_created_still_leaves_the_right_status(
    recorder, webhooks, client, billing_org, django_capture_on_commit_callbacks
):
    subscribe(billing_org, trial_days=14)
    from billing.services import subscription_cancel

    subscription_cancel(organization=billing_org, immediately=False)  # an update: cancel_at_period_end
    webhooks.emulator.deliver_webhooks()
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    created = recorder.of_type("customer.subscription.created")
    updated = recorder.of_type("customer.subscription.updated")
    assert created and updated
    with django_capture_on_commit_callbacks(execute=True):
        for delivery in [*reversed(updated), *created]:
            assert post(client, delivery).status_code == 200
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("starter", "trialing")
    from djstripe.models import Subscription

    assert Subscription.objects.get(id=org.stripe_subscription_id).stripe_data["cancel_at_period_end"] is True


def test_tampered_signature_is_refused_and_changes_nothing(recorder, webhooks, client, billing_org):
    subscribe(billing_org)
    webhooks.emulator.deliver_webhooks()
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    delivery = recorder.of_type("customer.subscription.created")[0]
    tampered = (
        delivery[2]
        .replace(b'"status": "active"', b'"status": "canceled"')
        .replace(b'"status":"active"', b'"status":"canceled"')
    )
    assert tampered != delivery[2]
    response = post(client, delivery, body=tampered)
    assert response.status_code == 400
    assert not Event.objects.exists()
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan_id, org.subscription_status) == (None, "")


def test_a_failed_handler_runs_again_on_redelivery(
    recorder, webhooks, client, billing_org, stripe_emulator, django_capture_on_commit_callbacks
):
    """A subscription made outside the product (say, in Stripe's dashboard) on a price the
    catalogue does not know: the handler fails, so Stripe redelivers; once staff map the
    price to a plan, the redelivery lands."""
    import stripe
    from djstripe.models import Customer

    from billing.models import PlanPrice

    customer = Customer.objects.get(subscriber=billing_org)
    key = {"api_key": "sk_test_" + "x" * 24}
    price = stripe.Price.create(
        product="plan_business", unit_amount=4200, currency="usd", recurring={"interval": "month"}, **key
    )
    card = stripe.PaymentMethod.attach("pm_card_visa", customer=customer.id, **key)
    stripe.Subscription.create(
        customer=customer.id, items=[{"price": price.id}], default_payment_method=card.id, **key
    )
    stripe_emulator.deliver_webhooks()
    delivery = recorder.of_type("customer.subscription.created")[0]

    client.raise_request_exception = False
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, delivery).status_code == 500
    assert not Event.objects.filter(type="customer.subscription.created").exists()
    assert Organization.objects.get(pk=billing_org.pk).plan_id is None

    PlanPrice.objects.create(
        plan_id=PlanPrice.objects.get(plan__code="business", interval="month").plan_id,
        interval="month",
        amount=4200,
        currency="eur",
        stripe_price_id=price.id,
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, delivery).status_code == 200
    org = Organization.objects.get(pk=billing_org.pk)
    assert (org.plan.code, org.subscription_status) == ("business", "active")


def test_endpoints_of_earlier_local_runs_on_other_ports_are_removed_on_the_emulator(
    stripe_emulator, settings
):
    """`make run` on another PORT registered its own endpoint in the emulator's kept state; the next
    run removes the loopback endpoints that are not its own (the emulator would go on sending every
    event to the dead address), keeps its own and any endpoint elsewhere, and on real Stripe
    touches nothing."""
    from billing import stripe_api
    from billing.services import webhook_endpoint_register, webhook_endpoints_stale_remove

    old = webhook_endpoint_register(base_url="http://127.0.0.1:8107")
    other_host = stripe_api.webhook_endpoint_create(
        url="https://hooks.example.com/stripe/webhook/x/", enabled_events=["*"]
    )
    current = webhook_endpoint_register(base_url="http://127.0.0.1:8109")

    settings.STRIPE_USES_EMULATOR = False
    assert webhook_endpoints_stale_remove(base_url="http://127.0.0.1:8109") == []
    settings.STRIPE_USES_EMULATOR = True
    assert webhook_endpoints_stale_remove(base_url="http://127.0.0.1:8109") == [old.id]

    left = {e["id"] for e in stripe_api.webhook_endpoints_list()}
    assert current.id in left and other_host["id"] in left and old.id not in left
    assert webhook_endpoints_stale_remove(base_url="http://127.0.0.1:8109") == []
    # The removed run's address registers anew when it runs again.
    again = webhook_endpoint_register(base_url="http://127.0.0.1:8107")
    assert again.id != old.id and stripe_api.webhook_endpoint_exists(endpoint_id=again.id)
