"""PaymentMethods: `/v1/payment_methods` (attach, detach)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import payments
from ..errors import InvalidRequestError, invalid
from ..params import Params, merge_metadata, object_param
from ..routing import api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


def _test_card_for_number(number: str) -> str:
    if number in payments.TEST_NUMBERS:
        return payments.TEST_NUMBERS[number]
    digits = [int(d) for d in number if d.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    if len(digits) < 12 or checksum % 10:
        raise payments.CardError(
            "Your card number is incorrect.", code="incorrect_number", param="card[number]"
        )
    return "pm_card_visa"


@api(
    "POST",
    "/v1/payment_methods",
    allowed={"type", "card", "billing_details", "metadata", "allow_redisplay", "customer", "payment_method"},
)
def payment_method_create(ctx: Context, p: Params) -> Obj:
    kind = p.str("type", required=True)
    if kind != "card":
        raise invalid(
            "type",
            f"The emulator supports card payment methods only, not '{kind}'.",
            "parameter_invalid_string",
        )
    card = p.dict("card")
    token = card.str("token")
    if token:
        name = "pm_card_" + token.removeprefix("tok_")
        if name not in payments.TEST_CARDS:
            raise InvalidRequestError(
                f"No such token: '{token}'", code="resource_missing", param="card[token]"
            )
    else:
        number = card.str("number", required=True) or ""
        name = _test_card_for_number(number.replace(" ", ""))
    pm = payments.new_payment_method(
        ctx,
        name,
        billing_details=p.raw("billing_details") or None,
        exp_month=card.int("exp_month", 12),
        exp_year=card.int("exp_year"),
    )
    if not token and name == "pm_card_visa" and card.str("number") not in payments.TEST_NUMBERS:
        number = card.str("number") or ""
        pm["card"]["last4"] = number[-4:]
        pm["card"]["brand"] = pm["card"]["display_brand"] = {"5": "mastercard", "3": "amex"}.get(
            number[:1], "visa"
        )
    pm["metadata"] = p.metadata() or {}
    return pm


@api("GET", "/v1/payment_methods/{pm_id}", allowed=set())
def payment_method_retrieve(ctx: Context, p: Params, pm_id: str) -> Obj:
    if pm_id in payments.TEST_CARDS:
        return payments.resolve_payment_method(ctx, pm_id, "id")
    return ctx.store.require("payment_method", pm_id)


@api(
    "POST", "/v1/payment_methods/{pm_id}", allowed={"billing_details", "card", "metadata", "allow_redisplay"}
)
def payment_method_update(ctx: Context, p: Params, pm_id: str) -> Obj:
    pm = ctx.store.require("payment_method", pm_id)
    before = public(pm)
    details = p.raw("billing_details")
    if isinstance(details, dict):
        for key in ("email", "name", "phone"):
            if key in details:
                pm["billing_details"][key] = details[key] or None
        if isinstance(details.get("address"), dict):
            pm["billing_details"]["address"].update(details["address"])
    card = p.dict("card")
    for key in ("exp_month", "exp_year"):
        if key in card:
            pm["card"][key] = card.int(key)
    if "allow_redisplay" in p:
        pm["allow_redisplay"] = p.enum("allow_redisplay", ["always", "limited", "unspecified"])
    pm["metadata"] = merge_metadata(pm["metadata"], p.metadata())
    ctx.emit_updated("payment_method.updated", pm, before)
    return pm


@api("GET", "/v1/payment_methods", allowed={"customer", "type", "allow_redisplay"})
def payment_method_list(ctx: Context, p: Params) -> Obj:
    customer_id, kind = p.str("customer"), p.str("type")
    if customer_id:
        object_param(ctx, "customer", customer_id, "customer")
    return list_of(
        ctx, "payment_method", p, "/v1/payment_methods", filters={"customer": customer_id, "type": kind}
    )


@api("POST", "/v1/payment_methods/{pm_id}/attach", allowed={"customer"})
def payment_method_attach(ctx: Context, p: Params, pm_id: str) -> Obj:
    customer = object_param(ctx, "customer", p.str("customer", required=True), "customer")
    if pm_id not in payments.TEST_CARDS:
        ctx.store.require("payment_method", pm_id)
    pm = payments.resolve_payment_method(ctx, pm_id, "payment_method")
    return payments.attach(ctx, pm, customer)


@api("POST", "/v1/payment_methods/{pm_id}/detach", allowed=set())
def payment_method_detach(ctx: Context, p: Params, pm_id: str) -> Obj:
    return payments.detach(ctx, ctx.store.require("payment_method", pm_id))
