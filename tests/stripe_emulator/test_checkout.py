"""Checkout Sessions: the API, and the hosted page driven over plain HTTP through `emu.handle`
(a GET of the session's `url`, form POSTs back), as a browser without JavaScript would."""

from __future__ import annotations

import re
from urllib.parse import urlencode, urlsplit

import pytest
import stripe

from .conftest import KEY

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def get(emu, url: str):
    status, headers, body = emu.handle("GET", url)
    return status, headers, body.decode()


def post(emu, url: str, **form):
    status, headers, body = emu.handle("POST", url, FORM, urlencode(form))
    return status, headers, body.decode()


@pytest.fixture
def one_time_price(emu) -> stripe.Price:
    return stripe.Price.create(
        api_key=KEY, currency="usd", unit_amount=2500, product_data={"name": "1,000 credits"}
    )


def payment_session(customer, price, **kwargs) -> stripe.checkout.Session:
    return stripe.checkout.Session.create(
        api_key=KEY,
        mode="payment",
        customer=customer.id,
        line_items=[{"price": price.id, "quantity": 2}],
        success_url="https://app.example.com/done?session={CHECKOUT_SESSION_ID}",
        cancel_url="https://app.example.com/cancel",
        client_reference_id="org-1",
        metadata={"organization_id": "org-1", "kind": "credits"},
        payment_intent_data={"metadata": {"credits": "2000", "organization_id": "org-1"}},
        **kwargs,
    )


def test_payment_mode_paid_on_the_hosted_page(emu, customer, one_time_price):
    session = payment_session(customer, one_time_price)
    assert session.id.startswith("cs_test_") and session.status == "open"
    assert session.url == f"{emu.base_url}/c/pay/{session.id}"
    assert (session.amount_total, session.currency, session.payment_status) == (5000, "usd", "unpaid")
    assert session.payment_intent is None  # made when the customer pays, as in Stripe

    status, _, html = get(emu, session.url)
    assert status == 200
    assert "1,000 credits" in html and "$50.00" in html and "<form method='post'" in html
    assert "<script" not in html

    status, headers, _ = post(emu, urlsplit(session.url).path, card="success", email="jenny@example.com")
    assert status == 303
    assert headers["Location"] == f"https://app.example.com/done?session={session.id}"

    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert (done.status, done.payment_status) == ("complete", "paid")
    pi = stripe.PaymentIntent.retrieve(done.payment_intent, api_key=KEY)
    assert (pi.status, pi.amount, pi.customer) == ("succeeded", 5000, customer.id)
    assert pi.metadata.to_dict() == {"credits": "2000", "organization_id": "org-1"}
    completed = emu.events("checkout.session.completed")
    assert len(completed) == 1
    event_session = completed[0]["data"]["object"]
    assert event_session["payment_intent"] == pi.id
    assert event_session["metadata"] == {"organization_id": "org-1", "kind": "credits"}
    assert event_session["client_reference_id"] == "org-1"
    assert event_session["customer_details"]["email"] == "jenny@example.com"
    assert emu.event_types().index("payment_intent.succeeded") < emu.event_types().index(
        "checkout.session.completed"
    )
    status, _, html = get(emu, session.url)
    assert status == 200 and "complete" in html


def test_a_declined_card_leaves_the_session_open_for_another_try(emu, customer, one_time_price):
    session = payment_session(customer, one_time_price)
    path = urlsplit(session.url).path
    status, _, html = post(emu, path, card="decline")
    assert status == 402 and "Your card was declined." in html
    again = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert again.status == "open" and again.payment_intent is not None
    assert (
        stripe.PaymentIntent.retrieve(again.payment_intent, api_key=KEY).status == "requires_payment_method"
    )
    assert "checkout.session.completed" not in emu.event_types()
    status, _, _ = post(emu, path, card="success")
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert done.status == "complete" and done.payment_intent == again.payment_intent
    assert [c.status for c in stripe.Charge.list(api_key=KEY, payment_intent=done.payment_intent).data] == [
        "succeeded",
        "failed",
    ]


def test_a_card_needing_authentication_goes_through_3d_secure_and_back(emu, customer, one_time_price):
    session = payment_session(customer, one_time_price)
    status, headers, _ = post(emu, urlsplit(session.url).path, card="authenticate")
    assert status == 303
    auth_url = headers["Location"]
    assert re.search(r"/_emulator/authenticate/pi_\w+$", auth_url)
    status, _, html = get(emu, auth_url)
    assert status == 200 and "Complete" in html
    status, headers, _ = post(emu, auth_url + "?result=succeed")
    assert status == 303 and headers["Location"] == f"{session.url}/return"
    status, headers, _ = get(emu, headers["Location"])
    assert status == 303 and headers["Location"].startswith("https://app.example.com/done")
    assert stripe.checkout.Session.retrieve(session.id, api_key=KEY).status == "complete"


