"""The account's balance and its payouts.

Every charge, refund and dispute movement has a balance transaction (card charges: Stripe's
standard fee, 2.9% + 30 cents). A transaction becomes available two days after it is created
(`available_on`), on the time of the customer it belongs to: the emulator's clock, or that
customer's test clock. Each day at midnight UTC, on each timeline (the emulator's clock, and each
test clock as it advances), the emulator pays out what has become available on that timeline:
a `payout` (`payout.created`, with a `payout` balance transaction taking the amount out), paid a
day later (`payout.paid`). A negative available amount waits for later income. Customers moved with
`advance(customer=...)` keep their transactions on the emulator's timeline.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from . import objects

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]
DAY = 86400
PAYOUT_ARRIVES = DAY


def txn_clock(ctx: Context, txn: Obj) -> str | None:
    """The test clock whose time the transaction follows (None: the emulator's clock)."""
    if "_clock" not in txn:
        source = ctx.store.find(txn["source"]) if isinstance(txn.get("source"), str) else None
        obj = source[1] if source else {}
        if obj.get("object") in ("refund", "dispute"):
            obj = ctx.store.get("charge", obj.get("charge")) or {}
        customer = ctx.store.get("customer", obj.get("customer")) if obj.get("customer") else None
        txn["_clock"] = (customer or {}).get("test_clock")
    return txn["_clock"]


def now_on(ctx: Context, clock_id: str | None) -> int:
    return ctx.emulator.now_for({"test_clock": clock_id} if clock_id else None)


def settle(ctx: Context) -> None:
    """`pending` transactions whose `available_on` has come on their timeline become `available`."""
    for txn in ctx.store.all("balance_transaction"):
        if txn["status"] == "pending" and txn["available_on"] <= now_on(ctx, txn_clock(ctx, txn)):
            txn["status"] = "available"


def balance(ctx: Context) -> Obj:
    settle(ctx)
    available: dict[str, int] = defaultdict(int)
    pending: dict[str, int] = defaultdict(int)
    for txn in ctx.store.all("balance_transaction"):
        (available if txn["status"] == "available" else pending)[txn["currency"]] += txn["net"]
    currencies = sorted(set(available) | set(pending)) or ["usd"]
    return {
        "object": "balance",
        "available": [
            {"amount": available[c], "currency": c, "source_types": {"card": available[c]}}
            for c in currencies
        ],
        "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
        "livemode": False,
        "pending": [
            {"amount": pending[c], "currency": c, "source_types": {"card": pending[c]}} for c in currencies
        ],
    }


def _unpaid(ctx: Context, clock_id: str | None) -> list[Obj]:
    return [
        t
        for t in ctx.store.all("balance_transaction")
        if not t.get("_payout") and t["type"] != "payout" and txn_clock(ctx, t) == clock_id
    ]


def next_payout_at(ctx: Context, clock_id: str | None) -> int | None:
    """The next midnight (UTC) at which something on this timeline can be paid out."""
    waiting = _unpaid(ctx, clock_id)
    if not waiting:
        return None
    last = ctx.store.extra.get("payouts_at", {}).get(clock_id or "", 0)
    earliest = max(min(t["available_on"] for t in waiting), last + 1)
    return -(-earliest // DAY) * DAY


def pay_out(ctx: Context, clock_id: str | None, at: int) -> list[Obj]:
    """The daily automatic payout of this timeline's available balance, one per currency."""
    ctx.store.extra.setdefault("payouts_at", {})[clock_id or ""] = at
    settle(ctx)
    by_currency: dict[str, list[Obj]] = defaultdict(list)
    for txn in _unpaid(ctx, clock_id):
        if txn["available_on"] <= at:
            by_currency[txn["currency"]].append(txn)
    made = []
    for currency, txns in sorted(by_currency.items()):
        amount = sum(t["net"] for t in txns)
        if amount <= 0:
            continue  # nothing to pay (or a negative balance): it waits for later income
        payout = objects.payout(ctx.store.new_id("payout", 24), at, amount, currency, at + PAYOUT_ARRIVES)
        payout["_clock"] = clock_id
        txn = objects.balance_transaction(
            ctx.store.new_id("balance_transaction"),
            at,
            -amount,
            currency,
            0,
            payout["id"],
            "payout",
            "STRIPE PAYOUT",
        )
        txn.update(
            {"status": "available", "available_on": at, "reporting_category": "payout", "_clock": clock_id}
        )
        txn["_payout"] = payout["id"]
        ctx.store.add("balance_transaction", txn)
        payout["balance_transaction"] = txn["id"]
        for paid in txns:
            paid["_payout"] = payout["id"]
        ctx.store.add("payout", payout)
        ctx.emit("payout.created", payout)
        made.append(payout)
    return made


def payout_arrived(ctx: Context, payout: Obj) -> None:
    if payout["status"] in ("pending", "in_transit"):
        payout["status"] = "paid"
        ctx.emit("payout.paid", payout)
