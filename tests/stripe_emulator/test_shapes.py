"""Every emulated object carries every top-level key of Stripe's own example (fixtures3.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

from .conftest import KEY

FIXTURES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "fixtures3.json").read_text()
)["resources"]


def _served(emu, customer, monthly_price) -> dict[str, dict]:
    """One object of each emulated type, as the API serves it."""
    pm = stripe.PaymentMethod.retrieve(customer.invoice_settings.default_payment_method, api_key=KEY)
    seti = stripe.SetupIntent.create(
        api_key=KEY, customer=customer.id, payment_method="pm_card_visa", confirm=True
    )
    pi = stripe.PaymentIntent.create(
        api_key=KEY, amount=2000, currency="usd", customer=customer.id, payment_method=pm.id, confirm=True
    )
    charge = stripe.Charge.retrieve(pi.latest_charge, api_key=KEY)
    refund = stripe.Refund.create(api_key=KEY, payment_intent=pi.id, amount=500)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    item = stripe.SubscriptionItem.retrieve(sub["items"].data[0].id, api_key=KEY)
    ii = stripe.InvoiceItem.create(api_key=KEY, customer=customer.id, amount=700, currency="usd")
    invoice = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    line = stripe.Invoice.list_lines(invoice.id, api_key=KEY).data[0]
    endpoint = stripe.WebhookEndpoint.create(
        api_key=KEY, url="https://example.com/hook", enabled_events=["*"]
    )
    event = stripe.Event.list(api_key=KEY, limit=1).data[0]
    payment = stripe.InvoicePayment.list(api_key=KEY, invoice=invoice.id).data[0]
    txn = stripe.BalanceTransaction.retrieve(charge.balance_transaction, api_key=KEY)
    served = [
        stripe.Account.retrieve(api_key=KEY),
        customer,
        pm,
        seti,
        pi,
        charge,
        refund,
        stripe.Product.retrieve(monthly_price.product, api_key=KEY),
        monthly_price,
        sub,
        item,
        invoice,
        ii,
        line,
        event,
        endpoint,
        payment,
        txn,
    ]
    return {obj.object: obj.to_dict() for obj in served}


EMULATED = [
    "account",
    "customer",
    "payment_method",
    "setup_intent",
    "payment_intent",
    "charge",
    "refund",
    "product",
    "price",
    "subscription",
    "subscription_item",
    "invoice",
    "invoiceitem",
    "line_item",
    "event",
    "webhook_endpoint",
    "invoice_payment",
    "balance_transaction",
]


@pytest.mark.parametrize("object_type", EMULATED)
def test_object_has_every_key_of_stripes_example(emu, customer, monthly_price, object_type):
    served = _served(emu, customer, monthly_price)[object_type]
    missing = sorted(set(FIXTURES[object_type]) - set(served))
    assert missing == []
    assert served["object"] == object_type


@pytest.mark.parametrize(
    ("object_type", "prefix"),
    [
        ("customer", "cus_"),
        ("payment_method", "pm_"),
        ("setup_intent", "seti_"),
        ("payment_intent", "pi_"),
        ("charge", "ch_"),
        ("refund", "re_"),
        ("product", "prod_"),
        ("price", "price_"),
        ("subscription", "sub_"),
        ("subscription_item", "si_"),
        ("invoice", "in_"),
        ("invoiceitem", "ii_"),
        ("line_item", "il_"),
        ("event", "evt_"),
        ("webhook_endpoint", "we_"),
        ("account", "acct_"),
    ],
)
def test_ids_carry_stripes_prefixes(emu, customer, monthly_price, object_type, prefix):
    assert _served(emu, customer, monthly_price)[object_type]["id"].startswith(prefix)


def test_amounts_are_integer_minor_units(emu, customer, monthly_price):
    served = _served(emu, customer, monthly_price)
    for object_type, key in [
        ("payment_intent", "amount"),
        ("charge", "amount"),
        ("invoice", "amount_paid"),
        ("price", "unit_amount"),
        ("refund", "amount"),
        ("invoiceitem", "amount"),
    ]:
        assert type(served[object_type][key]) is int, (object_type, key)


def test_webhook_endpoint_secret_is_shown_only_at_creation(emu):
    created = stripe.WebhookEndpoint.create(api_key=KEY, url="https://example.com/hook", enabled_events=["*"])
    assert created.secret.startswith("whsec_")
    assert "secret" not in stripe.WebhookEndpoint.retrieve(created.id, api_key=KEY).to_dict()
