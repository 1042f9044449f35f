"""Balance transactions, the balance and the automatic daily payouts, refunds (real stripe-python)."""

from __future__ import annotations

from datetime import UTC, datetime

import stripe

from .conftest import KEY

DAY = 86400
FEE = lambda amount: round(amount * 0.029) + 30  # noqa: E731  (Stripe's standard card fee)


def _pay(customer, amount: int) -> stripe.PaymentIntent:
    return stripe.PaymentIntent.create(
        api_key=KEY,
        amount=amount,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
        off_session=True,
    )


def test_a_charge_has_a_balance_transaction_with_stripes_fee(emu, customer):
    pi = _pay(customer, 10000)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY, expand=["balance_transaction"])
    txn = charge.balance_transaction
    assert (txn.type, txn.amount, txn.fee, txn.net, txn.status) == ("charge", 10000, 320, 9680, "pending")
    assert txn.available_on == txn.created + 2 * DAY
    balance = stripe.Balance.retrieve(api_key=KEY)
    assert balance.pending[0].amount == 9680 and balance.available[0].amount == 0


def test_the_available_balance_is_paid_out_daily_with_events(emu, customer):
    emu.clock.freeze()
    pi = _pay(customer, 10000)
    refund = stripe.Refund.create(api_key=KEY, payment_intent=pi.id, amount=2500)
    txns = stripe.BalanceTransaction.list(api_key=KEY).data
    assert sorted((t.type, t.net) for t in txns) == [("charge", 9680), ("refund", -2500)]
    assert stripe.Payout.list(api_key=KEY).data == []
    emu.advance(days=4)  # available two days later, paid out at the next midnight, arrives a day after
    payouts = stripe.Payout.list(api_key=KEY).data
    assert len(payouts) == 1
    payout = payouts[0]
    assert (payout.amount, payout.currency, payout.automatic) == (9680 - 2500, "usd", True)
    assert payout.created % DAY == 0  # at midnight UTC
    assert payout.created >= max(t.available_on for t in txns)
    assert payout.status == "paid" and payout.arrival_date == payout.created + DAY
    assert emu.event_types().count("payout.created") == 1 and emu.event_types().count("payout.paid") == 1
    paid_out = stripe.BalanceTransaction.list(api_key=KEY, payout=payout.id).data
    assert sorted(t.source for t in paid_out) == sorted([pi.latest_charge, refund.id, payout.id])
    own = stripe.BalanceTransaction.retrieve(payout.balance_transaction, api_key=KEY)
    assert (own.type, own.amount, own.net) == ("payout", -7180, -7180)
    balance = stripe.Balance.retrieve(api_key=KEY)
    assert (balance.available[0].amount, balance.pending[0].amount) == (0, 0)
    emu.advance(days=5)
    assert len(stripe.Payout.list(api_key=KEY).data) == 1  # nothing new to pay out


def test_a_test_clock_pays_out_its_customers_money_on_its_own_time(emu):
    start = int(datetime(2031, 1, 15, 12, tzinfo=UTC).timestamp())
    clock = stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=start)
    cust = stripe.Customer.create(
        api_key=KEY,
        test_clock=clock.id,
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
    )
    _pay(cust, 5000)
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=start + 4 * DAY)
    (payout,) = stripe.Payout.list(api_key=KEY).data
    assert payout.amount == 5000 - FEE(5000)
    assert payout.created == int(datetime(2031, 1, 18, tzinfo=UTC).timestamp())  # the clock's midnight
    assert payout.status == "paid"
    created = next(e for e in emu.events("payout.created"))
    assert created["created"] == payout.created


def test_partial_refunds_through_the_api_with_their_events(emu, customer):
    pi = _pay(customer, 3000)
    first = stripe.Refund.create(
        api_key=KEY, payment_intent=pi.id, amount=1000, reason="requested_by_customer"
    )
    second = stripe.Refund.create(api_key=KEY, charge=pi.latest_charge, amount=500)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.amount_refunded, charge.refunded) == (1500, False)
    assert [r.id for r in stripe.Refund.list(api_key=KEY, payment_intent=pi.id).data] == [second.id, first.id]
    refunded = emu.events("charge.refunded")
    assert [e["data"]["object"]["amount_refunded"] for e in refunded] == [1000, 1500]
    assert [e["data"]["object"]["id"] for e in emu.events("refund.created")] == [first.id, second.id]
    try:
        stripe.Refund.create(api_key=KEY, payment_intent=pi.id, amount=1600)
    except stripe.InvalidRequestError as error:
        assert error.code == "amount_too_large"
    else:
        raise AssertionError("a refund over the unrefunded amount was accepted")
    last = stripe.Refund.create(api_key=KEY, payment_intent=pi.id)
    assert last.amount == 1500 and stripe.Charge.retrieve(pi.latest_charge, api_key=KEY).refunded is True


def test_a_partially_captured_charge_can_be_refunded_up_to_the_captured_amount(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=5000,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        capture_method="manual",
        confirm=True,
    )
    stripe.PaymentIntent.capture(pi.id, api_key=KEY, amount_to_capture=3000)
    refund = stripe.Refund.create(api_key=KEY, payment_intent=pi.id)
    assert refund.amount == 3000
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
