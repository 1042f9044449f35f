"""Every emulated object carries every top-level key of Stripe's own example (fixtures3.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import stripe

from stripe_emulator.testing import installed_emulator

from .conftest import KEY

FIXTURES = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "stripe" / "fixtures3.json").read_text()
)["resources"]


@pytest.fixture(scope="module")
def served() -> dict[str, dict]:
    """One object of each emulated type, made once for the module on an emulator of its own."""
    with installed_emulator() as emu:
        customer = stripe.Customer.create(
            api_key=KEY,
            email="jenny@example.com",
            payment_method="pm_card_visa",
            invoice_settings={"default_payment_method": "pm_card_visa"},
        )
        product = stripe.Product.create(api_key=KEY, name="Professional")
        monthly_price = stripe.Price.create(
            api_key=KEY, product=product.id, currency="usd", unit_amount=3000, recurring={"interval": "month"}
        )
        yield _served(emu, customer, monthly_price)


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
    clock = stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=1_900_000_000)
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="payment",
        line_items=[
            {
                "price_data": {"currency": "usd", "unit_amount": 500, "product_data": {"name": "T"}},
                "quantity": 1,
            }
        ],
        success_url="https://example.com/ok",
    )
    checkout_item = stripe.checkout.Session.list_line_items(session.id, api_key=KEY).data[0]
    portal = stripe.billing_portal.Session.create(api_key=KEY, customer=customer.id)
    configuration = stripe.billing_portal.Configuration.retrieve(portal.configuration, api_key=KEY)
    meter = stripe.billing.Meter.create(
        api_key=KEY, display_name="M", event_name="m", default_aggregation={"formula": "sum"}
    )
    meter_event = stripe.billing.MeterEvent.create(
        api_key=KEY, event_name="m", payload={"stripe_customer_id": customer.id, "value": "1"}
    )
    start = emu.clock.now() // 60 * 60
    summary = stripe.billing.Meter.list_event_summaries(
        meter.id, api_key=KEY, customer=customer.id, start_time=start, end_time=start + 60
    ).data[0]
    adjustment = stripe.billing.MeterEventAdjustment.create(
        api_key=KEY, type="cancel", event_name="m", cancel={"identifier": meter_event.identifier}
    )
    dispute = stripe.Dispute.retrieve(emu.create_dispute(charge.id)["id"], api_key=KEY)
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
        clock,
        session,
        checkout_item,
        portal,
        configuration,
        meter,
        meter_event,
        summary,
        adjustment,
        dispute,
    ]
    return {obj.object: obj.to_dict() for obj in served}


# Keys Stripe's example still carries that the pinned API version no longer serves (stripe-python's
# types do not declare them): an invoice's subscription is at `parent.subscription_details` since
# 2025-03-31.basil.
REMOVED = {"invoice": {"subscription"}}

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
    "test_helpers.test_clock",
    "checkout.session",
    "item",
    "billing_portal.session",
    "billing_portal.configuration",
    "billing.meter",
    "billing.meter_event",
    "billing.meter_event_summary",
    "billing.meter_event_adjustment",
    "dispute",
]


@pytest.mark.parametrize("object_type", EMULATED)
def test_object_has_every_key_of_stripes_example(served, object_type):
    obj = served[object_type]
    missing = sorted(set(FIXTURES[object_type]) - set(obj) - REMOVED.get(object_type, set()))
    assert missing == []
    assert obj["object"] == object_type


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
        ("test_helpers.test_clock", "clock_"),
        ("checkout.session", "cs_test_"),
        ("item", "li_"),
        ("billing_portal.session", "bps_"),
        ("billing_portal.configuration", "bpc_"),
        ("billing.meter", "mtr_"),
        ("billing.meter_event_summary", "mtrusg_"),
        ("dispute", "dp_"),
    ],
)
def test_ids_carry_stripes_prefixes(served, object_type, prefix):
    assert served[object_type]["id"].startswith(prefix)


def test_amounts_are_integer_minor_units(served):
    for object_type, key in [
        ("payment_intent", "amount"),
        ("charge", "amount"),
        ("invoice", "amount_paid"),
        ("price", "unit_amount"),
        ("refund", "amount"),
        ("invoiceitem", "amount"),
        ("checkout.session", "amount_total"),
        ("dispute", "amount"),
        ("billing.meter_event_summary", "aggregated_value"),
    ]:
        assert type(served[object_type][key]) is int, (object_type, key)


def test_webhook_endpoint_secret_is_shown_only_at_creation(emu):
    created = stripe.WebhookEndpoint.create(api_key=KEY, url="https://example.com/hook", enabled_events=["*"])
    assert created.secret.startswith("whsec_")
    assert "secret" not in stripe.WebhookEndpoint.retrieve(created.id, api_key=KEY).to_dict()
