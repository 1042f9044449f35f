"""Usage sent to Stripe meters (the usage app decides what to send; this is the gateway)."""

from __future__ import annotations

import time

from djstripe.models import Customer

from .. import stripe_api


def stripe_meter_event_send(
    *, event_name: str, customer_id: str, value: int, identifier: str, timestamp: int
) -> bool:
    """Send one meter event. True when Stripe recorded it, False when it already had one with
    this identifier (a replay: nothing counted twice). Raises `StripeRateLimited` on 429,
    `StripeUnavailable` on outages, `StripeRequestError` when Stripe refuses it."""
    try:
        stripe_api.meter_event_create(
            event_name=event_name,
            customer_id=customer_id,
            value=value,
            identifier=identifier,
            timestamp=timestamp,
        )
    except stripe_api.MeterEventDuplicate:
        return False
    return True


def stripe_meter_usage_total(*, meter_id: str, customer_id: str, start_time: int, end_time: int) -> int:
    """What a Stripe meter counted for the customer over [start_time, end_time) (minute-aligned)."""
    return stripe_api.meter_event_summary_total(
        meter_id=meter_id, customer_id=customer_id, start_time=start_time, end_time=end_time
    )


def stripe_customer_now(*, customer_id: str) -> int:
    """Stripe's "now" for a customer, in seconds: the frozen time of its test clock when it has
    one (test mode: Stripe judges the customer's meter events, invoices and periods by it), the
    real time otherwise. One API call for a customer on a test clock, none otherwise."""
    row = Customer.objects.filter(id=customer_id).values_list("stripe_data", flat=True).first()
    clock_id = (row or {}).get("test_clock")
    if isinstance(clock_id, dict):
        clock_id = clock_id.get("id")
    if not clock_id:
        return int(time.time())
    return int(stripe_api.test_clock_retrieve(clock_id=clock_id)["frozen_time"])