def test_failed_authentication_shows_the_error_and_keeps_the_session(emu, customer, one_time_price):
    session = payment_session(customer, one_time_price)
    _, headers, _ = post(emu, urlsplit(session.url).path, card="authenticate")
    _, headers, _ = post(emu, headers["Location"] + "?result=fail")
    status, _, html = get(emu, headers["Location"])
    assert status == 402 and "unable to authenticate" in html
    assert stripe.checkout.Session.retrieve(session.id, api_key=KEY).status == "open"


def test_subscription_mode_with_a_trial_and_metadata(emu, monthly_price):
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        line_items=[{"price": monthly_price.id, "quantity": 1}],
        success_url="https://app.example.com/welcome",
        cancel_url="https://app.example.com/plans",
        client_reference_id="org-7",
        metadata={"kind": "subscription"},
        subscription_data={
            "trial_period_days": 14,
            "metadata": {"organization_id": "org-7", "plan_code": "pro"},
        },
    )
    assert session.amount_total == 0
    _, _, html = get(emu, session.url)
    assert "14-day free trial" in html
    status, headers, _ = post(
        emu, urlsplit(session.url).path, card="success", email="new@example.com", name="N"
    )
    assert status == 303 and headers["Location"] == "https://app.example.com/welcome"
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    sub = stripe.Subscription.retrieve(done.subscription, api_key=KEY)
    assert sub.status == "trialing" and sub.trial_end - sub.trial_start == 14 * 86400
    assert sub.metadata.to_dict() == {"organization_id": "org-7", "plan_code": "pro"}
    customer = stripe.Customer.retrieve(done.customer, api_key=KEY)
    assert customer.email == "new@example.com" and sub.customer == customer.id
    pm = stripe.PaymentMethod.retrieve(sub.default_payment_method, api_key=KEY)
    assert pm.customer == customer.id and pm.card.last4 == "4242"
    assert emu.objects("charge") == []
    types = emu.event_types()
    assert types.index("customer.subscription.created") < types.index("checkout.session.completed")
    assert "setup_intent.succeeded" in types


def test_subscription_mode_charges_and_saves_the_card(emu, customer, monthly_price):
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        customer=customer.id,
        line_items=[{"price": monthly_price.id, "quantity": 1}],
        success_url="https://app.example.com/welcome",
    )
    path = urlsplit(session.url).path
    status, _, _ = post(emu, path, card="decline")
    assert status == 402
    status, _, _ = post(emu, path, card="success")
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert (done.status, done.payment_status, done.amount_total) == ("complete", "paid", 3000)
    sub = stripe.Subscription.retrieve(done.subscription, api_key=KEY)
    assert sub.status == "active"
    assert stripe.Invoice.retrieve(done.invoice, api_key=KEY).status == "paid"
    assert stripe.PaymentMethod.retrieve(sub.default_payment_method, api_key=KEY).card.last4 == "4242"
    assert len(stripe.Subscription.list(api_key=KEY, customer=customer.id).data) == 1


def test_setup_mode_saves_a_card(emu, customer):
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="setup",
        customer=customer.id,
        currency="usd",
        success_url="https://app.example.com/cards",
        setup_intent_data={"metadata": {"purpose": "backup card"}},
    )
    status, _, _ = post(emu, urlsplit(session.url).path, card="pm_card_mastercard")
    assert status == 303
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert (done.status, done.payment_status) == ("complete", "no_payment_required")
    seti = stripe.SetupIntent.retrieve(done.setup_intent, api_key=KEY)
    assert seti.status == "succeeded" and seti.metadata.to_dict() == {"purpose": "backup card"}
    assert stripe.PaymentMethod.retrieve(seti.payment_method, api_key=KEY).customer == customer.id


def test_line_items_and_dj_stripe_expansions(emu, customer, one_time_price, client):
    session = payment_session(customer, one_time_price)
    items = stripe.checkout.Session.list_line_items(session.id, api_key=KEY).data
    assert len(items) == 1
    item = items[0]
    assert (item.object, item.quantity, item.amount_total, item.description) == (
        "item",
        2,
        5000,
        "1,000 credits",
    )
    assert item.price.id == one_time_price.id  # a whole price, as Stripe serves it
    expanded = stripe.checkout.Session.retrieve(
        session.id,
        api_key=KEY,
        expand=["line_items", "total_details.breakdown", "line_items.data.discounts"],
    )
    assert expanded.line_items.data[0].id == item.id and expanded.line_items.data[0].discounts == []
    assert expanded.total_details.breakdown.to_dict() == {"discounts": [], "taxes": []}
    listed = client.v1.checkout.sessions.list({"customer": customer.id})
    assert [s.id for s in listed.data] == [session.id]


