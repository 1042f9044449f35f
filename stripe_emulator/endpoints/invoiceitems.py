"""Invoice items: `/v1/invoiceitems`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing
from ..errors import InvalidRequestError, missing
from ..params import Params, merge_metadata, object_param, price_param
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api(
    "POST",
    "/v1/invoiceitems",
    allowed={
        "customer",
        "amount",
        "currency",
        "description",
        "invoice",
        "metadata",
        "period",
        "price",
        "pricing",
        "quantity",
        "subscription",
        "discountable",
        "tax_rates",
        "unit_amount_decimal",
        "tax_behavior",
        "tax_code",
        "discounts",
        "price_data",
    },
)
def invoiceitem_create(ctx: Context, p: Params) -> Obj:
    customer = object_param(ctx, "customer", p.str("customer", required=True), "customer")
    price_id = p.str("price") or p.dict("pricing").str("price")
    price = (
        price_param(ctx, p, "price")
        if p.str("price")
        else (price_param(ctx, p.dict("pricing"), "price") if price_id else None)
    )
    quantity = p.int("quantity", 1, minimum=0)
    amount = p.int("amount")
    if price is None and amount is None:
        if p.str("unit_amount_decimal"):
            amount = round(float(p.str("unit_amount_decimal") or 0) * quantity)
        else:
            raise missing("amount")
    currency = p.str("currency") or (price or {}).get("currency") or customer["currency"] or ""
    if not currency:
        raise missing("currency")
    sub = (
        object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    inv = object_param(ctx, "invoice", p.str("invoice"), "invoice") if p.str("invoice") else None
    if inv is not None and inv["status"] != "draft":
        raise InvalidRequestError("You can only add invoice items to draft invoices.", param="invoice")
    period = None
    if "period" in p:
        period_p = p.dict("period")
        period = (period_p.int("start", required=True), period_p.int("end", required=True))
    ii = invoicing.new_invoice_item(
        ctx,
        customer,
        price=price,
        quantity=quantity,
        amount=amount if price is None else None,
        currency=currency.lower(),
        description=p.str("description"),
        sub=sub,
        period=period,
        metadata=p.metadata(),
    )
    if "discountable" in p:
        ii["discountable"] = p.bool("discountable")
    if inv is not None:
        invoicing.attach_invoice_item(ctx, inv, ii)
    return ii


@api("GET", "/v1/invoiceitems/{ii_id}", allowed=set())
def invoiceitem_retrieve(ctx: Context, p: Params, ii_id: str) -> Obj:
    return ctx.store.require("invoiceitem", ii_id)


@api(
    "POST",
    "/v1/invoiceitems/{ii_id}",
    allowed={
        "amount",
        "description",
        "metadata",
        "period",
        "quantity",
        "discountable",
        "price",
        "pricing",
        "tax_rates",
        "unit_amount_decimal",
        "discounts",
        "tax_behavior",
        "tax_code",
        "price_data",
    },
)
def invoiceitem_update(ctx: Context, p: Params, ii_id: str) -> Obj:
    ii = ctx.store.require("invoiceitem", ii_id)
    inv = ctx.store.get("invoice", ii["invoice"])
    if inv is not None and inv["status"] != "draft" and set(p.data) - {"metadata", "expand"}:
        raise InvalidRequestError("You can only update invoice items on draft invoices.")
    if "description" in p:
        ii["description"] = p.str("description")
    if "amount" in p:
        ii["amount"] = ii["net_amount"] = p.int("amount")
    if "quantity" in p:
        ii["quantity"] = p.int("quantity", minimum=0)
        ii["quantity_decimal"] = str(ii["quantity"])
    ii["metadata"] = merge_metadata(ii["metadata"], p.metadata())
    if inv is not None:
        for line in invoicing.lines_of(ctx, inv):
            if ((line.get("parent") or {}).get("invoice_item_details") or {}).get("invoice_item") == ii_id:
                line.update(
                    {
                        "amount": ii["amount"],
                        "subtotal": ii["amount"],
                        "description": ii["description"],
                        "quantity": ii["quantity"],
                    }
                )
        invoicing.recompute(ctx, inv)
    return ii


@api("DELETE", "/v1/invoiceitems/{ii_id}", allowed=set())
def invoiceitem_delete(ctx: Context, p: Params, ii_id: str) -> Obj:
    ii = ctx.store.require("invoiceitem", ii_id)
    inv = ctx.store.get("invoice", ii["invoice"])
    if inv is not None:
        if inv["status"] != "draft":
            raise InvalidRequestError("You can only delete invoice items on draft invoices.")
        inv["_lines"] = [
            lid
            for lid in inv["_lines"]
            if (
                (ctx.store.objects["line_item"][lid].get("parent") or {}).get("invoice_item_details") or {}
            ).get("invoice_item")
            != ii_id
        ]
        invoicing.recompute(ctx, inv)
    snapshot = ctx.render(ii)
    ctx.store.remove("invoiceitem", ii_id)
    ctx.emit("invoiceitem.deleted", snapshot)
    return {"id": ii_id, "object": "invoiceitem", "deleted": True}


@api("GET", "/v1/invoiceitems", allowed=LIST | {"customer", "invoice", "pending"})
def invoiceitem_list(ctx: Context, p: Params) -> Obj:
    customer_id, in_id, pending = p.str("customer"), p.str("invoice"), p.bool("pending")
    return list_of(
        ctx,
        "invoiceitem",
        p,
        "/v1/invoiceitems",
        filters={"customer": customer_id, "invoice": in_id},
        keep=lambda ii: pending is None or (ii["invoice"] is None) == pending,
    )
