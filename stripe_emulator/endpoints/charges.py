"""Charges: `/v1/charges` and a charge's refunds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidRequestError
from ..params import Params, merge_metadata
from ..routing import LIST, api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/charges/{ch_id}", allowed=set())
def charge_retrieve(ctx: Context, p: Params, ch_id: str) -> Obj:
    return ctx.store.require("charge", ch_id)


@api("POST", "/v1/charges", allowed=None)
def charge_create(ctx: Context, p: Params) -> Obj:
    raise InvalidRequestError(
        "The emulator makes charges through PaymentIntents only: create a PaymentIntent with confirm=true."
    )


@api(
    "POST",
    "/v1/charges/{ch_id}",
    allowed={
        "description",
        "metadata",
        "receipt_email",
        "shipping",
        "fraud_details",
        "transfer_group",
        "customer",
    },
)
def charge_update(ctx: Context, p: Params, ch_id: str) -> Obj:
    ch = ctx.store.require("charge", ch_id)
    before = public(ch)
    for key in ("description", "receipt_email"):
        if key in p:
            ch[key] = p.str(key)
    ch["metadata"] = merge_metadata(ch["metadata"], p.metadata())
    ctx.emit_updated("charge.updated", ch, before)
    return ch


@api("GET", "/v1/charges", allowed=LIST | {"customer", "payment_intent", "transfer_group"})
def charge_list(ctx: Context, p: Params) -> Obj:
    customer_id, pi_id = p.str("customer"), p.str("payment_intent")
    return list_of(
        ctx, "charge", p, "/v1/charges", filters={"customer": customer_id, "payment_intent": pi_id}
    )


@api("GET", "/v1/charges/{ch_id}/refunds", allowed=set())
def charge_refunds(ctx: Context, p: Params, ch_id: str) -> Obj:
    ctx.store.require("charge", ch_id)
    return list_of(ctx, "refund", p, f"/v1/charges/{ch_id}/refunds", filters={"charge": ch_id})
