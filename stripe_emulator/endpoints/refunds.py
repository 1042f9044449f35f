"""Refunds: `/v1/refunds` (rules in `payments.create_refund`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import payments
from ..errors import InvalidRequestError
from ..params import Params, merge_metadata, object_param
from ..routing import LIST, api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api(
    "POST",
    "/v1/refunds",
    allowed={
        "charge",
        "payment_intent",
        "amount",
        "reason",
        "metadata",
        "instructions_email",
        "refund_application_fee",
        "reverse_transfer",
        "origin",
        "currency",
        "customer",
    },
)
def refund_create(ctx: Context, p: Params) -> Obj:
    charge_id, pi_id = p.str("charge"), p.str("payment_intent")
    if not charge_id and not pi_id:
        raise InvalidRequestError(
            "One of the following params should be provided for this request: payment_intent or charge."
        )
    if pi_id:
        pi = object_param(ctx, "payment_intent", pi_id, "payment_intent")
        if pi["status"] != "succeeded" or not pi["latest_charge"]:
            raise InvalidRequestError(
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge_id = pi["latest_charge"]
    ch = object_param(ctx, "charge", charge_id, "charge")
    reason = p.enum("reason", ["duplicate", "fraudulent", "requested_by_customer"])
    return payments.create_refund(ctx, ch, p.int("amount"), reason, p.metadata())


@api("GET", "/v1/refunds/{re_id}", allowed=set())
def refund_retrieve(ctx: Context, p: Params, re_id: str) -> Obj:
    return ctx.store.require("refund", re_id)


@api("POST", "/v1/refunds/{re_id}", allowed={"metadata"})
def refund_update(ctx: Context, p: Params, re_id: str) -> Obj:
    refund = ctx.store.require("refund", re_id)
    before = public(refund)
    refund["metadata"] = merge_metadata(refund["metadata"], p.metadata())
    ctx.emit_updated("refund.updated", refund, before)
    return refund


@api("GET", "/v1/refunds", allowed=LIST | {"charge", "payment_intent"})
def refund_list(ctx: Context, p: Params) -> Obj:
    charge_id, pi_id = p.str("charge"), p.str("payment_intent")
    return list_of(ctx, "refund", p, "/v1/refunds", filters={"charge": charge_id, "payment_intent": pi_id})
