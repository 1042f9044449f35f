"""Balance transactions: `/v1/balance_transactions`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..params import Params
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/balance_transactions/{txn_id}", allowed=set())
def balance_transaction_retrieve(ctx: Context, p: Params, txn_id: str) -> Obj:
    return ctx.store.require("balance_transaction", txn_id)


@api("GET", "/v1/balance_transactions", allowed=LIST | {"source", "type", "currency", "payout"})
def balance_transaction_list(ctx: Context, p: Params) -> Obj:
    source, kind = p.str("source"), p.str("type")
    return list_of(
        ctx, "balance_transaction", p, "/v1/balance_transactions", filters={"source": source, "type": kind}
    )
