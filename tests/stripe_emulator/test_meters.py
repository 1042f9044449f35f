"""Billing meters, meter events (identifiers, timestamps, values), event summaries per customer
and window, and metered prices billed on the renewal invoice."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import stripe

from .conftest import KEY

HOUR, DAY = 3600, 86400


def midnight(ts: int) -> int:
    dt = datetime.fromtimestamp(ts, UTC)
    return int(datetime(dt.year, dt.month, dt.day, tzinfo=UTC).timestamp())


@pytest.fixture
def meter(emu) -> stripe.billing.Meter:
    return stripe.billing.Meter.create(
        api_key=KEY,
        display_name="API requests",
        event_name="api_request",
        default_aggregation={"formula": "sum"},
    )


def send(event_name: str, customer_id: str, value, **kwargs) -> stripe.billing.MeterEvent:
    return stripe.billing.MeterEvent.create(
        api_key=KEY,
        event_name=event_name,
        payload={"stripe_customer_id": customer_id, "value": str(value)},
        **kwargs,
    )


def test_meter_create_list_update_deactivate_reactivate(emu, meter, client):
    assert meter.id.startswith("mtr_") and meter.object == "billing.meter"
    assert (meter.status, meter.event_name, meter.default_aggregation.formula) == (
        "active",
        "api_request",
        "sum",
    )
    assert meter.customer_mapping.to_dict() == {"event_payload_key": "stripe_customer_id", "type": "by_id"}
    assert meter.value_settings.event_payload_key == "value"
    renamed = stripe.billing.Meter.modify(meter.id, api_key=KEY, display_name="Requests")
    assert renamed.display_name == "Requests"
    inactive = stripe.billing.Meter.deactivate(meter.id, api_key=KEY)
    assert inactive.status == "inactive" and inactive.status_transitions.deactivated_at is not None
    assert stripe.billing.Meter.list(api_key=KEY, status="active").data == []
    assert [m.id for m in client.v1.billing.meters.list({"status": "inactive"}).data] == [meter.id]
    assert stripe.billing.Meter.reactivate(meter.id, api_key=KEY).status == "active"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.billing.Meter.create(
            api_key=KEY,
            display_name="Again",
            event_name="api_request",
            default_aggregation={"formula": "count"},
        )
    assert caught.value.param == "event_name"
    assert {"billing.meter.created", "billing.meter.deactivated", "billing.meter.reactivated"} <= set(
        emu.event_types()
    )


def test_meter_event_shape_and_validation(emu, meter, customer):
    event = send("api_request", customer.id, 25, identifier="req-1")
    assert (event.object, event.event_name, event.identifier) == (
        "billing.meter_event",
        "api_request",
        "req-1",
    )
    assert event.payload.to_dict() == {"stripe_customer_id": customer.id, "value": "25"}
    assert abs(event.timestamp - emu.clock.now()) <= 1
    with pytest.raises(stripe.InvalidRequestError, match="already exists with identifier req-1") as caught:
        send("api_request", customer.id, 5, identifier="req-1")
    assert caught.value.headers.get("stripe-should-retry") == "false"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        send("api_request", customer.id, 1, timestamp=emu.clock.now() - 36 * DAY)
    assert caught.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        send("api_request", customer.id, 1, timestamp=emu.clock.now() + 10 * 60)
    assert caught.value.param == "timestamp"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        send("api_request", customer.id, "2.5")
    assert caught.value.param == "payload[value]"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.billing.MeterEvent.create(api_key=KEY, event_name="api_request", payload={"value": "3"})
    assert caught.value.param == "payload[stripe_customer_id]"
    assert send("api_request", customer.id, 1, timestamp=emu.clock.now() - 34 * DAY).identifier


def test_identifiers_can_be_reused_after_24_hours(emu, meter, customer):
    emu.clock.freeze()
    send("api_request", customer.id, 1, identifier="daily")
    emu.clock.advance(DAY - 1)
    with pytest.raises(stripe.InvalidRequestError):
        send("api_request", customer.id, 1, identifier="daily")
    emu.clock.advance(2)
    assert send("api_request", customer.id, 1, identifier="daily").identifier == "daily"


@pytest.mark.parametrize(("formula", "expected"), [("sum", 17), ("count", 3), ("last", 2)])
def test_summaries_per_customer_and_window(emu, customer, formula, expected):
    emu.clock.freeze(1_900_000_000)
    day = midnight(emu.clock.now()) - 2 * DAY
    meter = stripe.billing.Meter.create(
        api_key=KEY, display_name="Tokens", event_name="tokens", default_aggregation={"formula": formula}
    )
    other = stripe.Customer.create(api_key=KEY)
    send("tokens", customer.id, 10, timestamp=day + HOUR)
    send("tokens", customer.id, 5, timestamp=day + DAY + HOUR)
    send("tokens", customer.id, 2, timestamp=day + DAY + 2 * HOUR)
    send("tokens", other.id, 100, timestamp=day + HOUR)
    send("not_metered", customer.id, 1000, timestamp=day + HOUR)  # no meter has this name: never counted
    whole = stripe.billing.Meter.list_event_summaries(
        meter.id, api_key=KEY, customer=customer.id, start_time=day, end_time=day + 2 * DAY
    ).data
    assert len(whole) == 1
    assert (whole[0].aggregated_value, whole[0].start_time, whole[0].end_time) == (
        expected,
        day,
        day + 2 * DAY,
    )
    assert whole[0].object == "billing.meter_event_summary" and whole[0].meter == meter.id
    daily = stripe.billing.Meter.list_event_summaries(
        meter.id,
        api_key=KEY,
        customer=customer.id,
        start_time=day,
        end_time=day + 2 * DAY,
        value_grouping_window="day",
    ).data
    assert [s.start_time for s in daily] == [day + DAY, day]  # newest first
    first_day = {"sum": 10, "count": 1, "last": 10}[formula]
    assert [s.aggregated_value for s in daily][::-1][0] == first_day
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.billing.Meter.list_event_summaries(
            meter.id, api_key=KEY, customer=customer.id, start_time=day + 30, end_time=day + DAY
        )
    assert caught.value.param == "start_time"


def test_cancelled_events_do_not_count(emu, meter, customer):
    emu.clock.freeze(1_900_000_000)
    start = midnight(emu.clock.now())
    send("api_request", customer.id, 4, identifier="keep", timestamp=start + 60)
    send("api_request", customer.id, 6, identifier="oops", timestamp=start + 60)
    adjustment = stripe.billing.MeterEventAdjustment.create(
        api_key=KEY, event_name="api_request", type="cancel", cancel={"identifier": "oops"}
    )
    assert adjustment.object == "billing.meter_event_adjustment" and adjustment.cancel.identifier == "oops"
    summary = stripe.billing.Meter.list_event_summaries(
        meter.id, api_key=KEY, customer=customer.id, start_time=start, end_time=start + DAY
    ).data[0]
    assert summary.aggregated_value == 4


def test_metered_price_is_billed_on_the_renewal_invoice(emu, meter):
    clock = stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=1_900_000_000)
    customer = stripe.Customer.create(
        api_key=KEY,
        test_clock=clock.id,
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
    )
    product = stripe.Product.create(api_key=KEY, name="API")
    base = stripe.Price.create(
        api_key=KEY, product=product.id, currency="usd", unit_amount=1000, recurring={"interval": "month"}
    )
    per_request = stripe.Price.create(
        api_key=KEY,
        product=product.id,
        currency="usd",
        unit_amount=3,
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Price.create(
            api_key=KEY,
            product=product.id,
            currency="usd",
            unit_amount=3,
            recurring={"interval": "month", "usage_type": "metered"},
        )
    assert caught.value.param == "recurring[meter]"
    sub = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": base.id}, {"price": per_request.id}]
    )
    first = stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY)
    assert first.amount_paid == 1000  # usage is billed in arrears
    start, end = sub["items"].data[0].current_period_start, sub["items"].data[0].current_period_end
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=start + 2 * DAY)
    send("api_request", customer.id, 700, timestamp=start + DAY)
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=end - HOUR)
    send("api_request", customer.id, 300)  # at the clock's time
    with pytest.raises(stripe.InvalidRequestError):  # "now" is the clock's time: this is in the future
        send("api_request", customer.id, 1, timestamp=end + DAY)
    preview = stripe.Invoice.create_preview(api_key=KEY, customer=customer.id, subscription=sub.id)
    assert preview.total == 1000 + 1000 * 3
    stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=end + HOUR)
    send("api_request", customer.id, 50, timestamp=end + 60)  # the next period's usage
    renewal = stripe.Invoice.retrieve(
        stripe.Subscription.retrieve(sub.id, api_key=KEY).latest_invoice, api_key=KEY
    )
    assert renewal.billing_reason == "subscription_cycle" and renewal.status == "paid"
    lines = {line.pricing.price_details.price: line for line in renewal.lines.data}
    assert (lines[per_request.id].quantity, lines[per_request.id].amount) == (1000, 3000)
    assert (lines[per_request.id].period.start, lines[per_request.id].period.end) == (start, end)
    assert lines[base.id].amount == 1000 and lines[base.id].period.start == end
    assert renewal.amount_paid == 4000


def test_checkout_takes_a_metered_price_without_quantity_and_charges_nothing_for_it(emu, meter):
    product = stripe.Product.create(api_key=KEY, name="API")
    base = stripe.Price.create(
        api_key=KEY, product=product.id, currency="usd", unit_amount=1000, recurring={"interval": "month"}
    )
    usage = stripe.Price.create(
        api_key=KEY,
        product=product.id,
        currency="usd",
        unit_amount=3,
        recurring={"interval": "month", "usage_type": "metered", "meter": meter.id},
    )
    session = stripe.checkout.Session.create(
        api_key=KEY,
        mode="subscription",
        line_items=[{"price": base.id, "quantity": 1}, {"price": usage.id}],
        success_url="https://app.example.com/ok",
    )
    assert session.amount_total == 1000
    assert emu.checkout_submit(session.id, "success")["status"] == "complete"
    sub = stripe.Subscription.retrieve(
        stripe.checkout.Session.retrieve(session.id, api_key=KEY).subscription, api_key=KEY
    )
    assert sorted(i.price.id for i in sub["items"].data) == sorted([base.id, usage.id])
    assert stripe.Invoice.retrieve(sub.latest_invoice, api_key=KEY).amount_paid == 1000
