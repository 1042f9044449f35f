"""Subscriptions and subscription items: creation, trials, payment behaviours, prorations,
cancellation, renewal and dunning."""

from __future__ import annotations

import pytest
import stripe

from .conftest import KEY


def subscribe(customer, price, **kwargs) -> stripe.Subscription:
    return stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": price.id}], **kwargs
    )


def invoice_of(sub) -> stripe.Invoice:
    return stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)


def test_create_charges_the_default_payment_method(emu, customer, monthly_price):
    sub = subscribe(customer, monthly_price, metadata={"org": "o1"})
    assert sub.status == "active"
    item = sub["items"].data[0]
    assert item.price.id == monthly_price.id and item.plan.id == monthly_price.id and item.quantity == 1
    assert 28 * 86400 <= item.current_period_end - item.current_period_start <= 31 * 86400
    invoice = invoice_of(sub)
    assert (invoice.status, invoice.amount_paid, invoice.billing_reason) == (
        "paid",
        3000,
        "subscription_create",
    )
    assert invoice.parent.subscription_details.subscription == sub.id
    assert invoice.number.startswith(customer.invoice_prefix + "-")
    assert [line.amount for line in invoice.lines.data] == [3000]
    assert invoice.lines.data[0].parent.subscription_item_details.subscription_item == item.id
    types = emu.event_types()
    for expected in [
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "customer.subscription.created",
        "charge.succeeded",
        "payment_intent.succeeded",
    ]:
        assert expected in types
    created = emu.events("customer.subscription.created")[0]["data"]["object"]
    assert created["status"] == "active" and created["metadata"] == {"org": "o1"}


def test_trial_starts_trialing_with_a_zero_invoice(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY, email="t@example.com")
    sub = subscribe(cust, monthly_price, trial_period_days=14)
    assert sub.status == "trialing"
    assert sub.trial_end - sub.trial_start == 14 * 86400
    assert sub["items"].data[0].current_period_end == sub.trial_end
    invoice = invoice_of(sub)
    assert (invoice.status, invoice.amount_due, invoice.total) == ("paid", 0, 0)
    assert invoice.lines.data[0].description == "Trial period for Professional"
    assert emu.objects("charge") == []


def test_default_incomplete_waits_for_the_payment_intent(emu, customer, monthly_price):
    sub = subscribe(
        customer,
        monthly_price,
        payment_behavior="default_incomplete",
        expand=["latest_invoice.payments.data.payment.payment_intent"],
    )
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    pi = sub.latest_invoice.payments.data[0].payment.payment_intent
    assert pi.status == "requires_confirmation" and pi.amount == 3000
    stripe.PaymentIntent.confirm(pi.id, api_key=KEY)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"
    assert stripe.Invoice.retrieve(sub.latest_invoice.id, api_key=KEY).status == "paid"
    updated = emu.events("customer.subscription.updated")[-1]["data"]
    assert updated["previous_attributes"] == {"status": "incomplete"}
    assert updated["object"]["status"] == "active"


def test_declined_first_payment_leaves_it_incomplete_until_paid(emu, monthly_price):
    cust = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_chargeCustomerFail",
        invoice_settings={"default_payment_method": "pm_card_chargeCustomerFail"},
    )
    sub = subscribe(cust, monthly_price)
    assert sub.status == "incomplete"
    invoice = invoice_of(sub)
    assert (invoice.status, invoice.attempt_count, invoice.attempted) == ("open", 1, True)
    assert "invoice.payment_failed" in emu.event_types()
    good = stripe.PaymentMethod.attach("pm_card_visa", api_key=KEY, customer=cust.id)
    paid = stripe.Invoice.pay(invoice.id, api_key=KEY, payment_method=good.id)
    assert (paid.status, paid.amount_paid) == ("paid", 3000)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"


def test_error_if_incomplete_creates_nothing(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY, payment_method="pm_card_chargeCustomerFail")
    pm = stripe.PaymentMethod.list(api_key=KEY, customer=cust.id).data[0]
    with pytest.raises(stripe.CardError) as caught:
        subscribe(cust, monthly_price, default_payment_method=pm.id, payment_behavior="error_if_incomplete")
    assert caught.value.error.decline_code == "generic_decline"
    assert emu.objects("subscription") == [] and emu.objects("invoice") == []


