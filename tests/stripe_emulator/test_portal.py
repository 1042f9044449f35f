"""The customer portal: sessions and configurations through the API, and the hosted page driven
over plain HTTP (GET the session's `url`, POST its forms), each action firing Stripe's events."""

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
def subscribed(emu, customer, monthly_price, yearly_price):
    """A customer on the monthly price (the yearly one exists to switch to) and a portal session."""
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    session = stripe.billing_portal.Session.create(
        api_key=KEY, customer=customer.id, return_url="https://app.example.com/billing"
    )
    return sub, session


def new_events(emu, marker: int) -> list[str]:
    return [e["type"] for e in emu.store.all("event") if e["_seq"] > marker]


def test_session_points_at_the_emulator_and_the_page_shows_the_subscription(emu, subscribed, customer):
    sub, session = subscribed
    assert session.id.startswith("bps_") and session.object == "billing_portal.session"
    assert session.url == f"{emu.base_url}/p/session/{session.id}"
    assert session.customer == customer.id and session.return_url == "https://app.example.com/billing"
    assert session.configuration.startswith("bpc_")
    assert "billing_portal.session.created" in emu.event_types()
    status, _, html = get(emu, session.url)
    assert status == 200
    assert f"data-subscription='{sub.id}'" in html and "Professional · $30.00 / month" in html
    assert "Visa •••• 4242" in html
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    assert invoice.hosted_invoice_url in html and invoice.number in html
    assert "href='https://app.example.com/billing' data-return" in html
    assert "<script" not in html


def test_cancel_at_period_end_then_renew(emu, subscribed):
    sub, session = subscribed
    path = urlsplit(session.url).path
    marker = emu.store.seq
    status, headers, _ = post(emu, path, action="cancel_at_period_end", subscription=sub.id)
    assert status == 303 and headers["Location"] == f"{session.url}?done=cancel_at_period_end"
    scheduled = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert scheduled.cancel_at_period_end is True and scheduled.status == "active"
    assert new_events(emu, marker) == ["customer.subscription.updated"]
    previous = emu.events("customer.subscription.updated")[-1]["data"]["previous_attributes"]
    assert previous["cancel_at_period_end"] is False
    _, _, html = get(emu, headers["Location"])
    assert "will be canceled at the end" in html and "Renew plan" in html
    post(emu, path, action="renew", subscription=sub.id)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).cancel_at_period_end is False
    assert emu.events("customer.subscription.updated")[-1]["data"]["previous_attributes"][
        "cancel_at_period_end"
    ]


def test_cancel_now(emu, subscribed):
    sub, session = subscribed
    marker = emu.store.seq
    status, _, _ = post(emu, urlsplit(session.url).path, action="cancel_now", subscription=sub.id)
    assert status == 303
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "canceled"
    assert new_events(emu, marker) == ["customer.subscription.deleted"]
    _, _, html = get(emu, session.url)
    assert "No active subscription" in html


def test_switch_to_another_active_price(emu, subscribed, monthly_price, yearly_price):
    sub, session = subscribed
    inactive = stripe.Price.create(
        api_key=KEY,
        product=monthly_price.product,
        currency="usd",
        unit_amount=100,
        recurring={"interval": "month"},
    )
    stripe.Price.modify(inactive.id, api_key=KEY, active=False)
    _, _, html = get(emu, session.url)
    offered = re.findall(r"<option value='(price_\w+)'>", html)
    assert offered == [yearly_price.id]  # neither the current price nor an inactive one
    marker = emu.store.seq
    status, _, _ = post(
        emu, urlsplit(session.url).path, action="switch", subscription=sub.id, price=yearly_price.id
    )
    assert status == 303
    switched = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert switched["items"].data[0].price.id == yearly_price.id
    types = new_events(emu, marker)
    assert "customer.subscription.updated" in types and "invoice.paid" in types  # a new interval bills now
    status, _, html = post(
        emu, urlsplit(session.url).path, action="switch", subscription=sub.id, price=inactive.id
    )
    assert status == 400 and "not available" in html


def test_replace_the_card(emu, subscribed, customer):
    sub, session = subscribed
    stripe.Subscription.modify(
        sub.id, api_key=KEY, default_payment_method=customer.invoice_settings.default_payment_method
    )
    marker = emu.store.seq
    status, headers, _ = post(
        emu, urlsplit(session.url).path, action="update_card", card="pm_card_mastercard"
    )
    assert status == 303 and headers["Location"].endswith("?done=update_card")
    new_default = stripe.Customer.retrieve(customer.id, api_key=KEY).invoice_settings.default_payment_method
    assert stripe.PaymentMethod.retrieve(new_default, api_key=KEY).card.last4 == "4444"
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).default_payment_method == new_default
    assert new_events(emu, marker) == [
        "setup_intent.created",
        "payment_method.attached",
        "setup_intent.succeeded",
        "customer.updated",
        "customer.subscription.updated",
    ]
    _, _, html = get(emu, session.url)
    assert "Mastercard •••• 4444" in html


