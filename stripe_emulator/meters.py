"""Billing meters (`billing.meter`), meter events and their summaries, and the usage a metered
price bills at the end of each period.

A meter aggregates the events sent with its `event_name` per customer (`sum`, `count` or `last`).
An event counts for the meter that was active with its name when it arrived; events for a name
no active meter has are accepted and never counted (Stripe reports those asynchronously).
Identifiers are unique for 24 hours (a repeat is refused, `Stripe-Should-Retry: false`), timestamps
must lie within the past 35 days and at most 5 minutes ahead, values are integers.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from . import objects
from .errors import InvalidRequestError, invalid
from .store import public

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]
DEDUP_WINDOW = 24 * 3600
MAX_AGE = 35 * 86400
MAX_AHEAD = 5 * 60
FORMULAS = ("sum", "count", "last")


# ---------------------------------------------------------------------- rules
def meter_for(ctx: Context, event_name: str) -> Obj | None:
    return next(
        (m for m in ctx.store.all("meter") if m["event_name"] == event_name and m["status"] == "active"),
        None,
    )


def events_of(ctx: Context, meter: Obj, customer_id: str, start: int, end: int) -> list[Obj]:
    """The meter's live events for a customer with `start <= timestamp < end`, oldest first."""
    key = meter["customer_mapping"]["event_payload_key"]
    found = [
        e
        for e in ctx.store.all("meter_event")
        if e.get("_meter") == meter["id"]
        and not e.get("_cancelled")
        and e["payload"].get(key) == customer_id
        and start <= e["timestamp"] < end
    ]
    found.sort(key=lambda e: (e["timestamp"], e["_seq"]))
    return found


def aggregate(ctx: Context, meter: Obj, customer_id: str, start: int, end: int) -> int:
    events = events_of(ctx, meter, customer_id, start, end)
    formula = meter["default_aggregation"]["formula"]
    if formula == "count":
        return len(events)
    values = [e["_value"] for e in events]
    if formula == "last":
        return values[-1] if values else 0
    return sum(values)


def record_event(
    ctx: Context,
    event_name: str,
    payload: dict[str, str],
    identifier: str | None = None,
    timestamp: int | None = None,
) -> Obj:
    """Validates and stores one meter event; returns it as the API serves it."""
    meter = meter_for(ctx, event_name)
    value = 1
    customer_id = None
    if meter is not None:
        customer_key = meter["customer_mapping"]["event_payload_key"]
        value_key = meter["value_settings"]["event_payload_key"]
        customer_id = payload.get(customer_key)
        if not customer_id:
            raise InvalidRequestError(
                f"Missing the customer mapping key `{customer_key}` in the event payload.",
                code="parameter_missing",
                param=f"payload[{customer_key}]",
            )
        raw = payload.get(value_key)
        if raw in (None, "") and meter["default_aggregation"]["formula"] != "count":
            raise InvalidRequestError(
                f"Missing the value key `{value_key}` in the event payload.",
                code="parameter_missing",
                param=f"payload[{value_key}]",
            )
        if raw not in (None, ""):
            try:
                value = int(str(raw))
            except ValueError:
                raise InvalidRequestError(
                    f"Invalid value `{raw}` for `{value_key}`: meter event values must be integers.",
                    code="parameter_invalid_integer",
                    param=f"payload[{value_key}]",
                ) from None
    customer = ctx.store.get("customer", customer_id) if customer_id else None
    now = ctx.now(customer)
    if timestamp is None:
        timestamp = now
    if timestamp < now - MAX_AGE or timestamp > now + MAX_AHEAD:
        raise invalid(
            "timestamp",
            "The timestamp must be within the past 35 calendar days and no more than 5 minutes in the "
            "future.",
            "parameter_invalid_integer",
        )
    created = ctx.now()  # Stripe's own time: the dedup window is real, test clocks or not
    if identifier is None:
        identifier = ctx.store.new_id("meter_event", 20)
    existing = ctx.store.get("meter_event", identifier)
    if existing is not None:
        if created - existing["created"] < DEDUP_WINDOW:
            raise InvalidRequestError(
                f"An event already exists with identifier {identifier}.",
                param="identifier",
                headers={"Stripe-Should-Retry": "false"},
            )
        # Older than the window: the identifier may be used again; keep the old event under another key.
        ctx.store.objects["meter_event"].pop(identifier)
        existing["id"] = f"{identifier}@{existing['created']}"
        ctx.store.objects["meter_event"][existing["id"]] = existing
    event = objects.meter_event(identifier, created, event_name, dict(payload), timestamp)
    event["_meter"] = meter["id"] if meter else None
    event["_value"] = value
    ctx.store.add("meter_event", event)
    return served_event(event)


def served_event(event: Obj) -> Obj:
    data = public(event)
    data.pop("id", None)
    return data


def summaries(
    ctx: Context, meter: Obj, customer_id: str, start: int, end: int, window: str | None
) -> list[Obj]:
    """One summary for [start, end), or one per hour/day window; newest first."""
    step = {"hour": 3600, "day": 86400}.get(window or "")
    bounds = []
    if step is None:
        bounds.append((start, end))
    else:
        cursor = start
        while cursor < end:
            bounds.append((cursor, min(cursor + step, end)))
            cursor += step
    out = []
    for lo, hi in reversed(bounds):
        digest = hashlib.sha256(f"{meter['id']}:{customer_id}:{lo}:{hi}".encode()).hexdigest()[:24]
        out.append(
            objects.meter_event_summary(
                f"mtrusg_{digest}", meter["id"], lo, hi, aggregate(ctx, meter, customer_id, lo, hi)
            )
        )
    return out
