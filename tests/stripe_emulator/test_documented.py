"""Behaviours Stripe documents, through the real stripe-python: renewal drafts, the customer credit
balance, pending invoice items on a first invoice, `create_preview` with nothing to invoice,
partial capture, the test cards under all their documented ids, and the test clock advance limit."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from stripe_emulator.payments import TEST_CARDS, TEST_NUMBERS

from .conftest import KEY

START = int(datetime(2031, 1, 15, 12, 0, tzinfo=UTC).timestamp())
RENEWAL = int(datetime(2031, 2, 15, 12, 0, tzinfo=UTC).timestamp())
HOUR = 3600


@pytest.fixture
def clock(emu) -> stripe.test_helpers.TestClock:
    return stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=START)


def _subscribed(clock, price, **customer):
    cust = stripe.Customer.create(
        api_key=KEY,
        test_clock=clock.id,
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
        **customer,
    )
    return cust, stripe.Subscription.create(api_key=KEY, customer=cust.id, items=[{"price": price.id}])


def test_a_renewal_invoice_stays_a_draft_for_an_hour_then_is_finalized_and_charged(emu, clock, monthly_price):
    _, sub = _subscribed(clock, monthly_price)
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=RENEWAL + 30 * 60)
    renewed = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    draft = stripe.Invoice.retrieve(renewed.latest_invoice, api_key=KEY)
    assert (draft.status, draft.billing_reason, draft.automatically_finalizes_at) == (
        "draft",
        "subscription_cycle",
        RENEWAL + HOUR,
    )
    assert len(emu.objects("charge")) == 1
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=RENEWAL + 2 * HOUR)
    paid = stripe.Invoice.retrieve(draft.id, api_key=KEY)
    assert (paid.status, paid.amount_paid, paid.status_transitions.finalized_at) == (
        "paid",
        3000,
        RENEWAL + HOUR,
    )
    order = [e["type"] for e in emu.events() if e["data"]["object"].get("id") == draft.id]
    assert order[:3] == ["invoice.created", "invoice.finalized", "invoice.paid"] or (
        order.index("invoice.created") < order.index("invoice.finalized") < order.index("invoice.paid")
    )
    assert len(emu.objects("charge")) == 2


def test_the_credit_balance_pays_first_and_a_covered_first_invoice_needs_no_card(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY, balance=-5000)  # $50 of credit, no payment method
    sub = stripe.Subscription.create(api_key=KEY, customer=cust.id, items=[{"price": monthly_price.id}])
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    assert (sub.status, invoice.status, invoice.amount_due, invoice.total) == ("active", "paid", 0, 3000)
    assert (invoice.starting_balance, invoice.ending_balance) == (-5000, -2000)
    assert stripe.Customer.retrieve(cust.id, api_key=KEY).balance == -2000
    assert emu.objects("charge") == []
    poor = stripe.Customer.create(api_key=KEY, balance=-1000)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Subscription.create(api_key=KEY, customer=poor.id, items=[{"price": monthly_price.id}])
    assert "no attached payment source" in caught.value.user_message


def test_pending_invoice_items_go_onto_a_new_subscriptions_first_invoice(emu, customer, monthly_price):
    item = stripe.InvoiceItem.create(
        api_key=KEY, customer=customer.id, amount=700, currency="usd", description="Setup"
    )
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    assert (invoice.total, invoice.amount_paid) == (3700, 3700)
    assert sorted(line.amount for line in invoice.lines.data) == [700, 3000]
    assert stripe.InvoiceItem.retrieve(item.id, api_key=KEY).invoice == invoice.id


def test_create_preview_with_nothing_to_invoice_is_404_invoice_upcoming_none(emu, customer):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Invoice.create_preview(api_key=KEY, customer=customer.id)
    assert (caught.value.http_status, caught.value.code) == (404, "invoice_upcoming_none")


def test_a_partial_capture_keeps_the_amount_and_sets_amount_captured(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=5000,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        capture_method="manual",
        confirm=True,
    )
    assert pi.status == "requires_capture"
    captured = stripe.PaymentIntent.capture(pi.id, api_key=KEY, amount_to_capture=3000)
    assert (captured.status, captured.amount, captured.amount_received) == ("succeeded", 5000, 3000)
    charge = stripe.Charge.retrieve(captured.latest_charge, api_key=KEY, expand=["balance_transaction"])
    assert (charge.amount, charge.amount_captured, charge.amount_refunded, charge.captured) == (
        5000,
        3000,
        2000,
        True,
    )
    assert charge.balance_transaction.amount == 3000


DOCUMENTED_DECLINES = {
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_visa_chargeDeclinedLostCard": "lost_card",
    "pm_card_visa_chargeDeclinedStolenCard": "stolen_card",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
    "pm_card_chargeDeclinedIncorrectCvc": "incorrect_cvc",
    "pm_card_chargeDeclinedProcessingError": "processing_error",
    "pm_card_visa_chargeDeclinedVelocityLimitExceeded": "card_velocity_exceeded",
    "pm_card_radarBlock": "fraudulent",
}


@pytest.mark.parametrize(("test_id", "decline_code"), sorted(DOCUMENTED_DECLINES.items()))
def test_the_documented_declining_test_cards_decline(emu, test_id, decline_code):
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentIntent.create(
            api_key=KEY, amount=1000, currency="usd", payment_method=test_id, confirm=True
        )
    # Stripe names expired cards, wrong CVCs and processing errors in `code`, other declines in `decline_code`
    assert decline_code in (caught.value.error.decline_code, caught.value.code)


@pytest.mark.parametrize(
    "test_id",
    [
        "pm_card_visa",
        "pm_card_visa_debit",
        "pm_card_mastercard",
        "pm_card_mastercard_debit",
        "pm_card_mastercard_prepaid",
        "pm_card_amex",
        "pm_card_discover",
        "pm_card_diners",
        "pm_card_jcb",
        "pm_card_unionpay",
    ],
)
def test_the_documented_brand_test_cards_pay(emu, test_id):
    pi = stripe.PaymentIntent.create(
        api_key=KEY, amount=1000, currency="usd", payment_method=test_id, confirm=True
    )
    assert pi.status == "succeeded"
    card = stripe.PaymentMethod.retrieve(pi.payment_method, api_key=KEY).card
    assert card.last4 == TEST_CARDS[test_id].last4


def test_every_test_number_has_its_test_id():
    assert set(TEST_NUMBERS.values()) <= set(TEST_CARDS)


@pytest.mark.parametrize("test_id", ["pm_card_threeDSecure2Required", "pm_card_threeDSecureRequired"])
def test_the_3ds_test_cards_require_authentication(emu, test_id):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        payment_method=test_id,
        confirm=True,
        return_url="https://x.test/r",
    )
    assert pi.status == "requires_action"


def test_a_test_clock_moves_at_most_two_intervals_at_a_time(emu, clock, monthly_price):
    _subscribed(clock, monthly_price)
    too_far = int(datetime(2031, 3, 15, 12, 0, 1, tzinfo=UTC).timestamp())
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=too_far)
    assert caught.value.param == "frozen_time"
    assert stripe.test_helpers.TestClock.retrieve(clock.id, api_key=KEY).frozen_time == START
    limit = int(datetime(2031, 3, 15, 12, 0, tzinfo=UTC).timestamp())
    assert stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=limit).id == clock.id
