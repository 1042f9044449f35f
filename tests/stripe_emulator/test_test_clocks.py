"""Test clocks: the API as Stripe has it, and what advancing one does to subscriptions: renewals,
trials, cancellation at period end, failed payments and the dunning schedule, in time order."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
import stripe

from .conftest import KEY

START = int(datetime(2031, 1, 15, 12, 0, tzinfo=UTC).timestamp())
DAY = 86400
HOUR = 3600  # a renewal invoice stays a draft this long, then is finalized and charged


def ts(year: int, month: int, day: int, hour: int = 12) -> int:
    return int(datetime(year, month, day, hour, 0, tzinfo=UTC).timestamp())


@pytest.fixture
def clock(emu) -> stripe.test_helpers.TestClock:
    return stripe.test_helpers.TestClock.create(api_key=KEY, frozen_time=START, name="January")


def clock_customer(clock, card: str = "pm_card_visa", **kwargs) -> stripe.Customer:
    return stripe.Customer.create(
        api_key=KEY,
        email="clock@example.com",
        test_clock=clock.id,
        payment_method=card,
        invoice_settings={"default_payment_method": card},
        **kwargs,
    )


def advance(clock, to: int) -> stripe.test_helpers.TestClock:
    return stripe.test_helpers.TestClock.advance(clock.id, api_key=KEY, frozen_time=to)


def events_since(emu, marker: int) -> list[dict]:
    return [e for e in emu.events() if emu.store.objects["event"][e["id"]]["_seq"] > marker]


def test_clock_api_create_retrieve_list_delete(emu, client):
    created = client.v1.test_helpers.test_clocks.create({"frozen_time": START, "name": "Q1"})
    assert created.id.startswith("clock_")
    assert (created.object, created.status, created.frozen_time, created.name) == (
        "test_helpers.test_clock",
        "ready",
        START,
        "Q1",
    )
    assert created.deletes_after > created.created
    assert stripe.test_helpers.TestClock.retrieve(created.id, api_key=KEY).frozen_time == START
    assert [c.id for c in stripe.test_helpers.TestClock.list(api_key=KEY).data] == [created.id]
    customer = stripe.Customer.create(api_key=KEY, test_clock=created.id)
    assert customer.test_clock == created.id and customer.created == START
    deleted = stripe.test_helpers.TestClock.delete(created.id, api_key=KEY)
    assert deleted.deleted is True
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).deleted is True  # Stripe deletes its customers
    assert "test_helpers.test_clock.deleted" in emu.event_types()
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Customer.create(api_key=KEY, test_clock="clock_missing")
    assert caught.value.param == "test_clock"


def test_advance_must_move_forward(emu, clock):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        advance(clock, START - 1)
    assert caught.value.param == "frozen_time"


def test_advancing_renews_a_subscription(emu, clock, monthly_price):
    customer = clock_customer(clock)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    item = sub["items"].data[0]
    assert sub.test_clock == clock.id and sub.created == START
    assert (item.current_period_start, item.current_period_end) == (START, ts(2031, 2, 15))
    marker = emu.store.seq

    answer = advance(clock, ts(2031, 2, 20))
    assert answer.status == "advancing"  # as Stripe answers; the work is done by then
    assert stripe.test_helpers.TestClock.retrieve(clock.id, api_key=KEY).status == "ready"

    renewed = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    item = renewed["items"].data[0]
    assert renewed.status == "active"
    assert (item.current_period_start, item.current_period_end) == (ts(2031, 2, 15), ts(2031, 3, 15))
    invoice = stripe.Invoice.retrieve(renewed.latest_invoice, api_key=KEY)
    assert (invoice.billing_reason, invoice.status, invoice.amount_paid) == (
        "subscription_cycle",
        "paid",
        3000,
    )
    assert invoice.created == ts(2031, 2, 15)
    assert invoice.lines.data[0].period.start == ts(2031, 2, 15)
    charges = stripe.Charge.list(api_key=KEY, customer=customer.id).data
    assert [c.amount for c in charges] == [3000, 3000] and charges[0].created == ts(2031, 2, 15) + HOUR

    events = events_since(emu, marker)
    types = [e["type"] for e in events]
    assert types[0] == "test_helpers.test_clock.advancing" and types[-1] == "test_helpers.test_clock.ready"
    for expected in ["invoice.created", "invoice.finalized", "invoice.paid", "customer.subscription.updated"]:
        assert expected in types
    renewal = [e for e in events if not e["type"].startswith(("test_helpers", "payout"))]
    assert [e["type"] for e in renewal].index("invoice.created") < types.index("invoice.finalized")
    created = next(e for e in renewal if e["type"] == "invoice.created")
    assert created["data"]["object"]["status"] == "draft"
    assert created["data"]["object"]["automatically_finalizes_at"] == ts(2031, 2, 15) + HOUR
    assert {e["created"] for e in renewal} == {ts(2031, 2, 15), ts(2031, 2, 15) + HOUR}
    updated = next(e for e in events if e["type"] == "customer.subscription.updated")
    assert updated["data"]["previous_attributes"]["items"]["current_period_start"] == START


def test_three_renewals_come_in_time_order(emu, clock, monthly_price):
    customer = clock_customer(clock)
    stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    marker = emu.store.seq
    advance(clock, ts(2031, 3, 14))  # Stripe moves a clock at most two intervals at a time
    advance(clock, ts(2031, 4, 20))
    paid = [e for e in events_since(emu, marker) if e["type"] == "invoice.paid"]
    assert [e["created"] for e in paid] == [
        ts(2031, 2, 15) + HOUR,
        ts(2031, 3, 15) + HOUR,
        ts(2031, 4, 15) + HOUR,
    ]
    created = [e["created"] for e in events_since(emu, marker) if not e["type"].startswith("test_helpers")]
    assert created == sorted(created)
    assert len(stripe.Invoice.list(api_key=KEY, customer=customer.id).data) == 4


def test_trial_will_end_three_days_before_then_the_first_charge(emu, clock, monthly_price):
    customer = clock_customer(clock)
    sub = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], trial_period_days=14
    )
    trial_end = START + 14 * DAY
    advance(clock, trial_end - 3 * DAY - 60)
    assert "customer.subscription.trial_will_end" not in emu.event_types()
    advance(clock, trial_end - DAY)
    warned = emu.events("customer.subscription.trial_will_end")
    assert [e["created"] for e in warned] == [trial_end - 3 * DAY]
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "trialing"
    assert emu.objects("charge") == []
    advance(clock, trial_end + DAY)
    after = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert after.status == "active" and after.trial_end == trial_end
    invoice = stripe.Invoice.retrieve(after.latest_invoice, api_key=KEY)
    assert (invoice.status, invoice.amount_paid, invoice.created) == ("paid", 3000, trial_end)
    assert after["items"].data[0].current_period_start == trial_end
    assert len(emu.events("customer.subscription.trial_will_end")) == 1


def test_cancel_at_period_end_is_applied_at_the_period_end(emu, clock, monthly_price):
    customer = clock_customer(clock)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    stripe.Subscription.modify(sub.id, api_key=KEY, cancel_at_period_end=True)
    advance(clock, ts(2031, 2, 14))
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"
    advance(clock, ts(2031, 2, 16))
    ended = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert (ended.status, ended.ended_at) == ("canceled", ts(2031, 2, 15))
    assert [e["created"] for e in emu.events("customer.subscription.deleted")] == [ts(2031, 2, 15)]
    assert len(emu.objects("charge")) == 1  # no renewal was charged


def test_failed_renewal_goes_past_due_retries_on_schedule_then_cancels(emu, clock, monthly_price):
    customer = clock_customer(clock)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    failing = stripe.PaymentMethod.attach("pm_card_chargeCustomerFail", api_key=KEY, customer=customer.id)
    stripe.Customer.modify(customer.id, api_key=KEY, invoice_settings={"default_payment_method": failing.id})
    renewal = ts(2031, 2, 15) + HOUR  # when the renewal invoice is finalized and charged
    advance(clock, renewal - 60)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "active"  # its invoice is a draft
    advance(clock, renewal + 60)
    past_due = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert past_due.status == "past_due"
    invoice = stripe.Invoice.retrieve(past_due.latest_invoice, api_key=KEY)
    assert (invoice.status, invoice.attempt_count, invoice.next_payment_attempt) == (
        "open",
        1,
        renewal + 3 * DAY,
    )

    advance(clock, renewal + 20 * DAY)
    failures = emu.events("invoice.payment_failed")
    assert [e["created"] for e in failures] == [
        renewal,
        renewal + 3 * DAY,
        renewal + 8 * DAY,
        renewal + 15 * DAY,
    ]
    assert [e["data"]["object"]["attempt_count"] for e in failures] == [1, 2, 3, 4]
    canceled = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert canceled.status == "canceled" and canceled.cancellation_details.reason == "payment_failed"
    assert canceled.ended_at == renewal + 15 * DAY
    assert stripe.Invoice.retrieve(invoice.id, api_key=KEY).next_payment_attempt is None


def test_final_action_unpaid_and_a_custom_schedule(emu, clock, monthly_price):
    emu.settings(retry_days=[1, 2], final_action="unpaid")
    customer = clock_customer(clock, card="pm_card_chargeCustomerFail")
    sub = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], trial_period_days=7
    )
    trial_end = START + 7 * DAY
    advance(clock, trial_end + 10 * DAY)
    failures = emu.events("invoice.payment_failed")
    first = trial_end + HOUR
    assert [e["created"] for e in failures] == [first, first + DAY, first + 3 * DAY]
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "unpaid"


def test_a_retry_recovers_after_the_card_is_replaced(emu, clock, monthly_price):
    customer = clock_customer(clock)
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    emu.faults.add(decline="insufficient_funds")  # the renewal's charge is declined, once
    advance(clock, ts(2031, 2, 16))
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "past_due"
    failed = emu.events("invoice.payment_failed")[-1]["data"]["object"]
    assert emu.events("charge.failed")[-1]["data"]["object"]["outcome"]["reason"] == "insufficient_funds"
    advance(clock, ts(2031, 2, 19))  # the first retry, three days later, with the same card
    recovered = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert recovered.status == "active"
    invoice = stripe.Invoice.retrieve(failed["id"], api_key=KEY)
    assert (invoice.status, invoice.attempt_count) == ("paid", 2)
    assert invoice.status_transitions.paid_at == ts(2031, 2, 18) + HOUR


def test_incomplete_subscriptions_expire_after_23_hours(emu, clock, monthly_price):
    customer = stripe.Customer.create(api_key=KEY, test_clock=clock.id)
    sub = stripe.Subscription.create(
        api_key=KEY,
        customer=customer.id,
        items=[{"price": monthly_price.id}],
        payment_behavior="default_incomplete",
    )
    advance(clock, START + 22 * 3600)
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).status == "incomplete"
    advance(clock, START + DAY)
    expired = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert expired.status == "incomplete_expired"
    assert stripe.Invoice.retrieve(expired.latest_invoice, api_key=KEY).status == "void"
    assert (
        emu.events("customer.subscription.updated")[-1]["data"]["previous_attributes"]["status"]
        == "incomplete"
    )


def test_other_customers_are_not_moved_by_a_test_clock(emu, clock, customer, monthly_price):
    plain = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    advance(clock, START + 400 * DAY)
    assert stripe.Subscription.retrieve(plain.id, api_key=KEY).latest_invoice == plain.latest_invoice


def test_webhook_signatures_use_real_time_not_the_clock(emu, clock, monthly_price):
    received = []
    emu.set_webhook_transport(lambda url, headers, body: received.append((headers, body)) or 200)
    endpoint = emu.create_webhook_endpoint("https://example.com/hook")
    customer = clock_customer(clock)
    stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    advance(clock, ts(2031, 2, 16))
    emu.deliver_webhooks()
    renewals = []
    for headers, body in received:
        event = stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], endpoint["secret"])
        signed_at = int(headers["Stripe-Signature"].split(",")[0].split("=")[1])
        assert abs(signed_at - time.time()) < 60
        if (
            event.type == "invoice.paid"
            and json.loads(body)["data"]["object"]["billing_reason"] == "subscription_cycle"
        ):
            renewals.append(event.created)
    assert renewals == [ts(2031, 2, 15) + HOUR]  # the event itself carries the clock's time


def test_advance_a_customer_without_a_test_clock(emu, customer, monthly_price):
    emu.clock.freeze()
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    end = sub["items"].data[0].current_period_end
    other = stripe.Customer.create(
        api_key=KEY,
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
    )
    other_sub = stripe.Subscription.create(
        api_key=KEY, customer=other.id, items=[{"price": monthly_price.id}]
    )
    # 32 days: past the renewal (a month has up to 31 days) and the hour before its invoice is paid
    result = emu.advance(days=32, customer=customer.id)
    assert "invoice.paid" in result["events"] and result["to"] - result["from"] == 32 * DAY
    renewed = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert renewed["items"].data[0].current_period_start == end
    assert stripe.Invoice.retrieve(renewed.latest_invoice, api_key=KEY).billing_reason == "subscription_cycle"
    assert stripe.Subscription.retrieve(other_sub.id, api_key=KEY).latest_invoice == other_sub.latest_invoice
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).test_clock is None  # nothing visible changed


def test_advance_everyone_moves_the_emulator_clock_and_every_test_clock(emu, clock, customer, monthly_price):
    emu.clock.freeze()
    before = emu.clock.now()
    plain = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    clocked = stripe.Subscription.create(
        api_key=KEY, customer=clock_customer(clock).id, items=[{"price": monthly_price.id}]
    )
    emu.advance(days=32)
    assert emu.clock.now() == before + 32 * DAY
    assert stripe.test_helpers.TestClock.retrieve(clock.id, api_key=KEY).frozen_time == START + 32 * DAY
    for sub in (plain, clocked):
        latest = stripe.Subscription.retrieve(sub.id, api_key=KEY).latest_invoice
        assert latest != sub.latest_invoice


def test_tick_runs_what_real_time_made_due(emu, customer, monthly_price):
    emu.clock.freeze()
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    assert emu.tick() == 0
    emu.clock.advance(65 * DAY)  # time passes without anyone asking for a renewal
    assert emu.tick() >= 1
    renewed = stripe.Subscription.retrieve(sub.id, api_key=KEY)
    assert renewed.latest_invoice != sub.latest_invoice
    assert renewed["items"].data[0].current_period_end > emu.clock.now()  # caught up: two renewals
    assert len(stripe.Invoice.list(api_key=KEY, subscription=sub.id).data) == 3


def test_admin_paths_for_time_and_dunning(emu, customer, monthly_price):
    status, _, body = emu.handle("POST", "/_emulator/settings", None, "retry_days=2,4&final_action=unpaid")
    assert status == 200 and json.loads(body) == {"retry_days": [2, 4], "final_action": "unpaid"}
    assert emu.handle("POST", "/_emulator/settings", None, "final_action=explode")[0] == 400
    sub = stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    status, _, body = emu.handle("POST", "/_emulator/advance", None, f"days=32&customer={customer.id}")
    assert status == 200 and "invoice.paid" in json.loads(body)["events"]
    assert stripe.Subscription.retrieve(sub.id, api_key=KEY).latest_invoice != sub.latest_invoice
    status, _, body = emu.handle("GET", "/_emulator/time")
    assert json.loads(body)["shifted_customers"] == {customer.id: 32 * DAY}
    status, headers, _ = emu.handle("POST", "/_emulator/advance", None, "days=1&_from_page=1")
    assert status == 303 and headers["Location"] == "/_emulator"
    status, _, page = emu.handle("GET", "/_emulator")
    assert status == 200 and sub.id in page.decode() and "invoice.paid" in page.decode()
