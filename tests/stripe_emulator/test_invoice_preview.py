"""`POST /v1/invoices/create_preview` with `subscription_details`: the invoice a plan change would
lead to, the same figures as the change itself makes, and nothing changed by previewing."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


@pytest.fixture
def sub(emu, customer, monthly_price):
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    emu.advance(days=10)
    emu.clock.freeze()
    return sub


@pytest.fixture
def bigger_price(emu, monthly_price):
    return stripe.Price.create(
        api_key=KEY,
        product=monthly_price.product,
        currency="usd",
        unit_amount=9000,
        recurring={"interval": "month"},
    )


def preview(sub, price, **details):
    item = sub["items"].data[0]
    return stripe.Invoice.create_preview(
        api_key=KEY,
        subscription=sub.id,
        subscription_details={"items": [{"id": item.id, "price": price.id}], **details},
    )


def prorations(invoice) -> list[int]:
    return [
        line.amount
        for line in invoice.lines.data
        if line.parent and line.parent.subscription_item_details.proration
    ]


def test_previewed_prorations_are_those_the_change_makes(emu, sub, bigger_price):
    moment = emu.clock.now()
    events_before = len(emu.events())
    shown = preview(sub, bigger_price, proration_date=moment)
    unused, remaining = prorations(shown)
    assert unused < 0 < remaining
    assert unused + remaining > 0  # an upgrade: the customer owes the difference
    # The next period at the new price follows the prorations.
    assert (
        shown.lines.data[-1].amount == 9000
        and not shown.lines.data[-1].parent.subscription_item_details.proration
    )
    assert shown.total == unused + remaining + 9000
    # Previewing changed nothing: same price, no pending items, no events.
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY)["items"].data[0].price.id != bigger_price.id
    assert stripe.InvoiceItem.list(api_key=KEY, customer=sub.customer, pending=True).data == []
    assert len(emu.events()) == events_before

    item = sub["items"].data[0]
    stripe.Subscription.modify(
        sub.id,
        api_key=KEY,
        items=[{"id": item.id, "price": bigger_price.id}],
        proration_behavior="create_prorations",
        proration_date=moment,
    )
    pending = sorted(
        ii.amount for ii in stripe.InvoiceItem.list(api_key=KEY, customer=sub.customer, pending=True)
    )
    assert pending == sorted([unused, remaining])
    after = stripe.Invoice.create_preview(api_key=KEY, subscription=sub.id)
    assert after.total == shown.total


def test_always_invoice_previews_the_invoice_made_now(emu, sub, bigger_price):
    shown = preview(sub, bigger_price, proration_behavior="always_invoice", proration_date=emu.clock.now())
    assert len(shown.lines.data) == 2 and shown.total == sum(prorations(shown)) > 0
    assert shown.billing_reason == "subscription_update"


def test_no_prorations_previews_the_next_period_only(emu, sub, bigger_price):
    shown = preview(sub, bigger_price, proration_behavior="none")
    assert [line.amount for line in shown.lines.data] == [9000]


def test_interval_change_previews_credit_and_the_new_period_billed_now(emu, sub, yearly_price):
    shown = preview(sub, yearly_price)
    credit, year = (line.amount for line in shown.lines.data)
    assert -3000 < credit < 0 and year == 30000
    assert shown.next_payment_attempt == emu.clock.now()


def test_trialing_subscription_previews_the_first_invoice_at_the_new_price(
    emu, customer, monthly_price, bigger_price
):
    sub = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], trial_period_days=14
    )
    shown = preview(sub, bigger_price)
    assert [line.amount for line in shown.lines.data] == [9000]
    assert shown.next_payment_attempt == sub.trial_end


def test_bad_subscription_details_are_refused(emu, sub, customer, bigger_price):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Invoice.create_preview(
            api_key=KEY,
            subscription=sub.id,
            subscription_details={"items": [{"id": "si_missing", "price": bigger_price.id}]},
        )
    assert caught.value.code == "resource_missing"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Invoice.create_preview(
            api_key=KEY,
            customer=customer.id,
            subscription_details={"items": [{"price": bigger_price.id}]},
        )
