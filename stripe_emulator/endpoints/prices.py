"""Prices: `/v1/prices` (rules in `catalog.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import catalog
from ..params import Params, merge_metadata
from ..routing import LIST, api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

PRICE_FIELDS = {
    "currency",
    "product",
    "product_data",
    "unit_amount",
    "unit_amount_decimal",
    "recurring",
    "lookup_key",
    "transfer_lookup_key",
    "nickname",
    "metadata",
    "active",
    "tax_behavior",
    "billing_scheme",
    "custom_unit_amount",
    "tiers",
    "tiers_mode",
    "transform_quantity",
    "currency_options",
}


@api("POST", "/v1/prices", allowed=PRICE_FIELDS)
def price_create(ctx: Context, p: Params) -> Obj:
    return catalog.new_price(ctx, p, None)


@api("GET", "/v1/prices/{price_id}", allowed=set())
def price_retrieve(ctx: Context, p: Params, price_id: str) -> Obj:
    return ctx.store.require("price", price_id)


@api(
    "POST",
    "/v1/prices/{price_id}",
    allowed={
        "active",
        "lookup_key",
        "transfer_lookup_key",
        "metadata",
        "nickname",
        "tax_behavior",
        "currency_options",
    },
)
def price_update(ctx: Context, p: Params, price_id: str) -> Obj:
    price = ctx.store.require("price", price_id)
    before = public(price)
    if "active" in p:
        price["active"] = p.bool("active")
    if "nickname" in p:
        price["nickname"] = p.str("nickname")
    if "tax_behavior" in p:
        price["tax_behavior"] = p.enum("tax_behavior", ["exclusive", "inclusive", "unspecified"])
    catalog.set_lookup_key(ctx, price, p)
    price["metadata"] = merge_metadata(price["metadata"], p.metadata())
    ctx.emit_updated("price.updated", price, before)
    return price


@api(
    "GET", "/v1/prices", allowed=LIST | {"active", "currency", "product", "type", "lookup_keys", "recurring"}
)
def price_list(ctx: Context, p: Params) -> Obj:
    active, currency, product, kind = p.bool("active"), p.str("currency"), p.str("product"), p.str("type")
    keys = p.list("lookup_keys")
    recurring = p.dict("recurring")
    interval, usage = recurring.str("interval"), recurring.str("usage_type")

    def keep(price: Obj) -> bool:
        rec = price["recurring"] or {}
        return (
            active in (None, price["active"])
            and currency in (None, price["currency"])
            and product in (None, price["product"])
            and kind in (None, price["type"])
            and (not keys or price["lookup_key"] in keys)
            and interval in (None, rec.get("interval"))
            and usage in (None, rec.get("usage_type"))
        )

    return list_of(ctx, "price", p, "/v1/prices", keep=keep)
