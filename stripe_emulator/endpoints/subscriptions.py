"""Subscriptions: `/v1/subscriptions` (create, update, cancel, resume, list; rules in `subscriptions.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing, subscriptions
from ..errors import InvalidRequestError, invalid, missing
from ..params import Params, merge_metadata, object_param, price_param
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

SUB_CREATE_FIELDS = {
    "customer",
    "items",
    "trial_period_days",
    "trial_end",
    "trial_from_plan",
    "default_payment_method",
    "payment_behavior",
    "collection_method",
    "days_until_due",
    "metadata",
    "description",
    "cancel_at_period_end",
    "cancel_at",
    "off_session",
    "proration_behavior",
    "add_invoice_items",
    "trial_settings",
    "payment_settings",
    "currency",
    "automatic_tax",
    "default_tax_rates",
    "discounts",
    "billing_cycle_anchor",
    "backdate_start_date",
    "expand",
    "on_behalf_of",
    "application_fee_percent",
    "transfer_data",
    "pending_invoice_item_interval",
    "billing_thresholds",
    "invoice_settings",
    "billing_mode",
    "billing_cycle_anchor_config",
    "default_source",
}


def _sub_pm(ctx: Context, p: Params, customer: Obj) -> Obj | None:
    pm_id = p.str("default_payment_method")
    if not pm_id:
        return None
    pm = object_param(ctx, "payment_method", pm_id, "default_payment_method")
    if pm["customer"] != customer["id"]:
        raise InvalidRequestError(
            f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
            "attached "
            "to the customer.",
            code="resource_missing",
            param="default_payment_method",
        )
    return pm


@api("POST", "/v1/subscriptions", allowed=SUB_CREATE_FIELDS)
def subscription_create(ctx: Context, p: Params) -> Obj:
    customer = object_param(ctx, "customer", p.str("customer", required=True), "customer")
    item_params = p.list_of_dicts("items")
    if not item_params:
        raise missing("items")
    specs = []
    for ip in item_params:
        price = price_param(ctx, ip)
        if price["type"] != "recurring":
            raise InvalidRequestError(
                f"The price specified ({price['id']}) is a one-time price. Subscription items only accept "
                "recurring "
                "prices; use add_invoice_items for one-time prices.",
                param=ip.name("price"),
            )
        specs.append(invoicing.ItemSpec(price, ip.int("quantity", 1, minimum=0), ip.metadata() or {}))
    if len({(s.price["currency"]) for s in specs}) > 1:
        raise InvalidRequestError("All prices on a subscription must have the same currency.", param="items")
    if len({(s.price["recurring"]["interval"], s.price["recurring"]["interval_count"]) for s in specs}) > 1:
        raise InvalidRequestError(
            "All prices on a subscription must have the same `recurring.interval` and "
            "`recurring.interval_count`.",
            param="items",
        )
    one_time = []
    for ip in p.list_of_dicts("add_invoice_items"):
        one_time.append(invoicing.ItemSpec(price_param(ctx, ip), ip.int("quantity", 1, minimum=1)))
    now = ctx.now(customer)
    trial_end = p.timestamp_or_now("trial_end", now)
    if trial_end is not None and trial_end <= now:
        if p.raw("trial_end") != "now":
            raise invalid(
                "trial_end",
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                "parameter_invalid_integer",
            )
        trial_end = None
    days = p.int("trial_period_days", minimum=0)
    if days is None and p.bool("trial_from_plan"):
        days = specs[0].price["recurring"].get("trial_period_days")
    if days and trial_end is None:
        trial_end = now + days * 86400
    collection = p.enum("collection_method", ["charge_automatically", "send_invoice"], "charge_automatically")
    days_until_due = p.int("days_until_due", minimum=0)
    if collection == "send_invoice" and days_until_due is None:
        raise missing("days_until_due")
    off_session = bool(p.bool("off_session", False))
    trial_settings = p.dict("trial_settings").dict("end_behavior")
    sub = subscriptions.create_subscription(
        ctx,
        customer,
        specs,
        trial_end=trial_end,
        default_pm=_sub_pm(ctx, p, customer),
        payment_behavior=p.enum(
            "payment_behavior",
            ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
            "allow_incomplete",
        ),
        collection_method=collection,
        days_until_due=days_until_due,
        metadata=p.metadata() or {},
        description=p.str("description"),
        cancel_at_period_end=bool(p.bool("cancel_at_period_end", False)),
        off_session=off_session,
        one_time=one_time,
        save_default_payment_method=p.dict("payment_settings").enum(
            "save_default_payment_method", ["off", "on_subscription"], "off"
        )
        or "off",
        missing_pm_behavior=trial_settings.enum(
            "missing_payment_method", ["cancel", "create_invoice", "pause"], "create_invoice"
        ),
    )
    return sub


def _subscription(ctx: Context, sub_id: str) -> Obj:
    return ctx.store.require("subscription", sub_id)


@api("GET", "/v1/subscriptions/{sub_id}", allowed=set())
def subscription_retrieve(ctx: Context, p: Params, sub_id: str) -> Obj:
    return _subscription(ctx, sub_id)


SUB_UPDATE_FIELDS = SUB_CREATE_FIELDS - {
    "customer",
    "currency",
    "backdate_start_date",
    "trial_period_days",
} | {
    "proration_date",
    "pause_collection",
    "cancellation_details",
}


@api("POST", "/v1/subscriptions/{sub_id}", allowed=SUB_UPDATE_FIELDS)
def subscription_update(ctx: Context, p: Params, sub_id: str) -> Obj:
    sub = _subscription(ctx, sub_id)
    customer = ctx.store.require("customer", sub["customer"])
    before = ctx.render(sub)
    marker = ctx.store.seq
    ended = sub["status"] in ("canceled", "incomplete_expired")
    if ended and set(p.data) - {"metadata", "cancellation_details", "expand"}:
        raise InvalidRequestError(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    now = ctx.now(customer)
    payment_behavior = p.enum(
        "payment_behavior",
        ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
        "allow_incomplete",
    )
    proration = p.enum(
        "proration_behavior", ["create_prorations", "none", "always_invoice"], "create_prorations"
    )
    if "default_payment_method" in p:
        pm = _sub_pm(ctx, p, customer)
        sub["default_payment_method"] = pm["id"] if pm else None
    if "description" in p:
        sub["description"] = p.str("description")
    sub["metadata"] = merge_metadata(sub["metadata"], p.metadata())
    if "cancellation_details" in p:
        details = p.dict("cancellation_details")
        sub["cancellation_details"]["comment"] = details.str("comment")
        sub["cancellation_details"]["feedback"] = details.str("feedback")
    if "collection_method" in p:
        sub["collection_method"] = p.enum("collection_method", ["charge_automatically", "send_invoice"])
    if "days_until_due" in p:
        sub["days_until_due"] = p.int("days_until_due")
    if "trial_settings" in p:
        behaviour = (
            p.dict("trial_settings")
            .dict("end_behavior")
            .enum("missing_payment_method", ["cancel", "create_invoice", "pause"])
        )
        if behaviour:
            sub["trial_settings"]["end_behavior"]["missing_payment_method"] = behaviour
    if "cancel_at_period_end" in p:
        if p.bool("cancel_at_period_end"):
            subscriptions.schedule_cancel(ctx, sub, now)
        else:
            subscriptions.unschedule_cancel(sub)
    if "cancel_at" in p:
        cancel_at = p.int("cancel_at")
        sub["cancel_at"] = cancel_at
        sub["canceled_at"] = now if cancel_at else None
        sub["cancel_at_period_end"] = False
    changes = []
    for ip in p.list_of_dicts("items"):
        item_id = ip.str("id")
        price = price_param(ctx, ip) if ip.str("price") else None
        if item_id is None and price is None:
            raise missing(ip.name("price"))
        changes.append(
            subscriptions.ItemChange(
                item_id=item_id,
                price=price,
                quantity=ip.int("quantity", minimum=0),
                deleted=bool(ip.bool("deleted", False)),
                metadata=ip.metadata(),
            )
        )
    if changes:
        if (
            payment_behavior in ("error_if_incomplete", "pending_if_incomplete")
            and proration == "always_invoice"
        ):
            pm = invoicing.default_payment_method(ctx, customer, sub)
            if pm is not None:
                subscriptions.precheck(ctx, pm, True)
        subscriptions.update_items(
            ctx,
            sub,
            changes,
            proration_behavior=proration,
            proration_date=p.int("proration_date"),
            payment_behavior=payment_behavior,
        )
    if "trial_end" in p and sub["status"] == "trialing":
        trial_end = p.timestamp_or_now("trial_end", now)
        if trial_end is not None and trial_end <= now:
            subscriptions.end_trial(ctx, sub, now, at_once=True)
        elif trial_end is not None:
            sub["trial_end"] = trial_end
            subscriptions.set_period(ctx, sub, invoicing.period_of(ctx, sub)[0], trial_end)
    after = ctx.render(sub)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    already = any(
        e["_seq"] > marker
        and e["type"] == "customer.subscription.updated"
        and e["data"]["object"]["id"] == sub_id
        for e in ctx.store.all("event")[-50:]
    )
    if previous and not already and sub["status"] != "canceled":
        ctx.emit("customer.subscription.updated", sub, previous)
    return sub


@api("DELETE", "/v1/subscriptions/{sub_id}", allowed={"invoice_now", "prorate", "cancellation_details"})
def subscription_cancel(ctx: Context, p: Params, sub_id: str) -> Obj:
    sub = _subscription(ctx, sub_id)
    details = p.dict("cancellation_details")
    return subscriptions.cancel_subscription(
        ctx,
        sub,
        prorate=bool(p.bool("prorate", False)),
        invoice_now=bool(p.bool("invoice_now", False)),
        comment=details.str("comment"),
        feedback=details.str("feedback"),
    )


@api(
    "POST",
    "/v1/subscriptions/{sub_id}/resume",
    allowed={"billing_cycle_anchor", "proration_behavior", "proration_date"},
)
def subscription_resume(ctx: Context, p: Params, sub_id: str) -> Obj:
    return subscriptions.resume_subscription(ctx, _subscription(ctx, sub_id))


@api(
    "GET",
    "/v1/subscriptions",
    allowed=LIST
    | {
        "customer",
        "price",
        "status",
        "collection_method",
        "current_period_end",
        "current_period_start",
        "test_clock",
        "automatic_tax",
    },
)
def subscription_list(ctx: Context, p: Params) -> Obj:
    customer_id, price_id = p.str("customer"), p.str("price")
    status = p.enum(
        "status",
        [
            "active",
            "all",
            "canceled",
            "ended",
            "incomplete",
            "incomplete_expired",
            "past_due",
            "paused",
            "trialing",
            "unpaid",
        ],
    )
    collection = p.str("collection_method")
    clock_id = p.str("test_clock")

    def keep(sub: Obj) -> bool:
        if clock_id is not None and sub.get("test_clock") != clock_id:
            return False
        if status is None and sub["status"] == "canceled":
            return False
        if status not in (None, "all"):
            wanted = {"canceled", "incomplete_expired"} if status == "ended" else {status}
            if sub["status"] not in wanted:
                return False
        if price_id and not any(
            ctx.store.objects["subscription_item"].get(i, {}).get("price") == price_id for i in sub["_items"]
        ):
            return False
        return customer_id in (None, sub["customer"]) and collection in (None, sub["collection_method"])

    return list_of(ctx, "subscription", p, "/v1/subscriptions", keep=keep)
