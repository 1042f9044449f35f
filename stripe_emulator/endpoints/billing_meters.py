"""Billing meters: `/v1/billing/meters`, `meter_events`, `meter_event_adjustments` (rules: `meters.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import objects
from ..errors import InvalidRequestError, ResourceMissing, invalid, missing
from ..meters import DEDUP_WINDOW, FORMULAS, meter_for, record_event, summaries
from ..params import Params
from ..routing import api
from ..store import paginate
from .common import Obj

if TYPE_CHECKING:
    from ..app import Context


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