def test_inline_price_data(emu):
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="payment",
        line_items=[
            {
                "price_data": {"currency": "eur", "unit_amount": 990, "product_data": {"name": "Top-up"}},
                "quantity": 1,
            }
        ],
        success_url="https://app.example.com/ok",
    )
    assert (session.amount_total, session.currency) == (990, "eur")
    outcome = emu.checkout_submit(session.id, "success", email="guest@example.com")
    assert outcome == {"status": "complete", "redirect": "https://app.example.com/ok", "message": None}
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert done.customer is None and done.customer_details.email == "guest@example.com"  # a guest payment


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"mode": "payment", "line_items": [{"price": "RECURRING", "quantity": 1}]}, "line_items"),
        ({"mode": "subscription", "line_items": [{"price": "ONE_TIME", "quantity": 1}]}, "line_items"),
        ({"mode": "payment"}, "line_items"),
        ({"mode": "payment", "line_items": [{"price": "ONE_TIME"}]}, "line_items[0][quantity]"),
        ({"line_items": [{"price": "ONE_TIME", "quantity": 1}]}, "mode"),
        (
            {
                "mode": "payment",
                "line_items": [{"price": "ONE_TIME", "quantity": 1}],
                "subscription_data": {"trial_period_days": 3},
            },
            "subscription_data",
        ),
    ],
)
def test_invalid_sessions_are_refused(emu, monthly_price, one_time_price, params, param):
    ids = {"RECURRING": monthly_price.id, "ONE_TIME": one_time_price.id}
    for item in params.get("line_items", []):
        item["price"] = ids[item["price"]]
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.checkout.Session.create(api_key=KEY, success_url="https://x.example.com", **params)
    assert caught.value.param == param
    assert emu.objects("checkout_session") == []


def test_expire_by_api_and_by_time(emu, customer, one_time_price):
    emu.clock.freeze()
    first = payment_session(customer, one_time_price)
    expired = stripe.checkout.Session.expire(first.id, api_key=KEY)
    assert expired.status == "expired"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.checkout.Session.expire(first.id, api_key=KEY)
    status, _, html = get(emu, first.url)
    assert status == 200 and "expired" in html
    assert post(emu, urlsplit(first.url).path, card="success")[0] == 409
    second = payment_session(customer, one_time_price)
    assert second.expires_at == emu.clock.now() + 24 * 3600
    emu.advance(hours=25)
    assert stripe.checkout.Session.retrieve(second.id, api_key=KEY).status == "expired"
    assert len(emu.events("checkout.session.expired")) == 2


@pytest.mark.parametrize(
    ("button", "settled", "event", "pi_status"),
    [
        ("bank_success", "paid", "checkout.session.async_payment_succeeded", "succeeded"),
        ("bank_failure", "unpaid", "checkout.session.async_payment_failed", "requires_payment_method"),
    ],
)
def test_a_bank_debit_completes_unpaid_then_settles_asynchronously(
    emu, customer, one_time_price, button, settled, event, pi_status
):
    emu.clock.freeze()
    session = payment_session(customer, one_time_price)
    _, _, html = get(emu, session.url)
    assert "US bank account" in html
    status, headers, _ = post(emu, urlsplit(session.url).path, card=button)
    assert status == 303 and headers["Location"].startswith("https://app.example.com/done")
    done = stripe.checkout.Session.retrieve(session.id, api_key=KEY)
    assert (done.status, done.payment_status) == ("complete", "unpaid")  # completed, not yet paid
    pi = stripe.PaymentIntent.retrieve(done.payment_intent, api_key=KEY)
    assert pi.status == "processing" and pi.metadata["credits"] == "2000"
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    assert charge.status == "pending" and charge.payment_method_details.type == "us_bank_account"
    assert "checkout.session.completed" in emu.event_types() and event not in emu.event_types()
    emu.advance(seconds=59)
    assert stripe.PaymentIntent.retrieve(pi.id, api_key=KEY).status == "processing"
    emu.advance(seconds=2)
    assert stripe.PaymentIntent.retrieve(pi.id, api_key=KEY).status == pi_status
    assert stripe.checkout.Session.retrieve(session.id, api_key=KEY).payment_status == settled
    assert [e["data"]["object"]["id"] for e in emu.events(event)] == [session.id]
    types = emu.event_types()
    assert types.index("checkout.session.completed") < types.index(event)


def test_bank_debits_are_offered_in_payment_mode_only(emu, monthly_price):
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        line_items=[{"price": monthly_price.id, "quantity": 1}],
        success_url="https://app.example.com/ok",
    )
    _, _, html = get(emu, session.url)
    assert "US bank account" not in html
    status, _, html = post(emu, urlsplit(session.url).path, card="bank_success")
    assert status == 402 and "payment mode only" in html