def test_no_payment_method_is_refused_unless_default_incomplete(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY)
    with pytest.raises(stripe.InvalidRequestError, match="no attached payment source"):
        subscribe(cust, monthly_price)
    assert subscribe(cust, monthly_price, payment_behavior="default_incomplete").status == "incomplete"


def test_one_time_prices_are_refused_as_items(emu, customer, monthly_price):
    one_time = stripe.Price.create(
        api_key=KEY, product=monthly_price.product, currency="usd", unit_amount=100
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        subscribe(customer, one_time)
    assert caught.value.param == "items[0][price]"


def test_quantity_change_creates_pending_proration_items(emu, customer, monthly_price, client):
    sub = subscribe(customer, monthly_price)
    item = sub["items"].data[0]
    updated = client.v1.subscriptions.update(
        sub.id, {"items": [{"id": item.id, "quantity": 3}], "proration_behavior": "create_prorations"}
    )
    assert updated["items"].data[0].quantity == 3
    pending = stripe.InvoiceItem.list(api_key=KEY, customer=customer.id, pending=True).data
    amounts = sorted(ii.amount for ii in pending)
    assert len(amounts) == 2 and all(ii.proration for ii in pending)
    assert amounts[0] < 0 < amounts[1]
    assert abs(amounts[0]) <= 3000 and amounts[1] <= 9000
    assert (
        abs(amounts[1] + 3 * amounts[0]) <= 3
    )  # charge for 3 seats == 3 x the credit for 1, give or take rounding
    preview = stripe.Invoice.create_preview(api_key=KEY, customer=customer.id, subscription=sub.id)
    assert preview.total == 9000 + sum(amounts)
    assert "customer.subscription.updated" in emu.event_types()


def test_always_invoice_bills_the_proration_at_once(emu, customer, monthly_price, client):
    sub = subscribe(customer, monthly_price)
    premium = stripe.Price.create(
        api_key=KEY,
        product=monthly_price.product,
        currency="usd",
        unit_amount=6000,
        recurring={"interval": "month"},
    )
    updated = stripe.Subscription.modify(
        sub.id,
        api_key=KEY,
        items=[{"id": sub["items"].data[0].id, "price": premium.id}],
        proration_behavior="always_invoice",
    )
    invoice = invoice_of(updated)
    assert invoice.id != sub.latest_invoice
    assert (invoice.billing_reason, invoice.status) == ("subscription_update", "paid")
    lines = invoice.lines.data
    assert len(lines) == 2
    assert all(
        line.parent.type == "invoice_item_details" and line.parent.invoice_item_details.proration
        for line in lines
    )
    assert any(line.description.startswith("Unused time") for line in lines)
    assert any(line.description.startswith("Remaining time") for line in lines)
    assert invoice.total == sum(line.amount for line in lines) and invoice.total > 0


def test_no_proration_when_asked(emu, customer, monthly_price):
    sub = subscribe(customer, monthly_price)
    stripe.Subscription.modify(
        sub.id, api_key=KEY, items=[{"id": sub["items"].data[0].id, "quantity": 2}], proration_behavior="none"
    )
    assert stripe.InvoiceItem.list(api_key=KEY, pending=True).data == []


def test_interval_change_restarts_the_cycle(emu, customer, monthly_price, yearly_price):
    sub = subscribe(customer, monthly_price)
    updated = stripe.Subscription.modify(
        sub.id, api_key=KEY, items=[{"id": sub["items"].data[0].id, "price": yearly_price.id}]
    )
    item = updated["items"].data[0]
    assert 365 * 86400 <= item.current_period_end - item.current_period_start <= 366 * 86400
    invoice = invoice_of(updated)
    amounts = sorted(line.amount for line in invoice.lines.data)
    assert amounts[-1] == 30000 and amounts[0] < 0
    assert invoice.status == "paid"


def test_cancel_at_period_end_and_undo(emu, customer, monthly_price, client):
    sub = subscribe(customer, monthly_price)
    ending = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": True})
    assert ending.cancel_at_period_end is True and ending.status == "active"
    assert ending.cancel_at == ending["items"].data[0].current_period_end
    assert ending.cancellation_details.reason == "cancellation_requested"
    event = emu.events("customer.subscription.updated")[-1]
    assert event["data"]["previous_attributes"]["cancel_at_period_end"] is False
    resumed = client.v1.subscriptions.update(sub.id, {"cancel_at_period_end": False})
    assert (resumed.cancel_at_period_end, resumed.cancel_at, resumed.canceled_at) == (False, None, None)


def test_cancel_now(emu, customer, monthly_price, client):
    sub = subscribe(customer, monthly_price)
    canceled = client.v1.subscriptions.cancel(sub.id, {"cancellation_details": {"comment": "too pricey"}})
    assert canceled.status == "canceled" and canceled.ended_at is not None
    assert canceled.cancellation_details.comment == "too pricey"
    assert emu.event_types()[-1] == "customer.subscription.deleted"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.cancel(sub.id, api_key=KEY)
    assert stripe.Subscription.list(api_key=KEY, customer=customer.id).data == []
    assert [s.id for s in stripe.Subscription.list(api_key=KEY, status="canceled").data] == [sub.id]
    assert [s.id for s in stripe.Subscription.list(api_key=KEY, status="all").data] == [sub.id]


def test_renewal_bills_the_next_period(emu, customer, monthly_price):
    sub = subscribe(customer, monthly_price)
    first_end = sub["items"].data[0].current_period_end
    invoice = emu.renew_subscription(sub.id)
    assert (invoice["billing_reason"], invoice["status"], invoice["amount_paid"]) == (
        "subscription_cycle",
        "paid",
        3000,
    )
    renewed = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert renewed["items"].data[0].current_period_start == first_end
    assert renewed.latest_invoice == invoice["id"] and renewed.status == "active"


def test_cancel_at_period_end_takes_effect_at_renewal(emu, customer, monthly_price):
    sub = subscribe(customer, monthly_price, cancel_at_period_end=True)
    assert emu.renew_subscription(sub.id) is None
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "canceled"


def test_trial_end_with_a_failing_card_goes_past_due_then_dunning_cancels(emu, monthly_price):
    cust = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_chargeCustomerFail",
        invoice_settings={"default_payment_method": "pm_card_chargeCustomerFail"},
    )
    sub = subscribe(cust, monthly_price, trial_period_days=7)
    ended = stripe.Subscription.modify(sub.id, api_key=KEY, trial_end="now")
    assert ended.status == "past_due"
    invoice = invoice_of(ended)
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert invoice.next_payment_attempt - ended.trial_end >= 3 * 86400 - 5
    for _ in range(2):
        assert emu.retry_invoice_payment(invoice.id)["status"] == "open"
        assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "past_due"
    last = emu.retry_invoice_payment(invoice.id)
    assert last["attempt_count"] == 4 and last["next_payment_attempt"] is None
    final = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert (final.status, final.cancellation_details.reason) == ("canceled", "payment_failed")


