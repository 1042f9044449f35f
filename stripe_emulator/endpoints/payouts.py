"""Payouts: `/v1/payouts` (automatic daily payouts; rules in `balance.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..params import Params
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/payouts/{po_id}", allowed=set())
def payout_retrieve(ctx: Context, p: Params, po_id: str) -> Obj:
    return ctx.store.require("payout", po_id)


@api("GET", "/v1/payouts", allowed=LIST | {"status", "arrival_date", "destination"})
def payout_list(ctx: Context, p: Params) -> Obj:
    return list_of(ctx, "payout", p, "/v1/payouts", filters={"status": p.str("status")})
