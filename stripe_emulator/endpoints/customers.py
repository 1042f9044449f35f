"""Customers: `/v1/customers` and a customer's payment methods."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import customers, objects, payments
from ..errors import InvalidRequestError, ResourceMissing
from ..params import Params, merge_metadata
from ..routing import LIST, api
from ..store import public
from ..timeline import require_clock_param
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

CUSTOMER_FIELDS = {
    "address",
    "balance",
    "description",
    "email",
    "invoice_prefix",
    "invoice_settings",
    "metadata",
    "name",
    "next_invoice_sequence",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
}


def _customer_fields(ctx: Context, cust: Obj, p: Params, new_pm: Obj | None, pm_param: str | None) -> None:
    for key in ("description", "email", "name", "phone"):
        if key in p:
            cust[key] = p.str(key)
    if "address" in p:
        cust["address"] = objects.address_from(p.raw("address") or None)
    if "shipping" in p:
        shipping = p.raw("shipping") or None
        if shipping:
            shipping = {
                "address": objects.address_from(shipping.get("address") or {}),
                "name": shipping.get("name"),
                "phone": shipping.get("phone"),
            }
        cust["shipping"] = shipping
    if "balance" in p:
        cust["balance"] = p.int("balance")
    if "invoice_prefix" in p:
        cust["invoice_prefix"] = p.str("invoice_prefix")
    if "next_invoice_sequence" in p:
        cust["next_invoice_sequence"] = p.int("next_invoice_sequence", minimum=1)
    if "preferred_locales" in p:
        cust["preferred_locales"] = p.list("preferred_locales")
    if "tax_exempt" in p:
        cust["tax_exempt"] = p.enum("tax_exempt", ["none", "exempt", "reverse"])
    cust["metadata"] = merge_metadata(cust["metadata"], p.metadata())
    settings = p.dict("invoice_settings")
    if "default_payment_method" in settings:
        pm_id = settings.str("default_payment_method")
        if pm_id and new_pm is not None and pm_id == pm_param:
            pm_id = new_pm["id"]
        if pm_id:
            pm = ctx.store.get("payment_method", pm_id)
            if pm is None or pm["customer"] != cust["id"]:
                raise InvalidRequestError(
                    f"No such PaymentMethod: '{pm_id}'; It's possible this PaymentMethod exists on one of "
                    "your "
                    "connected accounts, in which case you should retry this request on that connected "
                    "account. "
                    "Learn more at https://stripe.com/docs/connect/authentication"
                    if pm is None
                    else f"The customer does not have a payment method with the ID {pm_id}. The payment "
                    "method must "
                    "be attached to the customer.",
                    code="resource_missing",
                    param="invoice_settings[default_payment_method]",
                )
        cust["invoice_settings"]["default_payment_method"] = pm_id
    for key in ("footer", "custom_fields"):
        if key in settings:
            cust["invoice_settings"][key] = settings.raw(key) or None


@api(
    "POST",
    "/v1/customers",
    allowed=CUSTOMER_FIELDS
    | {"payment_method", "test_clock", "source", "tax", "tax_id_data", "cash_balance"},
)
def customer_create(ctx: Context, p: Params) -> Obj:
    clock_id = p.str("test_clock")
    clock = None
    if clock_id:
        clock = require_clock_param(ctx, clock_id)
    now = clock["frozen_time"] if clock else ctx.now()
    cust = objects.customer(ctx.store.new_id("customer", 14), now, ctx.store.random_string(8).upper())
    cust["test_clock"] = clock_id if clock else None
    pm_param = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_param) if pm_param else None
    ctx.store.add("customer", cust)
    try:
        if pm is not None:
            if pm["customer"]:
                raise InvalidRequestError(
                    "The payment method you provided has already been attached to a customer.",
                    param="payment_method",
                )
            payments.check_reusable(pm)
            if payments.test_card(pm).fails_on_attach:
                raise payments.card_error(payments.test_card(pm))
            pm["customer"] = cust["id"]
        _customer_fields(ctx, cust, p, pm, pm_param)
    except Exception:
        ctx.store.objects["customer"].pop(cust["id"], None)
        if pm is not None and pm["customer"] == cust["id"]:
            pm["customer"] = None
        raise
    ctx.emit("customer.created", cust)
    if pm is not None:
        ctx.emit("payment_method.attached", pm)
    return cust


def _customer(ctx: Context, customer_id: str) -> Obj:
    return ctx.store.require("customer", customer_id)


@api("GET", "/v1/customers/{customer_id}", allowed=set())
def customer_retrieve(ctx: Context, p: Params, customer_id: str) -> Obj:
    if ctx.store.deleted.get(customer_id) == "customer":
        return {"id": customer_id, "object": "customer", "deleted": True}
    return _customer(ctx, customer_id)


@api(
    "POST",
    "/v1/customers/{customer_id}",
    allowed=CUSTOMER_FIELDS | {"source", "default_source", "tax", "cash_balance"},
)
def customer_update(ctx: Context, p: Params, customer_id: str) -> Obj:
    cust = _customer(ctx, customer_id)
    before = public(cust)
    _customer_fields(ctx, cust, p, None, None)
    ctx.emit_updated("customer.updated", cust, before)
    return cust


@api("DELETE", "/v1/customers/{customer_id}", allowed=set())
def customer_delete(ctx: Context, p: Params, customer_id: str) -> Obj:
    return customers.delete_customer(ctx, _customer(ctx, customer_id))


@api("GET", "/v1/customers", allowed=LIST | {"email", "test_clock"})
def customer_list(ctx: Context, p: Params) -> Obj:
    email, clock_id = p.str("email"), p.str("test_clock")
    return list_of(ctx, "customer", p, "/v1/customers", filters={"email": email, "test_clock": clock_id})


@api("GET", "/v1/customers/{customer_id}/payment_methods", allowed={"type", "allow_redisplay"})
def customer_payment_methods(ctx: Context, p: Params, customer_id: str) -> Obj:
    _customer(ctx, customer_id)
    kind = p.str("type")
    return list_of(
        ctx,
        "payment_method",
        p,
        f"/v1/customers/{customer_id}/payment_methods",
        filters={"customer": customer_id, "type": kind},
    )


@api("GET", "/v1/customers/{customer_id}/payment_methods/{pm_id}", allowed=set())
def customer_payment_method(ctx: Context, p: Params, customer_id: str, pm_id: str) -> Obj:
    _customer(ctx, customer_id)
    pm = ctx.store.get("payment_method", pm_id)
    if pm is None or pm["customer"] != customer_id:
        raise ResourceMissing("PaymentMethod", pm_id)
    return pm
