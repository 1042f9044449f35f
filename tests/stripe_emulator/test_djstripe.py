"""dj-stripe 2.11 against the emulator: `sync_from_stripe_data` for each object the product
keeps, and dj-stripe's own webhook endpoint receiving, verifying and processing signed events
(re-fetching the object through stripe-python, which reaches the in-process emulator)."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
import stripe
from django.test import Client
from djstripe import models as djstripe_models

from stripe_emulator.testing import django_client_transport
from tests.billing.factories import OrganizationFactory

from .conftest import KEY

pytestmark = pytest.mark.django_db


def test_sync_customer_and_payment_method(emu, customer):
    synced = djstripe_models.Customer.sync_from_stripe_data(customer, api_key=KEY)
    assert synced.id == customer.id and synced.email == "jenny@example.com"
    assert synced.djstripe_owner_account.id == emu.account["id"]
    pm = stripe.PaymentMethod.retrieve(customer.invoice_settings.default_payment_method, api_key=KEY)
    synced_pm = djstripe_models.PaymentMethod.sync_from_stripe_data(pm, api_key=KEY)
    assert synced_pm.customer.id == customer.id
    assert synced_pm.stripe_data["card"]["last4"] == "4242"


def test_customer_get_or_create_for_a_subscriber(emu):
    org = OrganizationFactory()
    customer, created = djstripe_models.Customer.get_or_create(subscriber=org)
    assert created is True
    remote = stripe.Customer.retrieve(customer.id, api_key=KEY)
    assert remote.email == org.billing_email
    assert remote.metadata["djstripe_subscriber"] == str(org.pk)
    assert djstripe_models.Customer.get_or_create(subscriber=org) == (customer, False)


def test_sync_product_and_prices(emu, monthly_price):
    product = stripe.Product.retrieve(monthly_price.product, api_key=KEY)
    synced_product = djstripe_models.Product.sync_from_stripe_data(product, api_key=KEY)
    assert synced_product.name == "Professional"
    synced_price = djstripe_models.Price.sync_from_stripe_data(monthly_price, api_key=KEY)
    assert synced_price.product.id == product.id
    assert synced_price.stripe_data["unit_amount"] == 3000
    assert synced_price.stripe_data["lookup_key"] == "pro_monthly"


def test_sync_subscription_and_its_invoice(emu, customer, monthly_price):
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    synced = djstripe_models.Subscription.sync_from_stripe_data(sub, api_key=KEY)
    assert synced.customer.id == customer.id
    assert synced.stripe_data["status"] == "active"
    assert djstripe_models.SubscriptionItem.objects.filter(subscription=synced).count() == 1
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    synced_invoice = djstripe_models.Invoice.sync_from_stripe_data(invoice, api_key=KEY)
    # Since 2025-03-31.basil an invoice names its subscription under `parent` only (dj-stripe's
    # `Invoice.subscription` stays empty, as with real Stripe).
    assert synced_invoice.stripe_data["parent"]["subscription_details"]["subscription"] == sub.id
    assert synced_invoice.stripe_data["status"] == "paid"
    assert synced_invoice.amount_due == 3000
    line_ids = [line.id for line in invoice.lines.data]
    assert (
        list(djstripe_models.LineItem.objects.filter(id__in=line_ids).values_list("id", flat=True))
        == line_ids
    )


def test_sync_payment_intent_and_charge(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=2500,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
    )
    synced_pi = djstripe_models.PaymentIntent.sync_from_stripe_data(pi, api_key=KEY)
    assert synced_pi.stripe_data["status"] == "succeeded" and synced_pi.customer.id == customer.id
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    synced_charge = djstripe_models.Charge.sync_from_stripe_data(charge, api_key=KEY)
    assert synced_charge.stripe_data["amount"] == 2500
    assert synced_charge.payment_intent.id == pi.id


def djstripe_endpoint(emu) -> tuple[djstripe_models.WebhookEndpoint, str]:
    """A dj-stripe endpoint made the way dj-stripe makes one: created through the API (which
    issues the secret), then synced with its djstripe_uuid in the metadata."""
    endpoint_uuid = uuid.uuid4()
    created = stripe.WebhookEndpoint.create(
        api_key=KEY,
        url=f"http://testserver/stripe/webhook/{endpoint_uuid}/",
        enabled_events=["*"],
        api_version="2026-08-26.dahlia",
        metadata={"djstripe_uuid": str(endpoint_uuid)},
    )
    endpoint = djstripe_models.WebhookEndpoint.sync_from_stripe_data(created, api_key=KEY)
    assert endpoint.secret == created.secret
    assert str(endpoint.djstripe_uuid) == str(endpoint_uuid)
    return endpoint, created.secret


def test_djstripe_webhook_endpoint_verifies_and_processes_events(emu):
    djstripe_endpoint(emu)
    emu.set_webhook_transport(django_client_transport(Client()))
    org = OrganizationFactory()
    customer, _ = djstripe_models.Customer.get_or_create(subscriber=org)
    stripe.Customer.modify(customer.id, api_key=KEY, name="Renamed by Stripe", metadata={"tier": "gold"})
    delivered = emu.deliver_webhooks()
    assert [(d["type"], d["status"]) for d in delivered] == [
        ("customer.created", 200),
        ("customer.updated", 200),
    ]
    triggers = djstripe_models.WebhookEventTrigger.objects.order_by("created")
    assert [(t.valid, t.processed) for t in triggers] == [(True, True), (True, True)]
    assert djstripe_models.Event.objects.filter(type="customer.updated").exists()
    customer.refresh_from_db()
    assert customer.stripe_data["name"] == "Renamed by Stripe"
    assert customer.stripe_data["metadata"]["tier"] == "gold"


def test_djstripe_processes_a_subscription_lifecycle(emu, customer, monthly_price):
    djstripe_endpoint(emu)
    emu.set_webhook_transport(django_client_transport(Client()))
    djstripe_models.Customer.sync_from_stripe_data(customer, api_key=KEY)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    stripe.Subscription.modify(sub.id, api_key=KEY, cancel_at_period_end=True)
    delivered = emu.deliver_webhooks()
    assert delivered and all(d["status"] == 200 for d in delivered), delivered
    synced = djstripe_models.Subscription.objects.get(id=sub.id)
    assert synced.stripe_data["status"] == "active" and synced.stripe_data["cancel_at_period_end"] is True
    invoice = djstripe_models.Invoice.objects.get(id=sub.latest_invoice)
    assert invoice.stripe_data["status"] == "paid"
    assert djstripe_models.Charge.objects.filter(customer__id=customer.id).count() == 1
    stripe.Subscription.cancel(sub.id, api_key=KEY)
    assert all(d["status"] == 200 for d in emu.deliver_webhooks())
    synced.refresh_from_db()
    assert synced.stripe_data["status"] == "canceled"


def test_a_wrong_secret_is_refused_and_retried(emu):
    endpoint, secret = djstripe_endpoint(emu)
    endpoint.secret = "whsec_not_the_right_one"
    endpoint.save()
    emu.set_webhook_transport(django_client_transport(Client()))
    stripe.Customer.create(api_key=KEY, email="x@example.com")
    first = emu.deliver_webhooks()
    assert [d["status"] for d in first] == [400]
    assert djstripe_models.WebhookEventTrigger.objects.get().valid is False
    endpoint.secret = secret
    endpoint.save()
    assert [(d["status"], d["attempt"]) for d in emu.deliver_webhooks(retry_now=True)] == [(200, 2)]


def test_djstripe_accepts_every_event_the_emulator_sends(emu, monthly_price):
    """A broad scenario; dj-stripe must answer 200 to every delivery (it re-fetches each object)."""
    djstripe_endpoint(emu)
    emu.set_webhook_transport(django_client_transport(Client()))
    events_before = len(emu.events())  # the price fixture's, made before the endpoint existed
    org = OrganizationFactory()
    customer, _ = djstripe_models.Customer.get_or_create(subscriber=org)
    seti = stripe.SetupIntent.create(
        api_key=KEY, customer=customer.id, payment_method="pm_card_visa", confirm=True
    )
    stripe.Customer.modify(
        customer.id, api_key=KEY, invoice_settings={"default_payment_method": seti.payment_method}
    )
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        customer=customer.id,
        payment_method=seti.payment_method,
        confirm=True,
    )
    stripe.Refund.create(api_key=KEY, payment_intent=pi.id, amount=400)
    with pytest.raises(stripe.CardError):
        stripe.PaymentIntent.create(
            api_key=KEY,
            amount=1000,
            currency="usd",
            customer=customer.id,
            payment_method="pm_card_chargeDeclined",
            confirm=True,
        )
    stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        customer=customer.id,
        payment_method="pm_card_authenticationRequired",
        confirm=True,
    )
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    stripe.Subscription.modify(
        sub.id,
        api_key=KEY,
        items=[{"id": sub["items"].data[0].id, "quantity": 2}],
        proration_behavior="always_invoice",
    )
    invoice = stripe.Invoice.create(api_key=KEY, customer=customer.id)
    stripe.InvoiceItem.create(
        api_key=KEY, customer=customer.id, invoice=invoice.id, amount=900, currency="usd"
    )
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    stripe.Invoice.void_invoice(invoice.id, api_key=KEY)
    stripe.Subscription.cancel(sub.id, api_key=KEY)
    stripe.PaymentMethod.detach(seti.payment_method, api_key=KEY)
    stripe.Customer.delete(customer.id, api_key=KEY)
    delivered = emu.deliver_webhooks()
    failures = [(d["type"], d["status"], d["error"]) for d in delivered if d["status"] != 200]
    assert failures == []
    assert len(delivered) == len(emu.events()) - events_before > 30
    processed = djstripe_models.WebhookEventTrigger.objects.filter(valid=True, processed=True).count()
    assert processed == len(delivered)


def test_djstripe_customer_helpers(emu, monthly_price):
    """The dj-stripe calls the product builds on: add a card, subscribe, add an invoice item."""
    org = OrganizationFactory()
    customer, _ = djstripe_models.Customer.get_or_create(subscriber=org)
    pm = stripe.PaymentMethod.create(api_key=KEY, type="card", card={"token": "tok_visa"})
    customer.add_payment_method(pm.id, set_default=True)
    remote = stripe.Customer.retrieve(customer.id, api_key=KEY)
    assert remote.invoice_settings.default_payment_method == pm.id
    subscription = customer.subscribe(price=monthly_price.id)
    assert subscription.stripe_data["status"] == "active"
    remote_sub = stripe.Subscription.retrieve(subscription.id, api_key=KEY)
    assert remote_sub["items"].data[0].price.id == monthly_price.id
    item = customer.add_invoice_item(amount=Decimal("12.00"), currency="usd", description="Overage")
    assert stripe.InvoiceItem.retrieve(item.id, api_key=KEY).amount == 1200


def test_djstripe_accepts_the_part_two_events(emu, monthly_price):
    """Test clocks, Checkout, the portal, meters and disputes: dj-stripe answers 200 to every
    delivery and mirrors the Checkout Session and the dispute (it re-fetches both)."""
    djstripe_endpoint(emu)
    emu.set_webhook_transport(django_client_transport(Client()))
    events_before = len(emu.events())
    clock = stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=1_900_000_000)
    org = OrganizationFactory()
    customer, _ = djstripe_models.Customer.get_or_create(subscriber=org)
    clocked = stripe.Customer.create(api_key=KEY, email="clock@example.com", test_clock=clock.id)
    one_time = stripe.Price.create(
        api_key=KEY, currency="usd", unit_amount=2000, product_data={"name": "Pack"}
    )
    paid = stripe.checkout.Session.create(
        api_key=KEY,
        mode="payment",
        customer=customer.id,
        line_items=[{"price": one_time.id, "quantity": 1}],
        success_url="https://example.com/ok",
        payment_intent_data={"metadata": {"credits": "100"}},
    )
    assert emu.checkout_submit(paid.id, "success")["status"] == "complete"
    subscribed = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        customer=clocked.id,
        line_items=[{"price": monthly_price.id, "quantity": 1}],
        success_url="https://example.com/ok",
        subscription_data={"trial_period_days": 7},
    )
    assert emu.checkout_submit(subscribed.id, "success")["status"] == "complete"
    stripe.checkout.Session.expire(
        stripe.checkout.Session.create(
            api_key=KEY,
            mode="payment",
            line_items=[{"price": one_time.id, "quantity": 1}],
            success_url="https://example.com/ok",
        ).id,
        api_key=KEY,
    )
    by_bank = stripe.checkout.Session.create(
        api_key=KEY,
        mode="payment",
        customer=customer.id,
        line_items=[{"price": one_time.id, "quantity": 1}],
        success_url="https://example.com/ok",
    )
    assert emu.checkout_submit(by_bank.id, "bank_success")["status"] == "complete"
    emu.advance(seconds=61, test_clocks=False)  # the debit settles: async_payment_succeeded
    stripe.billing_portal.Session.create(api_key=KEY, customer=customer.id)
    meter = stripe.billing.Meter.create(
        api_key=KEY, display_name="Calls", event_name="calls", default_aggregation={"formula": "count"}
    )
    stripe.billing.Meter.deactivate(meter.id, api_key=KEY)
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=1_900_000_000 + 10 * 86400)
    charge_id = stripe.PaymentIntent.retrieve(
        stripe.checkout.Session.retrieve(paid.id, api_key=KEY).payment_intent, api_key=KEY
    ).latest_charge
    dispute = emu.create_dispute(charge_id)
    stripe.Dispute.modify(dispute["id"], api_key=KEY, evidence={"uncategorized_text": "winning_evidence"})
    delivered = emu.deliver_webhooks()
    failures = [(d["type"], d["status"], d["error"]) for d in delivered if d["status"] != 200]
    assert failures == []
    assert len(delivered) == len(emu.events()) - events_before
    types = {d["type"] for d in delivered}
    assert {
        "test_helpers.test_clock.ready",
        "checkout.session.completed",
        "checkout.session.expired",
        "billing_portal.session.created",
        "billing.meter.created",
        "customer.subscription.trial_will_end",
        "charge.dispute.created",
        "charge.dispute.closed",
        "charge.pending",
        "payment_intent.processing",
        "checkout.session.async_payment_succeeded",
    } <= types
    session = djstripe_models.Session.objects.get(id=paid.id)
    assert session.stripe_data["status"] == "complete"
    assert session.payment_intent.stripe_data["metadata"] == {"credits": "100"}
    assert djstripe_models.Dispute.objects.get(id=dispute["id"]).stripe_data["status"] == "won"
    assert djstripe_models.Session.objects.get(id=by_bank.id).stripe_data["payment_status"] == "paid"
    processed = djstripe_models.WebhookEventTrigger.objects.filter(valid=True, processed=True).count()
    assert processed == len(delivered)
