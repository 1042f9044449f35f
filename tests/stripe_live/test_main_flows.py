"""The product's main Stripe flows, run twice: against the emulator in every run, and against real
Stripe in test mode when `STRIPE_LIVE_SECRET_KEY` is set (the `stripe_live` cases; without the key
`tests/conftest.py` deselects them, so a normal run shows no skips). The two runs make the same
calls with the same parameters the product sends and check the same outcomes, so a difference
between the emulator and Stripe shows up as one failing case.

    STRIPE_LIVE_SECRET_KEY=sk_test_... make test ARGS="tests/stripe_live -m stripe_live"
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass

import pytest
import stripe

from stripe_emulator import Emulator

EMULATOR_KEY = "sk_test_emulator000000000000000000000000"
DAY = 86400


@dataclass
class Backend:
    name: str
    key: str
    emulator: Emulator | None

    def wait_ready(self, clock_id: str) -> stripe.test_helpers.TestClock:
        """A test clock advances asynchronously at Stripe (at once in the emulator)."""
        deadline = time.monotonic() + 120
        while True:
            clock = stripe.test_helpers.TestClock.retrieve(clock_id, api_key=self.key)
            if clock.status == "ready" or time.monotonic() > deadline:
                return clock
            time.sleep(2)


@pytest.fixture(
    params=[
        pytest.param("emulator", id="emulator"),
        pytest.param("live", id="live", marks=pytest.mark.stripe_live),
    ]
)
def backend(request, stripe_emulator) -> Backend:
    if request.param == "emulator":
        yield Backend("emulator", EMULATOR_KEY, stripe_emulator)
        return
    saved = stripe.default_http_client, stripe.api_base
    stripe.default_http_client, stripe.api_base = None, stripe.DEFAULT_API_BASE
    try:
        yield Backend("live", os.environ["STRIPE_LIVE_SECRET_KEY"], None)
    finally:
        stripe.default_http_client, stripe.api_base = saved


def _price(backend: Backend, **recurring) -> stripe.Price:
    product = stripe.Product.create(api_key=backend.key, name=f"Professional {uuid.uuid4().hex[:6]}")
    return stripe.Price.create(
        api_key=backend.key,
        product=product.id,
        currency="usd",
        unit_amount=3000,
        recurring={"interval": "month", **recurring},
    )


def _customer(backend: Backend, **fields) -> stripe.Customer:
    return stripe.Customer.create(
        api_key=backend.key,
        email="flows@example.com",
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
        metadata={"organization": "flows"},
        **fields,
    )


def test_customer_and_card_and_a_detached_card_is_gone_for_good(backend):
    customer = _customer(backend)
    cards = stripe.PaymentMethod.list(api_key=backend.key, customer=customer.id, type="card").data
    assert [c.card.last4 for c in cards] == ["4242"]
    stripe.PaymentMethod.detach(cards[0].id, api_key=backend.key)
    other = stripe.Customer.create(api_key=backend.key, email="other@example.com")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentMethod.attach(cards[0].id, api_key=backend.key, customer=other.id)
    assert caught.value.http_status == 400


def test_subscription_with_a_trial_renews_on_a_test_clock(backend):
    start = int(time.time())
    clock = stripe.test_helpers.TestClock.create(api_key=backend.key, frozen_time=start)
    try:
        customer = _customer(backend, test_clock=clock.id)
        price = _price(backend)
        sub = stripe.Subscription.create(
            api_key=backend.key,
            customer=customer.id,
            items=[{"price": price.id}],
            trial_period_days=7,
            metadata={"organization": "flows"},
        )
        assert sub.status == "trialing"
        stripe.test_helpers.TestClock.advance(
            clock.id, api_key=backend.key, frozen_time=sub.trial_end + 2 * 3600
        )
        assert backend.wait_ready(clock.id).status == "ready"
        renewed = stripe.Subscription.retrieve(sub.id, api_key=backend.key)
        invoice = stripe.Invoice.retrieve(renewed.latest_invoice, api_key=backend.key)
        assert renewed.status == "active"
        assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
            "paid",
            3000,
            "subscription_cycle",
        )
        assert invoice.parent.subscription_details.subscription == sub.id
    finally:
        stripe.test_helpers.TestClock.delete(clock.id, api_key=backend.key)


def test_checkout_and_portal_sessions(backend):
    customer = _customer(backend)
    price = _price(backend)
    session = stripe.checkout.Session.create(
        api_key=backend.key,
        mode="subscription",
        customer=customer.id,
        line_items=[{"price": price.id, "quantity": 1}],
        subscription_data={"trial_period_days": 7, "metadata": {"organization": "flows"}},
        success_url="https://example.com/billing?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://example.com/billing",
    )
    assert (session.status, session.mode) == ("open", "subscription") and session.url.startswith("http")
    configuration = stripe.billing_portal.Configuration.create(
        api_key=backend.key,
        features={"payment_method_update": {"enabled": True}, "invoice_history": {"enabled": True}},
    )
    portal = stripe.billing_portal.Session.create(
        api_key=backend.key,
        customer=customer.id,
        return_url="https://example.com/billing",
        configuration=configuration.id,
    )
    assert portal.url.startswith("http") and portal.customer == customer.id


def test_credit_pack_purchase_and_partial_refund(backend):
    customer = _customer(backend)
    pi = stripe.PaymentIntent.create(
        api_key=backend.key,
        amount=2500,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        off_session=True,
        confirm=True,
        description="Credit pack",
        metadata={"organization": "flows", "pack": "starter"},
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 2500)
    refund = stripe.Refund.create(api_key=backend.key, payment_intent=pi.id, amount=1000)
    assert (refund.status, refund.amount) == ("succeeded", 1000)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=backend.key)
    assert (charge.amount_refunded, charge.refunded) == (1000, False)


def test_meter_events(backend):
    customer = _customer(backend)
    event_name = f"api_requests_{uuid.uuid4().hex[:8]}"
    meter = stripe.billing.Meter.create(
        api_key=backend.key,
        display_name="API requests",
        event_name=event_name,
        default_aggregation={"formula": "sum"},
        customer_mapping={"event_payload_key": "stripe_customer_id", "type": "by_id"},
        value_settings={"event_payload_key": "value"},
    )
    try:
        event = stripe.billing.MeterEvent.create(
            api_key=backend.key,
            event_name=event_name,
            payload={"stripe_customer_id": customer.id, "value": "12"},
            identifier=f"usage-{uuid.uuid4().hex}",
        )
        assert event.event_name == event_name and event.payload["value"] == "12"
    finally:
        stripe.billing.Meter.deactivate(meter.id, api_key=backend.key)
