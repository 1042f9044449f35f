"""Products and prices: building a price from its parameters (also `product[default_price_data]`),
and lookup keys (unique; `transfer_lookup_key` moves one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import objects
from .errors import InvalidRequestError, invalid, missing
from .params import Params, object_param
from .store import public

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]


def new_price(ctx: Context, p: Params, prod: Obj | None) -> Obj:
    currency = (p.str("currency", required=True) or "").lower()
    if prod is None:
        product_id = p.str("product")
        if product_id:
            prod = object_param(ctx, "product", product_id, "product")
        elif "product_data" in p:
            data = p.dict("product_data")
            prod = objects.product(
                ctx.store.new_id("product", 19), ctx.now(), data.str("name", required=True)
            )
            prod["metadata"] = data.metadata() or {}
            prod["unit_label"] = data.str("unit_label")
            ctx.store.add("product", prod)
            ctx.emit("product.created", prod)
        else:
            raise missing("product")
    if p.str("billing_scheme") == "tiered":
        raise invalid(
            "billing_scheme", "The emulator supports per_unit prices only.", "parameter_invalid_string"
        )
    unit = p.int("unit_amount", minimum=0)
    if unit is None and p.str("unit_amount_decimal"):
        unit = round(float(p.str("unit_amount_decimal") or 0))
    if unit is None and "custom_unit_amount" not in p:
        raise missing("unit_amount")
    price = objects.price(ctx.store.new_id("price"), ctx.now(), prod["id"], currency, unit)
    if "custom_unit_amount" in p:
        cua = p.dict("custom_unit_amount")
        price["custom_unit_amount"] = {
            "maximum": cua.int("maximum"),
            "minimum": cua.int("minimum"),
            "preset": cua.int("preset"),
        }
    recurring = p.dict("recurring")
    if "recurring" in p:
        interval = recurring.enum("interval", ["day", "week", "month", "year"])
        if interval is None:
            raise missing("recurring[interval]")
        count = recurring.int("interval_count", 1, minimum=1)
        limits = {"day": 365, "week": 52, "month": 12, "year": 1}
        if count > limits[interval]:
            raise invalid(
                "recurring[interval_count]",
                "The maximum billing period is one year.",
                "parameter_invalid_integer",
            )
        usage = recurring.enum("usage_type", ["licensed", "metered"], "licensed")
        meter_id = recurring.str("meter")
        if usage == "metered" and not meter_id:
            raise missing("recurring[meter]")
        if meter_id:
            object_param(ctx, "meter", meter_id, "recurring[meter]")
        price["recurring"] = {
            "interval": interval,
            "interval_count": count,
            "meter": meter_id,
            "trial_period_days": recurring.int("trial_period_days"),
            "usage_type": usage,
        }
        price["type"] = "recurring"
    price["nickname"] = p.str("nickname")
    price["metadata"] = p.metadata() or {}
    if "active" in p:
        price["active"] = p.bool("active")
    price["tax_behavior"] = p.enum("tax_behavior", ["exclusive", "inclusive", "unspecified"], "unspecified")
    set_lookup_key(ctx, price, p)
    ctx.store.add("price", price)
    ctx.emit("price.created", price)
    return price


def set_lookup_key(ctx: Context, price: Obj, p: Params) -> None:
    if "lookup_key" not in p:
        return
    key = p.str("lookup_key")
    if key:
        holder = next(
            (o for o in ctx.store.all("price") if o["lookup_key"] == key and o["id"] != price["id"]), None
        )
        if holder is not None:
            if not p.bool("transfer_lookup_key"):
                raise InvalidRequestError(
                    f"A price (`{holder['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            before = public(holder)
            holder["lookup_key"] = None
            ctx.emit_updated("price.updated", holder, before)
    price["lookup_key"] = key
