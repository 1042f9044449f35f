"""Balance: `GET /v1/balance` and `/v1/balance_transactions` (rules in `balance.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import balance
from ..params import Params
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/balance", allowed=set())
def balance_retrieve(ctx: Context, p: Params) -> Obj:
    return balance.balance(ctx)


@api("GET", "/v1/balance_transactions/{txn_id}", allowed=set())
def balance_transaction_retrieve(ctx: Context, p: Params, txn_id: str) -> Obj:
    balance.settle(ctx)
    return ctx.store.require("balance_transaction", txn_id)


@api("GET", "/v1/balance_transactions", allowed=LIST | {"source", "type", "currency", "payout"})
def balance_transaction_list(ctx: Context, p: Params) -> Obj:
    balance.settle(ctx)
    return list_of(
        ctx,
        "balance_transaction",
        p,
        "/v1/balance_transactions",
        filters={
            "source": p.str("source"),
            "type": p.str("type"),
            "currency": p.str("currency"),
            "_payout": p.str("payout"),
        },
    )
