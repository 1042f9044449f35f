"""Disputes: `/v1/disputes` (rules in `disputes.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..disputes import close, update
from ..params import Params
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/disputes", allowed=LIST | {"charge", "payment_intent"})
def dispute_list(ctx: Context, p: Params) -> Obj:
    charge_id, pi_id = p.str("charge"), p.str("payment_intent")
    return list_of(ctx, "dispute", p, "/v1/disputes", filters={"charge": charge_id, "payment_intent": pi_id})


@api("GET", "/v1/disputes/{dp_id}", allowed=set())
def dispute_retrieve(ctx: Context, p: Params, dp_id: str) -> Obj:
    return ctx.store.require("dispute", dp_id)


@api("POST", "/v1/disputes/{dp_id}", allowed={"evidence", "metadata", "submit", "intended_submission_method"})
def dispute_update(ctx: Context, p: Params, dp_id: str) -> Obj:
    return update(ctx, ctx.store.require("dispute", dp_id), p)


@api("POST", "/v1/disputes/{dp_id}/close", allowed=set())
def dispute_close(ctx: Context, p: Params, dp_id: str) -> Obj:
    return close(ctx, ctx.store.require("dispute", dp_id), won=False)
