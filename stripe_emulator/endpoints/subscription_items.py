"""Subscription items: `/v1/subscription_items`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import subscriptions
from ..params import Params, object_param, price_param
from ..routing import api
from ..store import paginate
from .common import Obj

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/subscription_items", allowed={"subscription"})
def subscription_item_list(ctx: Context, p: Params) -> Obj:
    sub = object_param(ctx, "subscription", p.str("subscription", required=True), "subscription")
    items = [ctx.store.objects["subscription_item"][i] for i in sub["_items"]]
    return paginate(items, p, f"/v1/subscription_items?subscription={sub['id']}", "subscription_item")


@api("GET", "/v1/subscription_items/{si_id}", allowed=set())
def subscription_item_retrieve(ctx: Context, p: Params, si_id: str) -> Obj:
    return ctx.store.require("subscription_item", si_id)


def _item_change(ctx: Context, p: Params, sub: Obj, change: subscriptions.ItemChange) -> None:
    before = ctx.render(sub)
    subscriptions.update_items(
        ctx,
        sub,
        [change],
        proration_behavior=p.enum(
            "proration_behavior", ["create_prorations", "none", "always_invoice"], "create_prorations"
        ),
        proration_date=p.int("proration_date"),
        payment_behavior=p.str("payment_behavior", "allow_incomplete"),
    )
    ctx.emit("customer.subscription.updated", sub, {"items": before["items"]})


ITEM_FIELDS = {
    "price",
    "quantity",
    "metadata",
    "proration_behavior",
    "proration_date",
    "payment_behavior",
    "discounts",
    "tax_rates",
    "billing_thresholds",
    "price_data",
    "off_session",
}


@api("POST", "/v1/subscription_items", allowed=ITEM_FIELDS | {"subscription"})
def subscription_item_create(ctx: Context, p: Params) -> Obj:
    sub = object_param(ctx, "subscription", p.str("subscription", required=True), "subscription")
    price = price_param(ctx, p)
    _item_change(
        ctx,
        p,
        sub,
        subscriptions.ItemChange(None, price, p.int("quantity", 1, minimum=0), metadata=p.metadata()),
    )
    return ctx.store.objects["subscription_item"][sub["_items"][-1]]


@api("POST", "/v1/subscription_items/{si_id}", allowed=ITEM_FIELDS)
def subscription_item_update(ctx: Context, p: Params, si_id: str) -> Obj:
    item = ctx.store.require("subscription_item", si_id)
    sub = ctx.store.require("subscription", item["subscription"])
    price = price_param(ctx, p) if p.str("price") else None
    _item_change(
        ctx,
        p,
        sub,
        subscriptions.ItemChange(si_id, price, p.int("quantity", minimum=0), metadata=p.metadata()),
    )
    return item


@api(
    "DELETE",
    "/v1/subscription_items/{si_id}",
    allowed={"proration_behavior", "proration_date", "clear_usage"},
)
def subscription_item_delete(ctx: Context, p: Params, si_id: str) -> Obj:
    item = ctx.store.require("subscription_item", si_id)
    sub = ctx.store.require("subscription", item["subscription"])
    _item_change(ctx, p, sub, subscriptions.ItemChange(si_id, None, None, deleted=True))
    return {"id": si_id, "object": "subscription_item", "deleted": True}
