"""Disputes (`dispute`): opened on a charge by a test helper (`emu.create_dispute(charge_id)`,
`POST /_emulator/charges/{id}/dispute`) or by Stripe's dispute test cards
(`pm_card_createDispute`, `pm_card_createDisputeInquiry`); answered with evidence through the API.

A chargeback withdraws the amount plus a 15.00 fee (`charge.dispute.created`,
`charge.dispute.funds_withdrawn`); an inquiry moves no money. Submitting evidence whose
`uncategorized_text` is `winning_evidence` or `losing_evidence` closes the dispute as won or lost
at once (Stripe's test-mode rule; won reinstates the amount: `charge.dispute.funds_reinstated`);
`POST /v1/disputes/{id}/close` accepts it as lost; `emu.close_dispute(id, won=...)` decides it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import objects
from .errors import InvalidRequestError
from .params import Params, merge_metadata

if TYPE_CHECKING:
    from .app import Context

Obj = dict[str, Any]
DISPUTE_FEE = 1500
REASONS = (
    "bank_cannot_process",
    "check_returned",
    "credit_not_processed",
    "customer_initiated",
    "debit_not_authorized",
    "duplicate",
    "fraudulent",
    "general",
    "incorrect_account_details",
    "insufficient_funds",
    "product_not_received",
    "product_unacceptable",
    "subscription_canceled",
    "unrecognized",
)
OPEN = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")


def _money_movement(ctx: Context, dp: Obj, amount: int, fee: int, category: str) -> None:
    txn = objects.balance_transaction(
        ctx.store.new_id("balance_transaction"),
        ctx.now(dp),
        amount,
        dp["currency"],
        fee,
        dp["id"],
        "adjustment",
        f"Chargeback {'withdrawal' if amount < 0 else 'reversal'} for {dp['charge']}",
    )
    txn["reporting_category"] = category
    if fee:
        txn["fee_details"][0]["description"] = "Dispute fee"
    ctx.store.add("balance_transaction", txn)
    dp["balance_transactions"].append(ctx.render(txn))


def open_dispute(
    ctx: Context, ch: Obj, *, reason: str = "fraudulent", amount: int | None = None, inquiry: bool = False
) -> Obj:
    if ch["status"] != "succeeded" or not ch["captured"]:
        raise InvalidRequestError(f"Charge {ch['id']} did not succeed; there is nothing to dispute.")
    if any(d["charge"] == ch["id"] for d in ctx.store.all("dispute")):
        raise InvalidRequestError(f"Charge {ch['id']} is already disputed.")
    if reason not in REASONS:
        raise InvalidRequestError(f"Unknown dispute reason {reason!r}.", param="reason")
    amount = ch["amount_captured"] - ch["amount_refunded"] if amount is None else int(amount)
    if amount <= 0 or amount > ch["amount_captured"]:
        raise InvalidRequestError(
            "The disputed amount must be positive and at most the charge.", param="amount"
        )
    status = "warning_needs_response" if inquiry else "needs_response"
    dp = objects.dispute(ctx.store.new_id("dispute"), ctx.now(ch), ch, amount, reason, status)
    dp["is_charge_refundable"] = inquiry
    dp["_customer"] = ch["customer"]
    ctx.store.add("dispute", dp)
    before = {"disputed": ch["disputed"]}
    ch["disputed"] = True
    ctx.emit("charge.dispute.created", dp)
    if not inquiry:
        _money_movement(ctx, dp, -amount, DISPUTE_FEE, "dispute")
        ctx.emit("charge.dispute.funds_withdrawn", dp)
    ctx.emit("charge.updated", ch, before)
    return dp


def close(ctx: Context, dp: Obj, *, won: bool) -> Obj:
    if dp["status"] not in OPEN:
        raise InvalidRequestError(f"This dispute is already closed ({dp['status']}).", param="dispute")
    before = {"status": dp["status"]}
    inquiry = dp["status"].startswith("warning")
    dp["status"] = "warning_closed" if inquiry else ("won" if won else "lost")
    dp["evidence_details"]["past_due"] = False
    ctx.emit("charge.dispute.closed", dp, before)
    if won and not inquiry:
        _money_movement(ctx, dp, dp["amount"], 0, "dispute_reversal")
        ctx.emit("charge.dispute.funds_reinstated", dp)
    return dp


def update(ctx: Context, dp: Obj, p: Params) -> Obj:
    if dp["status"] not in OPEN:
        raise InvalidRequestError(
            f"This dispute is already closed ({dp['status']}); evidence can no longer be submitted.",
        )
    before = {"evidence": dict(dp["evidence"]), "metadata": dict(dp["metadata"])}
    evidence = p.dict("evidence")
    for key in list(dp["evidence"]):
        if key in evidence and key != "enhanced_evidence":
            dp["evidence"][key] = evidence.str(key)
    dp["metadata"] = merge_metadata(dp["metadata"], p.metadata())
    if evidence.data:
        dp["evidence_details"]["has_evidence"] = True
    submit = p.bool("submit", True)
    if submit and evidence.data:
        dp["evidence_details"]["submission_count"] += 1
        before["status"] = dp["status"]
        dp["status"] = "warning_under_review" if dp["status"].startswith("warning") else "under_review"
    previous = {k: v for k, v in before.items() if dp.get(k) != v}
    ctx.emit("charge.dispute.updated", dp, previous or None)
    text = (dp["evidence"].get("uncategorized_text") or "").strip()
    if submit and text in ("winning_evidence", "losing_evidence"):
        close(ctx, dp, won=text == "winning_evidence")
    return dp
