"""PaymentIntents, SetupIntents, charges and refunds through stripe-python."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


def test_payment_intent_confirm_succeeds_with_a_charge(emu, customer, client):
    pi = client.v1.payment_intents.create(
        {"amount": 4200, "currency": "usd", "customer": customer.id, "metadata": {"pack": "p1"}}
    )
    assert pi.status == "requires_payment_method" and pi.client_secret.startswith(pi.id + "_secret_")
    pi = client.v1.payment_intents.confirm(
        pi.id, {"payment_method": customer.invoice_settings.default_payment_method}
    )
    assert (pi.status, pi.amount_received) == ("succeeded", 4200)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.status, charge.paid, charge.captured, charge.amount_captured) == (
        "succeeded",
        True,
        True,
        4200,
    )
    assert charge.payment_intent == pi.id and charge.metadata.pack == "p1"
    assert charge.payment_method_details.card.last4 == "4242"
    txn = stripe.BalanceTransaction.retrieve(charge.balance_transaction, api_key=KEY)
    assert (txn.amount, txn.fee, txn.net) == (4200, 152, 4048)
    assert emu.event_types()[-3:] == [
        "payment_intent.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]
    status, _, receipt = emu.handle("GET", charge.receipt_url, {}, None)
    assert status == 200 and b"$42.00" in receipt


def test_off_session_payment_with_a_saved_card(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        off_session=True,
        confirm=True,
    )
    assert pi.status == "succeeded"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentIntent.create(api_key=KEY, amount=1000, currency="usd", off_session=True)


@pytest.mark.parametrize(
    ("test_id", "code", "decline_code", "message"),
    [
        ("pm_card_chargeDeclined", "card_declined", "generic_decline", "Your card was declined."),
        (
            "pm_card_chargeDeclinedInsufficientFunds",
            "card_declined",
            "insufficient_funds",
            "Your card has insufficient funds.",
        ),
        ("pm_card_chargeCustomerFail", "card_declined", "generic_decline", "Your card was declined."),
        ("pm_card_chargeDeclinedExpiredCard", "expired_card", None, "Your card has expired."),
    ],
)
def test_declines_answer_402_with_their_codes(emu, test_id, code, decline_code, message):
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentIntent.create(
            api_key=KEY, amount=2000, currency="usd", payment_method=test_id, confirm=True
        )
    error = caught.value
    assert (error.http_status, error.code, error.error.decline_code, error.user_message) == (
        402,
        code,
        decline_code,
        message,
    )
    pi = stripe.PaymentIntent.retrieve(error.error.payment_intent.id, api_key=KEY)
    assert pi.status == "requires_payment_method"
    assert (pi.last_payment_error.code, pi.last_payment_error.decline_code) == (code, decline_code)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.status, charge.failure_code, charge.outcome.type) == ("failed", code, "issuer_declined")
    assert emu.event_types()[-2:] == ["charge.failed", "payment_intent.payment_failed"]


def test_customer_fail_card_attaches_then_declines_off_session(emu):
    cust = stripe.Customer.create(api_key=KEY, payment_method="pm_card_chargeCustomerFail")
    pm = stripe.PaymentMethod.list(api_key=KEY, customer=cust.id).data[0]
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentIntent.create(
            api_key=KEY,
            amount=900,
            currency="usd",
            customer=cust.id,
            payment_method=pm.id,
            off_session=True,
            confirm=True,
        )
    assert caught.value.error.decline_code == "generic_decline"


def test_authentication_required_on_session_then_completed(emu):
    cust = stripe.Customer.create(api_key=KEY)
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=3000,
        currency="usd",
        customer=cust.id,
        payment_method="pm_card_authenticationRequired",
        confirm=True,
        return_url="https://example.com/back",
    )
    assert pi.status == "requires_action"
    assert pi.next_action.type == "redirect_to_url"
    assert emu.event_types()[-1] == "payment_intent.requires_action"
    done = emu.complete_authentication(pi.id)
    assert done["status"] == "succeeded"
    assert stripe.PaymentIntent.retrieve(pi.id, api_key=KEY).status == "succeeded"


def test_authentication_page_can_fail_the_payment(emu):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=3000,
        currency="usd",
        payment_method="pm_card_authenticationRequired",
        confirm=True,
    )
    status, _, _ = emu.handle("POST", pi.next_action.redirect_to_url.url + "?result=fail", {}, None)
    assert status == 200
    failed = stripe.PaymentIntent.retrieve(pi.id, api_key=KEY)
    assert failed.status == "requires_payment_method"
    assert failed.last_payment_error.code == "payment_intent_authentication_failure"


def test_authentication_required_off_session_is_a_card_error(emu):
    cust = stripe.Customer.create(api_key=KEY, payment_method="pm_card_authenticationRequired")
    pm = stripe.PaymentMethod.list(api_key=KEY, customer=cust.id).data[0]
    with pytest.raises(stripe.CardError) as caught:
        stripe.PaymentIntent.create(
            api_key=KEY,
            amount=3000,
            currency="usd",
            customer=cust.id,
            payment_method=pm.id,
            confirm=True,
            off_session=True,
        )
    assert (caught.value.code, caught.value.error.decline_code) == (
        "authentication_required",
        "authentication_required",
    )


def test_cancel_and_the_states_that_refuse_it(emu, customer):
    pi = stripe.PaymentIntent.create(api_key=KEY, amount=1000, currency="usd", customer=customer.id)
    canceled = stripe.PaymentIntent.cancel(pi.id, api_key=KEY, cancellation_reason="requested_by_customer")
    assert (canceled.status, canceled.cancellation_reason) == ("canceled", "requested_by_customer")
    assert canceled.canceled_at is not None
    assert emu.event_types()[-1] == "payment_intent.canceled"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.cancel(pi.id, api_key=KEY)
    assert caught.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.PaymentIntent.confirm(pi.id, api_key=KEY, payment_method="pm_card_visa")


def test_manual_capture(emu, customer):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=5000,
        currency="usd",
        customer=customer.id,
        capture_method="manual",
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
    )
    assert (pi.status, pi.amount_capturable) == ("requires_capture", 5000)
    captured = stripe.PaymentIntent.capture(pi.id, api_key=KEY, amount_to_capture=4000)
    assert (captured.status, captured.amount_received) == ("succeeded", 4000)


def test_amount_validation(emu):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(api_key=KEY, amount=10, currency="usd")
    assert (caught.value.code, caught.value.param) == ("amount_too_small", "amount")
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.PaymentIntent.create(api_key=KEY, amount="ten", currency="usd")
    assert caught.value.code == "parameter_invalid_integer"


def test_list_payment_intents_and_charges_by_customer(emu, customer, client):
    other = stripe.Customer.create(api_key=KEY)
    mine = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1000,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
    )
    stripe.PaymentIntent.create(api_key=KEY, amount=1000, currency="usd", customer=other.id)
    assert [p.id for p in client.v1.payment_intents.list({"customer": customer.id}).data] == [mine.id]
    assert [c.id for c in stripe.Charge.list(api_key=KEY, customer=customer.id).data] == [mine.latest_charge]
    assert [c.id for c in stripe.Charge.list(api_key=KEY, payment_intent=mine.id).data] == [
        mine.latest_charge
    ]


def test_setup_intent_attaches_the_card(emu, client):
    cust = stripe.Customer.create(api_key=KEY)
    seti = client.v1.setup_intents.create({"customer": cust.id, "usage": "off_session"})
    assert seti.status == "requires_payment_method" and seti.client_secret.startswith(seti.id)
    seti = client.v1.setup_intents.confirm(seti.id, {"payment_method": "pm_card_visa"})
    assert seti.status == "succeeded"
    pm = stripe.PaymentMethod.retrieve(seti.payment_method, api_key=KEY)
    assert pm.customer == cust.id
    assert emu.event_types()[-2:] == ["payment_method.attached", "setup_intent.succeeded"]
    assert [s.id for s in stripe.SetupIntent.list(api_key=KEY, customer=cust.id).data] == [seti.id]


def test_setup_intent_decline_and_cancel(emu):
    cust = stripe.Customer.create(api_key=KEY)
    with pytest.raises(stripe.CardError) as caught:
        stripe.SetupIntent.create(
            api_key=KEY, customer=cust.id, payment_method="pm_card_chargeDeclined", confirm=True
        )
    seti = stripe.SetupIntent.retrieve(caught.value.error.setup_intent.id, api_key=KEY)
    assert seti.status == "requires_payment_method"
    assert seti.last_setup_error.decline_code == "generic_decline"
    assert emu.event_types()[-1] == "setup_intent.setup_failed"
    assert stripe.SetupIntent.cancel(seti.id, api_key=KEY).status == "canceled"


def test_setup_intent_requires_action_then_off_session_payments_work(emu):
    cust = stripe.Customer.create(api_key=KEY)
    seti = stripe.SetupIntent.create(
        api_key=KEY, customer=cust.id, payment_method="pm_card_authenticationRequiredOnSetup", confirm=True
    )
    assert seti.status == "requires_action"
    assert emu.complete_authentication(seti.id)["status"] == "succeeded"
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=1500,
        currency="usd",
        customer=cust.id,
        payment_method=seti.payment_method,
        off_session=True,
        confirm=True,
    )
    assert pi.status == "succeeded"


def test_refunds_partial_then_full(emu, customer, client):
    pi = stripe.PaymentIntent.create(
        api_key=KEY,
        amount=5000,
        currency="usd",
        customer=customer.id,
        payment_method=customer.invoice_settings.default_payment_method,
        confirm=True,
    )
    first = stripe.Refund.create(
        api_key=KEY, payment_intent=pi.id, amount=2000, reason="requested_by_customer"
    )
    assert (first.status, first.amount, first.charge) == ("succeeded", 2000, pi.latest_charge)
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.amount_refunded, charge.refunded) == (2000, False)
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Refund.create(api_key=KEY, charge=charge.id, amount=3001)
    assert caught.value.param == "amount"
    rest = client.v1.refunds.create({"charge": charge.id})
    assert rest.amount == 3000
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert (charge.amount_refunded, charge.refunded) == (5000, True)
    assert sorted(r.amount for r in charge.refunds.data) == [2000, 3000]
    assert [r.id for r in stripe.Refund.list(api_key=KEY, payment_intent=pi.id).data] == [rest.id, first.id]
    refunded = emu.events("charge.refunded")
    assert refunded[-1]["data"]["previous_attributes"] == {"amount_refunded": 2000, "refunded": False}
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Refund.create(api_key=KEY, charge=charge.id)
    assert caught.value.code == "charge_already_refunded"
