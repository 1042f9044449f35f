"""Invoices: `/v1/invoices` (finalize, pay, void, send, mark_uncollectible, lines, create_preview) and
`/v1/invoice_payments`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing, payments, subscriptions
from ..errors import InvalidRequestError, missing
from ..params import Params, merge_metadata, object_param, price_param
from ..routing import LIST, api
from ..store import paginate
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

INVOICE_FIELDS = {
    "auto_advance",
    "collection_method",
    "days_until_due",
    "due_date",
    "description",
    "metadata",
    "default_payment_method",
    "footer",
    "custom_fields",
    "statement_descriptor",
    "automatic_tax",
    "account_tax_ids",
    "discounts",
    "rendering",
    "payment_settings",
    "shipping_cost",
    "shipping_details",
    "issuer",
    "on_behalf_of",
    "number",
    "effective_at",
    "transfer_data",
    "application_fee_amount",
    "default_tax_rates",
    "default_source",
}


def _invoice(ctx: Context, in_id: str) -> Obj:
    return ctx.store.require("invoice", in_id)


def _invoice_fields(ctx: Context, inv: Obj, p: Params) -> None:
    for key in ("description", "footer", "statement_descriptor"):
        if key in p:
            inv[key] = p.str(key)
    if "auto_advance" in p:
        inv["auto_advance"] = p.bool("auto_advance")
    if "collection_method" in p:
        inv["collection_method"] = p.enum("collection_method", ["charge_automatically", "send_invoice"])
    if "days_until_due" in p:
        inv["_days_until_due"] = p.int("days_until_due", minimum=0)
    if "due_date" in p:
        inv["due_date"] = p.int("due_date")
    if "default_payment_method" in p:
        pm_id = p.str("default_payment_method")
        if pm_id:
            object_param(ctx, "payment_method", pm_id, "default_payment_method")
        inv["default_payment_method"] = pm_id
    inv["metadata"] = merge_metadata(inv["metadata"], p.metadata())


@api(
    "POST",
    "/v1/invoices",
    allowed=INVOICE_FIELDS
    | {"customer", "subscription", "pending_invoice_items_behavior", "currency", "from_invoice"},
)
def invoice_create(ctx: Context, p: Params) -> Obj:
    customer = object_param(ctx, "customer", p.str("customer", required=True), "customer")
    sub = (
        object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    collection = p.enum("collection_method", ["charge_automatically", "send_invoice"], "charge_automatically")
    if collection == "send_invoice" and p.int("days_until_due") is None and p.int("due_date") is None:
        raise InvalidRequestError(
            "Invoices with collection_method=send_invoice must have either days_until_due or due_date set.",
            param="days_until_due",
        )
    inv = invoicing.new_invoice(ctx, customer, sub=sub, billing_reason="manual", collection_method=collection)
    if p.str("currency"):
        inv["currency"] = (p.str("currency") or "").lower()
    _invoice_fields(ctx, inv, p)
    inv["auto_advance"] = bool(p.bool("auto_advance", False))
    behaviour = p.enum("pending_invoice_items_behavior", ["exclude", "include"], "exclude")
    if behaviour == "include":
        for ii in invoicing.pending_items(ctx, customer["id"], sub["id"] if sub else None):
            invoicing.attach_invoice_item(ctx, inv, ii)
    ctx.emit("invoice.created", inv)
    return inv


@api("GET", "/v1/invoices/{in_id}", allowed=set())
def invoice_retrieve(ctx: Context, p: Params, in_id: str) -> Obj:
    return _invoice(ctx, in_id)


@api("POST", "/v1/invoices/{in_id}", allowed=INVOICE_FIELDS)
def invoice_update(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    before = ctx.render(inv)
    if inv["status"] != "draft" and set(p.data) - {
        "metadata",
        "description",
        "footer",
        "auto_advance",
        "expand",
    }:
        raise InvalidRequestError(
            f"You can only update the metadata, description, footer and auto_advance of a finalized invoice "
            f"({inv['status']}).",
        )
    _invoice_fields(ctx, inv, p)
    after = ctx.render(inv)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    if previous:
        ctx.emit("invoice.updated", inv, previous)
    return inv


@api("DELETE", "/v1/invoices/{in_id}", allowed=set())
def invoice_delete(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if inv["status"] != "draft":
        raise InvalidRequestError("You can only delete draft invoices. Void finalized invoices instead.")
    snapshot = ctx.render(inv)
    for ii in ctx.store.all("invoiceitem"):
        if ii["invoice"] == in_id:
            ii["invoice"] = None
    ctx.store.remove("invoice", in_id)
    ctx.emit("invoice.deleted", snapshot)
    return {"id": in_id, "object": "invoice", "deleted": True}


@api(
    "GET",
    "/v1/invoices",
    allowed=LIST | {"customer", "subscription", "status", "collection_method", "due_date"},
)
def invoice_list(ctx: Context, p: Params) -> Obj:
    customer_id, sub_id, collection = p.str("customer"), p.str("subscription"), p.str("collection_method")
    status = p.enum("status", ["draft", "open", "paid", "uncollectible", "void"])
    return list_of(
        ctx,
        "invoice",
        p,
        "/v1/invoices",
        filters={
            "customer": customer_id,
            "_subscription": sub_id,
            "status": status,
            "collection_method": collection,
        },
    )


@api("GET", "/v1/invoices/{in_id}/lines", allowed=set())
def invoice_lines(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    return paginate(invoicing.lines_of(ctx, inv), p, f"/v1/invoices/{in_id}/lines", "line_item")


@api("POST", "/v1/invoices/{in_id}/finalize", allowed={"auto_advance"})
def invoice_finalize(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if "auto_advance" in p:
        inv["auto_advance"] = p.bool("auto_advance")
    return invoicing.finalize_invoice(ctx, inv)


@api(
    "POST",
    "/v1/invoices/{in_id}/pay",
    allowed={"payment_method", "off_session", "paid_out_of_band", "forgive", "source", "mandate"},
)
def invoice_pay(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if inv["status"] == "paid":
        raise InvalidRequestError("Invoice is already paid", code="invoice_already_paid")
    if inv["status"] == "void":
        raise InvalidRequestError("This invoice has been voided and cannot be paid.", param="invoice")
    if p.bool("paid_out_of_band"):
        if inv["status"] == "draft":
            invoicing.finalize_invoice(ctx, inv)
        if inv["status"] != "paid":
            invoicing.mark_paid(ctx, inv, ctx.now(inv), out_of_band=True)
        return inv
    pm = None
    if p.str("payment_method"):
        pm = payments.resolve_payment_method(ctx, p.str("payment_method"))
    result = invoicing.pay_invoice(ctx, inv, pm=pm, off_session=bool(p.bool("off_session", True)))
    if result.status == "requires_action":
        raise payments.authentication_error(
            payment_intent=ctx.render(invoicing.invoice_payment_intent(ctx, inv))
        )
    if result.error is not None:
        raise result.error
    return inv


@api("POST", "/v1/invoices/{in_id}/void", allowed=set())
def invoice_void(ctx: Context, p: Params, in_id: str) -> Obj:
    return invoicing.void_invoice(ctx, _invoice(ctx, in_id))


@api("POST", "/v1/invoices/{in_id}/mark_uncollectible", allowed=set())
def invoice_mark_uncollectible(ctx: Context, p: Params, in_id: str) -> Obj:
    return invoicing.mark_uncollectible(ctx, _invoice(ctx, in_id))


@api("POST", "/v1/invoices/{in_id}/send", allowed=set())
def invoice_send(ctx: Context, p: Params, in_id: str) -> Obj:
    return invoicing.send_invoice(ctx, _invoice(ctx, in_id))


@api(
    "POST",
    "/v1/invoices/create_preview",
    allowed={
        "customer",
        "subscription",
        "subscription_details",
        "automatic_tax",
        "currency",
        "invoice_items",
        "preview_mode",
        "schedule",
        "discounts",
        "customer_details",
        "issuer",
        "on_behalf_of",
        "schedule_details",
    },
)
def invoice_create_preview(ctx: Context, p: Params) -> Obj:
    sub = (
        object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    customer_id = p.str("customer") or (sub["customer"] if sub else None)
    if not customer_id:
        raise missing("customer")
    customer = object_param(ctx, "customer", customer_id, "customer")
    details = p.dict("subscription_details")
    if not details.data:
        return invoicing.preview_invoice(ctx, customer, sub)
    if sub is None:
        raise InvalidRequestError(
            "The Stripe emulator previews subscription_details only for an existing subscription.",
            param="subscription_details",
        )
    for key in details.data:
        if key not in ("items", "proration_behavior", "proration_date"):
            raise InvalidRequestError(
                f"The Stripe emulator does not implement the parameter subscription_details[{key}] here "
                "(Stripe accepts it).",
                code="parameter_unknown",
                param=f"subscription_details[{key}]",
            )
    changes = []
    for ip in details.list_of_dicts("items"):
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
    return subscriptions.preview_update(
        ctx,
        customer,
        sub,
        changes,
        proration_behavior=details.enum(
            "proration_behavior", ["create_prorations", "none", "always_invoice"], "create_prorations"
        )
        or "create_prorations",
        proration_date=details.int("proration_date"),
    )


@api("GET", "/v1/invoice_payments", allowed=LIST | {"invoice", "payment", "status"})
def invoice_payment_list(ctx: Context, p: Params) -> Obj:
    in_id = p.str("invoice")
    pi_id = p.dict("payment").str("payment_intent")
    return list_of(
        ctx,
        "invoice_payment",
        p,
        "/v1/invoice_payments",
        filters={"invoice": in_id},
        keep=lambda x: pi_id in (None, x["payment"]["payment_intent"]),
    )


@api("GET", "/v1/invoice_payments/{inpay_id}", allowed=set())
def invoice_payment_retrieve(ctx: Context, p: Params, inpay_id: str) -> Obj:
    return ctx.store.require("invoice_payment", inpay_id)