def test_a_declined_replacement_card_is_refused(emu, subscribed, customer):
    _, session = subscribed
    before = customer.invoice_settings.default_payment_method
    status, _, html = post(
        emu, urlsplit(session.url).path, action="update_card", card="pm_card_chargeDeclined"
    )
    assert status == 402 and "Your card was declined." in html
    assert (
        stripe.Customer.retrieve(customer.id, api_key=KEY).invoice_settings.default_payment_method == before
    )


def test_a_replacement_card_needing_3d_secure(emu, subscribed, customer):
    _, session = subscribed
    status, headers, _ = post(
        emu, urlsplit(session.url).path, action="update_card", card="pm_card_authenticationRequiredOnSetup"
    )
    assert status == 303 and "/_emulator/authenticate/seti_" in headers["Location"]
    status, headers, _ = post(emu, headers["Location"] + "?result=succeed")
    assert status == 303 and "/card_return?setup_intent=seti_" in headers["Location"]
    status, headers, _ = get(emu, headers["Location"])
    assert status == 303 and headers["Location"].endswith("?done=update_card")
    new_default = stripe.Customer.retrieve(customer.id, api_key=KEY).invoice_settings.default_payment_method
    assert stripe.PaymentMethod.retrieve(new_default, api_key=KEY).card.last4 == "3155"


def test_pay_an_open_invoice_from_the_history(emu, customer, monthly_price):
    failing = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_chargeCustomerFail",
        invoice_settings={"default_payment_method": "pm_card_chargeCustomerFail"},
    )
    invoice = stripe.Invoice.create(api_key=KEY, customer=failing.id)
    stripe.InvoiceItem.create(
        api_key=KEY, customer=failing.id, invoice=invoice.id, amount=1200, currency="usd"
    )
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    session = stripe.billing_portal.Session.create(api_key=KEY, customer=failing.id)
    path = urlsplit(session.url).path
    _, _, html = get(emu, session.url)
    assert "Pay now" in html
    status, _, html = post(emu, path, action="pay_invoice", invoice=invoice.id)
    assert status == 402 and "declined" in html
    post(emu, path, action="update_card", card="pm_card_visa")
    status, _, _ = post(emu, path, action="pay_invoice", invoice=invoice.id)
    assert status == 303
    assert stripe.Invoice.retrieve(invoice.id, api_key=KEY).status == "paid"


def test_a_flow_redirects_after_completion(emu, subscribed):
    sub, _ = subscribed
    session = stripe.billing_portal.Session.create(
        api_key=KEY,
        customer=sub.customer,
        return_url="https://app.example.com/billing",
        flow_data={
            "type": "subscription_cancel",
            "subscription_cancel": {"subscription": sub.id},
            "after_completion": {
                "type": "redirect",
                "redirect": {"return_url": "https://app.example.com/bye"},
            },
        },
    )
    assert (
        session.flow.type == "subscription_cancel" and session.flow.subscription_cancel.subscription == sub.id
    )
    status, headers, _ = post(emu, urlsplit(session.url).path, action="cancel_now", subscription=sub.id)
    assert status == 303 and headers["Location"] == "https://app.example.com/bye"


def test_actions_on_someone_elses_subscription_are_refused(emu, subscribed, monthly_price):
    sub, _ = subscribed
    stranger = stripe.Customer.create(api_key=KEY, email="stranger@example.com")
    session = stripe.billing_portal.Session.create(api_key=KEY, customer=stranger.id)
    status, _, _ = post(emu, urlsplit(session.url).path, action="cancel_now", subscription=sub.id)
    assert status == 400
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"


def test_configurations(emu, subscribed, monthly_price):
    sub, _ = subscribed
    config = stripe.billing_portal.Configuration.create(
        api_key=KEY,
        business_profile={"headline": "Acme billing"},
        features={"subscription_cancel": {"enabled": False}, "subscription_update": {"enabled": False}},
    )
    assert config.is_default is False and config.features.subscription_cancel.enabled is False
    listed = stripe.billing_portal.Configuration.list(api_key=KEY).data
    assert {c.id for c in listed} >= {config.id} and any(c.is_default for c in listed)
    session = stripe.billing_portal.Session.create(
        api_key=KEY, customer=sub.customer, configuration=config.id
    )
    _, _, html = get(emu, session.url)
    assert "Cancel now" not in html and "Switch plan" not in html
    status, _, _ = post(emu, urlsplit(session.url).path, action="cancel_now", subscription=sub.id)
    assert status == 400
