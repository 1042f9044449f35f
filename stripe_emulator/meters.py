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
from .app import api
from .errors import InvalidRequestError, ResourceMissing, invalid, missing
from .params import Params
from .store import paginate, public

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


# ---------------------------------------------------------------------- endpoints
def _meter(ctx: Context, meter_id: str) -> Obj:
    return ctx.store.require("meter", meter_id)


@api(
    "POST",
    "/v1/billing/meters",
    allowed={
        "display_name",
        "event_name",
        "default_aggregation",
        "customer_mapping",
        "value_settings",
        "event_time_window",
    },
)
def meter_create(ctx: Context, p: Params) -> Obj:
    display_name = p.str("display_name", required=True)
    event_name = p.str("event_name", required=True) or ""
    formula = p.dict("default_aggregation").enum("formula", FORMULAS)
    if formula is None:
        raise missing("default_aggregation[formula]")
    if any(m["event_name"] == event_name for m in ctx.store.all("meter")):
        raise InvalidRequestError(
            f"A meter with event_name `{event_name}` already exists.",
            code="resource_already_exists",
            param="event_name",
        )
    meter = objects.meter(ctx.store.new_id("meter", 24), ctx.now(), display_name or "", event_name)
    meter["default_aggregation"]["formula"] = formula
    mapping = p.dict("customer_mapping")
    if "customer_mapping" in p:
        meter["customer_mapping"] = {
            "event_payload_key": mapping.str("event_payload_key", required=True),
            "type": mapping.enum("type", ["by_id"], "by_id"),
        }
    if "value_settings" in p:
        meter["value_settings"] = {
            "event_payload_key": p.dict("value_settings").str("event_payload_key", required=True)
        }
    meter["event_time_window"] = p.enum("event_time_window", ["day", "hour"])
    ctx.store.add("meter", meter)
    ctx.emit("billing.meter.created", meter)
    return meter


@api("GET", "/v1/billing/meters/{meter_id}", allowed=set())
def meter_retrieve(ctx: Context, p: Params, meter_id: str) -> Obj:
    return _meter(ctx, meter_id)


@api("POST", "/v1/billing/meters/{meter_id}", allowed={"display_name"})
def meter_update(ctx: Context, p: Params, meter_id: str) -> Obj:
    meter = _meter(ctx, meter_id)
    if "display_name" in p:
        before = {"display_name": meter["display_name"]}
        meter["display_name"] = p.str("display_name", required=True)
        meter["updated"] = ctx.now()
        ctx.emit("billing.meter.updated", meter, before)
    return meter


@api("GET", "/v1/billing/meters", allowed={"status"})
def meter_list(ctx: Context, p: Params) -> Obj:
    status = p.enum("status", ["active", "inactive"])
    items = [m for m in reversed(ctx.store.all("meter")) if status in (None, m["status"])]
    return paginate(items, p, "/v1/billing/meters", "meter")


def _set_status(ctx: Context, meter: Obj, status: str) -> Obj:
    if meter["status"] == status:
        raise InvalidRequestError(f"This meter is already {status}.", param="id")
    if status == "active" and meter_for(ctx, meter["event_name"]) is not None:
        raise InvalidRequestError("Another active meter uses this event_name.", param="id")
    before = {"status": meter["status"], "status_transitions": dict(meter["status_transitions"])}
    meter["status"] = status
    meter["status_transitions"]["deactivated_at"] = ctx.now() if status == "inactive" else None
    meter["updated"] = ctx.now()
    ctx.emit(
        "billing.meter.deactivated" if status == "inactive" else "billing.meter.reactivated", meter, before
    )
    return meter


@api("POST", "/v1/billing/meters/{meter_id}/deactivate", allowed=set())
def meter_deactivate(ctx: Context, p: Params, meter_id: str) -> Obj:
    return _set_status(ctx, _meter(ctx, meter_id), "inactive")


@api("POST", "/v1/billing/meters/{meter_id}/reactivate", allowed=set())
def meter_reactivate(ctx: Context, p: Params, meter_id: str) -> Obj:
    return _set_status(ctx, _meter(ctx, meter_id), "active")


def _aligned(p: Params, key: str, step: int) -> int:
    value = p.int(key, required=True)
    assert value is not None
    if value % step:
        unit = {60: "minute", 3600: "hour", 86400: "day"}[step]
        raise invalid(key, f"{key} must be aligned with {unit} boundaries.", "parameter_invalid_integer")
    return value


@api(
    "GET",
    "/v1/billing/meters/{meter_id}/event_summaries",
    allowed={"customer", "start_time", "end_time", "value_grouping_window"},
)
def meter_event_summaries(ctx: Context, p: Params, meter_id: str) -> Obj:
    meter = _meter(ctx, meter_id)
    customer_id = p.str("customer", required=True) or ""
    if ctx.store.get("customer", customer_id) is None:
        raise ResourceMissing("customer", customer_id, param="customer")
    window = p.enum("value_grouping_window", ["day", "hour"])
    step = {"day": 86400, "hour": 3600}.get(window or "", 60)
    start, end = _aligned(p, "start_time", step), _aligned(p, "end_time", step)
    if end <= start:
        raise invalid("end_time", "end_time must be after start_time.", "parameter_invalid_integer")
    items = summaries(ctx, meter, customer_id, start, end, window)
    return paginate(items, p, f"/v1/billing/meters/{meter_id}/event_summaries", "billing.meter_event_summary")


@api("POST", "/v1/billing/meter_events", allowed={"event_name", "payload", "identifier", "timestamp"})
def meter_event_create(ctx: Context, p: Params) -> Obj:
    event_name = p.str("event_name", required=True) or ""
    payload = p.raw("payload")
    if not isinstance(payload, dict) or not payload:
        raise missing("payload")
    return record_event(
        ctx,
        event_name,
        {str(k): str(v) for k, v in payload.items()},
        identifier=p.str("identifier"),
        timestamp=p.int("timestamp"),
    )


@api("POST", "/v1/billing/meter_event_adjustments", allowed={"event_name", "type", "cancel"})
def meter_event_adjustment_create(ctx: Context, p: Params) -> Obj:
    event_name = p.str("event_name", required=True)
    kind = p.enum("type", ["cancel"], "cancel")
    identifier = p.dict("cancel").str("identifier", required=True)
    event = ctx.store.get("meter_event", identifier)
    if event is not None and event["event_name"] == event_name:
        if ctx.now() - event["created"] > DEDUP_WINDOW:
            raise InvalidRequestError(
                "Meter events can only be canceled within 24 hours of being received.",
                param="cancel[identifier]",
            )
        event["_cancelled"] = True
    return {
        "object": "billing.meter_event_adjustment",
        "cancel": {"identifier": identifier},
        "event_name": event_name,
        "livemode": False,
        "status": "complete" if event is not None else "pending",
        "type": kind,
    }
