"""Customer rules: deleting a customer cancels its live subscriptions first (as Stripe does)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import subscriptions

if TYPE_CHECKING:
    from .app import Context


def delete_customer(ctx: Context, cust: dict[str, Any]) -> dict[str, Any]:
    for sub in ctx.store.all("subscription"):
        if sub["customer"] == cust["id"] and sub["status"] not in ("canceled", "incomplete_expired"):
            subscriptions.cancel_subscription(ctx, sub)
    snapshot = ctx.render(cust)
    ctx.store.remove("customer", cust["id"])
    ctx.emit("customer.deleted", snapshot)
    return {"id": cust["id"], "object": "customer", "deleted": True}