def test_dunning_can_end_unpaid_and_payment_reactivates(emu, monthly_price):
    emu.settings(retry_days=[1], final_action="unpaid")
    cust = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_chargeCustomerFail",
        invoice_settings={"default_payment_method": "pm_card_chargeCustomerFail"},
    )
    sub = subscribe(cust, monthly_price, trial_period_days=7)
    invoice_id = stripe.Subscription.modify(sub.id, api_key=KEY, trial_end="now").latest_invoice
    emu.retry_invoice_payment(invoice_id)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "unpaid"
    assert emu.renew_subscription(sub.id)["status"] == "draft"
    good = stripe.PaymentMethod.attach("pm_card_visa", api_key=KEY, customer=cust.id)
    stripe.Invoice.pay(invoice_id, api_key=KEY, payment_method=good.id)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"


def test_trial_end_without_payment_method_can_pause_and_resume(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY)
    sub = subscribe(
        cust,
        monthly_price,
        trial_period_days=7,
        trial_settings={"end_behavior": {"missing_payment_method": "pause"}},
    )
    paused = stripe.Subscription.modify(sub.id, api_key=KEY, trial_end="now")
    assert paused.status == "paused"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.resume(
            stripe.Subscription.create(
                api_key=KEY,
                customer=cust.id,
                items=[{"price": monthly_price.id}],
                payment_behavior="default_incomplete",
            ).id,
            api_key=KEY,
        )
    pm = stripe.PaymentMethod.attach("pm_card_visa", api_key=KEY, customer=cust.id)
    stripe.Customer.modify(cust.id, api_key=KEY, invoice_settings={"default_payment_method": pm.id})
    resumed = stripe.Subscription.resume(sub.id, api_key=KEY)
    assert resumed.status == "active"
    assert invoice_of(resumed).status == "paid"
    assert "customer.subscription.resumed" in emu.event_types()


