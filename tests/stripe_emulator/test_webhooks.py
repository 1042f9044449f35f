"""Events, webhook endpoints and signed delivery with retries (in-process transport)."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator import Emulator, verify_signature

from .conftest import KEY


class Receiver:
    """A webhook transport that records deliveries and answers the statuses it is given."""

    def __init__(self, *statuses: int):
        self.statuses = list(statuses)
        self.received: list[tuple[str, dict, bytes]] = []

    def __call__(self, url: str, headers: dict, body: bytes) -> int:
        self.received.append((url, headers, body))
        return self.statuses.pop(0) if self.statuses else 200

    def types(self) -> list[str]:
        return [json.loads(body)["type"] for _, _, body in self.received]


def test_events_list_and_retrieve(emu, client):
    cust = stripe.Customer.create(api_key=KEY, email="e@example.com")
    stripe.Customer.modify(cust.id, api_key=KEY, name="E")
    events = stripe.Event.list(api_key=KEY)
    assert [e.type for e in events.data] == ["customer.updated", "customer.created"]
    created = client.v1.events.retrieve(events.data[1].id)
    assert created.data.object.id == cust.id and created.api_version == "2026-08-26.dahlia"
    assert created["request"]["id"].startswith("req_")
    assert [e.type for e in stripe.Event.list(api_key=KEY, type="customer.created").data] == [
        "customer.created"
    ]
    assert len(stripe.Event.list(api_key=KEY, type="customer.*").data) == 2
    assert len(stripe.Event.list(api_key=KEY, types=["customer.updated"]).data) == 1
    assert stripe.Event.list(api_key=KEY, limit=1).has_more is True


def test_webhook_endpoint_crud(emu, client):
    created = client.v1.webhook_endpoints.create(
        {"url": "https://example.com/hooks", "enabled_events": ["invoice.paid"], "description": "prod"}
    )
    assert (
        created.id.startswith("we_") and created.secret.startswith("whsec_") and created.status == "enabled"
    )
    updated = client.v1.webhook_endpoints.update(created.id, {"enabled_events": ["*"], "disabled": True})
    assert (updated.enabled_events, updated.status) == (["*"], "disabled")
    assert [e.id for e in stripe.WebhookEndpoint.list(api_key=KEY).data] == [created.id]
    assert stripe.WebhookEndpoint.delete(created.id, api_key=KEY).deleted is True
    with pytest.raises(stripe.InvalidRequestError):
        stripe.WebhookEndpoint.retrieve(created.id, api_key=KEY)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.WebhookEndpoint.create(api_key=KEY, url="https://example.com/x")
    assert caught.value.param == "enabled_events"


def test_deliveries_are_signed_and_filtered_by_enabled_events(emu):
    receiver = Receiver()
    emu.set_webhook_transport(receiver)
    everything = emu.create_webhook_endpoint("https://a.example.com/hook")
    only_paid = emu.create_webhook_endpoint("https://b.example.com/hook", enabled_events=["customer.updated"])
    cust = stripe.Customer.create(api_key=KEY)
    stripe.Customer.modify(cust.id, api_key=KEY, name="N")
    delivered = emu.deliver_webhooks()
    assert [(d["type"], d["status"]) for d in delivered] == [
        ("customer.created", 200),
        ("customer.updated", 200),
        ("customer.updated", 200),
    ]
    secrets = {everything["url"]: everything["secret"], only_paid["url"]: only_paid["secret"]}
    for url, headers, body in receiver.received:
        event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], secrets[url])
        assert event.data.object.id == cust.id
        assert verify_signature(body, headers["Stripe-Signature"], secrets[url])
        assert not verify_signature(body, headers["Stripe-Signature"], "whsec_wrong")
    assert emu.deliver_webhooks() == []
    assert all(e["pending_webhooks"] == 0 for e in emu.events())


def test_failed_delivery_is_retried_with_backoff_on_the_emulator_clock(emu):
    emu.clock.freeze()
    receiver = Receiver(500, 503)
    emu.set_webhook_transport(receiver)
    emu.create_webhook_endpoint("https://example.com/hook")
    stripe.Customer.create(api_key=KEY)
    assert [d["status"] for d in emu.deliver_webhooks()] == [500]
    assert emu.deliver_webhooks() == []  # not due yet
    emu.clock.advance(59)
    assert emu.deliver_webhooks() == []
    emu.clock.advance(1)
    assert [(d["status"], d["attempt"]) for d in emu.deliver_webhooks()] == [(503, 2)]
    emu.clock.advance(60)
    assert emu.deliver_webhooks() == []  # the second retry waits twice as long
    emu.clock.advance(60)
    assert [(d["status"], d["attempt"], d["delivered"]) for d in emu.deliver_webhooks()] == [(200, 3, True)]
    assert len(receiver.received) == 3
    assert len({json.loads(body)["id"] for _, _, body in receiver.received}) == 1


def test_retry_now_and_an_unreachable_receiver(emu):
    def unreachable(url, headers, body):
        raise ConnectionError("connection refused")

    emu.set_webhook_transport(unreachable)
    emu.create_webhook_endpoint("https://example.com/hook")
    stripe.Customer.create(api_key=KEY)
    first = emu.deliver_webhooks()
    assert first[0]["status"] is None and "connection refused" in first[0]["error"]
    emu.set_webhook_transport(Receiver())
    assert [d["delivered"] for d in emu.deliver_webhooks(retry_now=True)] == [True]


def test_auto_mode_delivers_after_each_request():
    receiver = Receiver()
    from stripe_emulator.testing import installed_emulator

    with installed_emulator(Emulator(auto_deliver=True, webhook_transport=receiver)) as emu:
        emu.create_webhook_endpoint("https://example.com/hook")
        stripe.Customer.create(api_key=KEY)
        assert receiver.types() == ["customer.created"]


def test_every_required_event_type_is_emitted(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY, email="all@example.com")
    stripe.Customer.modify(cust.id, api_key=KEY, name="All")
    seti = stripe.SetupIntent.create(
        api_key=KEY, customer=cust.id, payment_method="pm_card_visa", confirm=True
    )
    stripe.Customer.modify(
        cust.id, api_key=KEY, invoice_settings={"default_payment_method": seti.payment_method}
    )
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        customer=cust.id,
        payment_method=seti.payment_method,
        confirm=True,
    )
    stripe.Refund.create(api_key=KEY, payment_intent=pi.id)
    with pytest.raises(stripe.CardError):
        stripe.PaymentIntent.create(
            api_key=KEY, amount=1000, currency="usd", payment_method="pm_card_chargeDeclined", confirm=True
        )
    stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        payment_method="pm_card_authenticationRequired",
        confirm=True,
    )
    sub = stripe.Subscription.create(api_key=KEY, customer=cust.id, items=[{"price": monthly_price.id}])
    stripe.Subscription.modify(sub.id, api_key=KEY, metadata={"k": "v"})
    bad = stripe.Customer.create(api_key=KEY, payment_method="pm_card_chargeCustomerFail")
    bad_pm = stripe.PaymentMethod.list(api_key=KEY, customer=bad.id).data[0]
    invoice = stripe.Invoice.create(api_key=KEY, customer=bad.id, default_payment_method=bad_pm.id)
    stripe.InvoiceItem.create(api_key=KEY, customer=bad.id, invoice=invoice.id, amount=900, currency="usd")
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    with pytest.raises(stripe.CardError):
        stripe.Invoice.pay(invoice.id, api_key=KEY)
    stripe.Invoice.void_invoice(invoice.id, api_key=KEY)
    stripe.PaymentMethod.detach(bad_pm.id, api_key=KEY)
    stripe.Subscription.cancel(sub.id, api_key=KEY)
    stripe.Customer.delete(bad.id, api_key=KEY)
    emitted = set(emu.event_types())
    required = {
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "payment_method.attached",
        "payment_method.detached",
        "setup_intent.succeeded",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_failed",
        "invoice.voided",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
    }
    assert required - emitted == set()
