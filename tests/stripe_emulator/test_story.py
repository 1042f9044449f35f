"""One whole story, end to end, as the product lives it: a customer subscribes through hosted
Checkout, a test clock runs three monthly renewals (one declined, then recovered by the dunning
retry), the customer cancels in the portal, and every webhook arrives signed."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

import stripe

from .conftest import KEY

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DAY = 86400
HOUR = 3600  # a renewal invoice is finalized and charged an hour after the period ends


def ts(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, 9, 0, tzinfo=UTC).timestamp())


class SignedReceiver:
    """Verifies every delivery as a receiver does (stripe-python, 300 s tolerance) and keeps the events."""

    def __init__(self, secret: str):
        self.secret = secret
        self.events: list[stripe.Event] = []

    def __call__(self, url: str, headers: dict, body: bytes) -> int:
        event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], self.secret)
        self.events.append(event)
        return 200

    def types(self) -> list[str]:
        return [e.type for e in self.events]


def test_checkout_three_renewals_a_failed_payment_and_a_portal_cancellation(emu, monthly_price):
    endpoint = stripe.WebhookEndpoint.create(
        api_key=KEY, url="https://app.example.com/stripe/webhook/", enabled_events=["*"]
    )
    receiver = SignedReceiver(endpoint.secret)
    before = {e["id"] for e in emu.events()}  # the price fixture's, from before the endpoint
    emu.set_webhook_transport(receiver)
    clock = stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=ts(2032, 1, 10), name="story")
    customer = stripe.Customer.create(
        api_key=KEY, email="owner@acme.example", name="Acme", test_clock=clock.id
    )

    # 1. Checkout, on the hosted page, with a card that pays.
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        customer=customer.id,
        client_reference_id="org-acme",
        line_items=[{"price": monthly_price.id, "quantity": 1}],
        success_url="https://app.example.com/billing?checkout={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example.com/plans",
        subscription_data={"metadata": {"organization_id": "org-acme"}},
    )
    status, headers, _ = emu.handle("POST", urlsplit(session.url).path, FORM, urlencode({"card": "success"}))
    assert status == 303 and headers["Location"].endswith(session.id)
    sub_id = stripe.checkout.Session.retrieve(session.id, api_key=KEY).subscription
    sub = stripe.Subscription.retrieve(sub_id, api_key=KEY)
    assert sub.status == "active" and sub.test_clock == clock.id
    emu.deliver_webhooks()
    assert "checkout.session.completed" in receiver.types()

    def advance(to: int) -> None:
        stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=to)
        emu.deliver_webhooks()

    # 2. First renewal: paid.
    advance(ts(2032, 2, 11))
    assert stripe.Subscription.retrieve(sub_id, api_key=KEY).status == "active"

    # 3. Second renewal: the bank declines it once; the subscription goes past due.
    emu.faults.add(decline="insufficient_funds", times=1)
    advance(ts(2032, 3, 11))
    past_due = stripe.Subscription.retrieve(sub_id, api_key=KEY)
    assert past_due.status == "past_due"
    failed_invoice = stripe.Invoice.retrieve(past_due.latest_invoice, api_key=KEY)
    assert (
        failed_invoice.status == "open"
        and failed_invoice.next_payment_attempt == ts(2032, 3, 10) + HOUR + 3 * DAY
    )

    # 4. The dunning retry three days later succeeds: recovered.
    advance(ts(2032, 3, 14))
    assert stripe.Subscription.retrieve(sub_id, api_key=KEY).status == "active"
    assert stripe.Invoice.retrieve(failed_invoice.id, api_key=KEY).status == "paid"

    # 5. Third renewal: paid.
    advance(ts(2032, 4, 11))
    renewed = stripe.Subscription.retrieve(sub_id, api_key=KEY)
    assert renewed.status == "active"
    period_end = renewed["items"].data[0].current_period_end

    # 6. The customer cancels in the portal, at the end of the period; the clock gets there.
    portal = stripe.billing_portal.Session.create(
        api_key=KEY, customer=customer.id, return_url="https://app.example.com/billing"
    )
    status, headers, _ = emu.handle(
        "POST",
        urlsplit(portal.url).path,
        FORM,
        urlencode({"action": "cancel_at_period_end", "subscription": sub_id}),
    )
    assert status == 303
    _, _, page = emu.handle("GET", headers["Location"])
    assert "https://app.example.com/billing" in page.decode()
    advance(period_end + DAY)
    ended = stripe.Subscription.retrieve(sub_id, api_key=KEY)
    assert (ended.status, ended.ended_at) == ("canceled", period_end)

    # Every event was delivered once, signed, in the order it happened.
    emu.deliver_webhooks()
    assert sorted(e.id for e in receiver.events) == sorted(
        e["id"] for e in emu.events() if e["id"] not in before
    )
    assert all(d.status == "delivered" and d.attempts == 1 for d in emu.webhooks.deliveries)
    types = receiver.types()
    story = [
        "checkout.session.completed",
        "invoice.paid",  # first renewal
        "invoice.payment_failed",  # second renewal, declined
        "customer.subscription.updated",  # past_due
        "invoice.paid",  # the retry
        "customer.subscription.updated",  # active again
        "invoice.paid",  # third renewal
        "customer.subscription.updated",  # cancel_at_period_end from the portal
        "customer.subscription.deleted",
    ]
    position = 0
    for expected in story:
        position = types.index(expected, position) + 1
    assert types.count("invoice.paid") == 4  # the first invoice and three renewals
    assert types.count("invoice.payment_failed") == 1
    assert [e.data.object.status for e in receiver.events if e.type == "customer.subscription.deleted"] == [
        "canceled"
    ]
    renewal_paid = [
        e.created
        for e in receiver.events
        if e.type == "invoice.paid" and e.data.object.billing_reason == "subscription_cycle"
    ]
    assert renewal_paid == sorted(renewal_paid) and len(renewal_paid) == 3
    failed = next(e for e in receiver.events if e.type == "invoice.payment_failed")
    assert failed.data.object.id == failed_invoice.id and failed.data.object.attempt_count == 1
    assert set(types) >= {
        "test_helpers.test_clock.advancing",
        "test_helpers.test_clock.ready",
        "charge.failed",
    }