def test_send_invoice_subscriptions_are_active_with_an_open_invoice(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY, email="ap@example.com")
    sub = subscribe(cust, monthly_price, collection_method="send_invoice", days_until_due=30)
    assert sub.status == "active"
    invoice = invoice_of(sub)
    assert (invoice.status, invoice.collection_method) == ("open", "send_invoice")
    assert invoice.due_date - invoice.status_transitions.finalized_at == 30 * 86400
    assert "invoice.sent" in emu.event_types()


def test_subscription_items_endpoints(emu, customer, monthly_price, client):
    sub = subscribe(customer, monthly_price)
    addon_product = stripe.Product.create(api_key=KEY, name="Extra seats")
    addon = stripe.Price.create(
        api_key=KEY,
        product=addon_product.id,
        currency="usd",
        unit_amount=500,
        recurring={"interval": "month"},
    )
    item = stripe.SubscriptionItem.create(
        api_key=KEY, subscription=sub.id, price=addon.id, quantity=2, proration_behavior="none"
    )
    assert item.id.startswith("si_") and item.quantity == 2
    listed = client.v1.subscription_items.list({"subscription": sub.id})
    assert [i.price.id for i in listed.data] == [monthly_price.id, addon.id]
    assert (
        stripe.SubscriptionItem.modify(item.id, api_key=KEY, quantity=5, proration_behavior="none").quantity
        == 5
    )
    assert stripe.SubscriptionItem.delete(item.id, api_key=KEY, proration_behavior="none").deleted is True
    assert len(stripe.Subscription.retrieve(sub.id, api_key=KEY)["items"].data) == 1
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.modify(
            sub.id, api_key=KEY, items=[{"id": sub["items"].data[0].id, "deleted": True}]
        )


def test_save_default_payment_method_on_subscription(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY)
    sub = subscribe(
        cust,
        monthly_price,
        payment_behavior="default_incomplete",
        payment_settings={"save_default_payment_method": "on_subscription"},
        expand=["latest_invoice.confirmation_secret", "latest_invoice.payments"],
    )
    assert sub.default_payment_method is None
    assert sub.latest_invoice.confirmation_secret.client_secret.startswith("pi_")
    pi_id = sub.latest_invoice.payments.data[0].payment.payment_intent
    stripe.PaymentIntent.confirm(pi_id, api_key=KEY, payment_method="pm_card_visa")
    paid = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert paid.status == "active"
    pm = stripe.PaymentMethod.retrieve(paid.default_payment_method, api_key=KEY)
    assert pm.customer == cust.id


def test_default_incomplete_declined_by_the_customer_fails_the_invoice(emu, monthly_price):
    cust = stripe.Customer.create(api_key=KEY)
    sub = subscribe(
        cust, monthly_price, payment_behavior="default_incomplete", expand=["latest_invoice.payments"]
    )
    pi_id = sub.latest_invoice.payments.data[0].payment.payment_intent
    with pytest.raises(stripe.CardError):
        stripe.PaymentIntent.confirm(
            pi_id, api_key=KEY, payment_method="pm_card_chargeDeclinedInsufficientFunds"
        )
    invoice = stripe.Invoice.retrieve(sub.latest_invoice.id, api_key=KEY)
    assert (invoice.status, invoice.attempt_count) == ("open", 1)
    assert emu.event_types()[-1] == "invoice.payment_failed"
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "incomplete"
    stripe.PaymentIntent.confirm(pi_id, api_key=KEY, payment_method="pm_card_authenticationRequired")
    assert emu.event_types()[-1] == "invoice.payment_action_required"
    emu.complete_authentication(pi_id)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"
    assert stripe.Invoice.retrieve(sub.latest_invoice.id, api_key=KEY).status == "paid"
