"""Invoices: amounts and line text, building and finalizing invoices, invoice items, payment,
dunning (automatic retries and the final action), voiding and previews."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import objects, payments, subscriptions
from .clock import add_interval
from .errors import InvalidRequestError
from .payments import PaymentResult

if TYPE_CHECKING:
    from .app import Context

TIMES = "\u00d7"  # the multiplication sign Stripe writes in line descriptions ("2 x Pro")
# Automatic retries after a failed renewal payment (days after each failure), then the final action.
DEFAULT_RETRY_DAYS = (3, 5, 7)
DEFAULT_FINAL_ACTION = "cancel"  # or "unpaid", or "past_due" (leave it)


@dataclass
class ItemSpec:
    price: dict[str, Any]
    quantity: int = 1
    metadata: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------- amounts and text
def unit_amount(price: dict[str, Any]) -> int:
    return int(price["unit_amount"] or 0)


def is_metered(price: dict[str, Any]) -> bool:
    return ((price.get("recurring") or {}).get("usage_type")) == "metered"


def metered_usage(ctx: Context, price: dict[str, Any], customer_id: str, period: tuple[int, int]) -> int:
    """The customer's usage of a metered price's meter over [start, end)."""
    from .meters import aggregate

    meter = ctx.store.get("meter", (price.get("recurring") or {}).get("meter"))
    if meter is None:
        return 0
    return int(aggregate(ctx, meter, customer_id, period[0], period[1]))


def money(amount: int, currency: str) -> str:
    symbol = {"usd": "$", "eur": "€", "gbp": "£"}.get(currency, currency.upper() + " ")
    sign = "-" if amount < 0 else ""
    return f"{sign}{symbol}{abs(amount) / 100:.2f}"


def product_name(ctx: Context, price: dict[str, Any]) -> str:
    product = ctx.store.get("product", price["product"])
    return product["name"] if product else price["product"]


def describe_item(ctx: Context, price: dict[str, Any], quantity: int) -> str:
    recurring = price.get("recurring") or {}
    per = f" / {recurring['interval']}" if recurring else ""
    amount = money(unit_amount(price), price["currency"])
    return f"{quantity} {TIMES} {product_name(ctx, price)} (at {amount}{per})"


def items_of(ctx: Context, sub: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        ctx.store.objects["subscription_item"][i]
        for i in sub["_items"]
        if i in ctx.store.objects["subscription_item"]
    ]


def price_of(ctx: Context, item: dict[str, Any]) -> dict[str, Any]:
    return ctx.store.require("price", item["price"])


def period_of(ctx: Context, sub: dict[str, Any]) -> tuple[int, int]:
    items = items_of(ctx, sub)
    if not items:
        return sub["billing_cycle_anchor"], sub["billing_cycle_anchor"]
    return items[0]["current_period_start"], items[0]["current_period_end"]


def default_payment_method(
    ctx: Context,
    customer: dict[str, Any],
    sub: dict[str, Any] | None = None,
    invoice: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    for candidate in (
        invoice and invoice.get("default_payment_method"),
        sub and sub.get("default_payment_method"),
        customer["invoice_settings"].get("default_payment_method"),
    ):
        if candidate:
            pm = ctx.store.get("payment_method", candidate)
            if pm is not None:
                return pm
    return None


# ---------------------------------------------------------------------- invoices
def new_invoice(
    ctx: Context,
    customer: dict[str, Any],
    *,
    sub: dict[str, Any] | None = None,
    billing_reason: str = "manual",
    collection_method: str = "charge_automatically",
    days_until_due: int | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = ctx.now(customer)
    inv = objects.invoice(
        ctx.store.new_id("invoice"),
        now,
        customer,
        ctx.emulator.account["settings"]["dashboard"]["display_name"],
    )
    inv["_lines"] = []
    inv["billing_reason"] = billing_reason
    inv["collection_method"] = collection_method
    inv["description"] = description
    inv["metadata"] = metadata or {}
    inv["_days_until_due"] = days_until_due
    inv["_hosted_token"] = ctx.store.random_string(32)
    if sub is not None:
        inv["_subscription"] = sub["id"]
        inv["currency"] = sub["currency"]
        inv["parent"] = {
            "quote_details": None,
            "subscription_details": {"metadata": dict(sub["metadata"]), "subscription": sub["id"]},
            "type": "subscription_details",
        }
        inv["default_payment_method"] = None
        inv["auto_advance"] = True
    return ctx.store.add("invoice", inv)


def add_line(
    ctx: Context,
    inv: dict[str, Any],
    *,
    amount: int,
    description: str,
    period: tuple[int, int],
    price: dict[str, Any] | None = None,
    quantity: int = 1,
    sub_item: dict[str, Any] | None = None,
    invoice_item: dict[str, Any] | None = None,
    proration: bool = False,
) -> dict[str, Any]:
    line = objects.line_item(ctx.store.new_id("line_item"), inv["id"], inv["currency"])
    line.update(
        {
            "amount": amount,
            "subtotal": amount,
            "description": description,
            "period": {"end": period[1], "start": period[0]},
            "quantity": quantity,
            "quantity_decimal": str(quantity),
            "subscription": inv.get("_subscription"),
        }
    )
    if price is not None:
        line["pricing"] = {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        }
    if invoice_item is not None:
        line["metadata"] = dict(invoice_item["metadata"])
        line["parent"] = {
            "invoice_item_details": {
                "invoice_item": invoice_item["id"],
                "proration": invoice_item["proration"],
                "proration_details": {"credited_items": None},
                "subscription": (invoice_item.get("parent") or {})
                .get("subscription_details", {})
                .get("subscription"),
            },
            "subscription_item_details": None,
            "type": "invoice_item_details",
        }
    elif sub_item is not None:
        line["metadata"] = dict(sub_item["metadata"])
        line["parent"] = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub_item["subscription"],
                "subscription_item": sub_item["id"],
            },
            "type": "subscription_item_details",
        }
    ctx.store.add("line_item", line)
    inv["_lines"].append(line["id"])
    recompute(ctx, inv)
    return line


def lines_of(ctx: Context, inv: dict[str, Any]) -> list[dict[str, Any]]:
    return [ctx.store.objects["line_item"][i] for i in inv["_lines"] if i in ctx.store.objects["line_item"]]


def recompute(ctx: Context, inv: dict[str, Any]) -> None:
    total = sum(line["amount"] for line in lines_of(ctx, inv))
    inv["subtotal"] = inv["subtotal_excluding_tax"] = total
    inv["total"] = inv["total_excluding_tax"] = total
    if inv["status"] == "draft":
        inv["amount_due"] = max(total, 0)
        inv["amount_remaining"] = inv["amount_due"]


def attach_invoice_item(ctx: Context, inv: dict[str, Any], ii: dict[str, Any]) -> None:
    ii["invoice"] = inv["id"]
    price = ctx.store.get("price", ((ii.get("pricing") or {}).get("price_details") or {}).get("price"))
    add_line(
        ctx,
        inv,
        amount=ii["amount"],
        description=ii["description"]
        or (describe_item(ctx, price, ii["quantity"]) if price else "Invoice item"),
        period=(ii["period"]["start"], ii["period"]["end"]),
        price=price,
        quantity=ii["quantity"],
        invoice_item=ii,
        proration=ii["proration"],
    )


def pending_items(ctx: Context, customer_id: str, sub_id: str | None = None) -> list[dict[str, Any]]:
    out = []
    for ii in ctx.store.all("invoiceitem"):
        if ii["customer"] != customer_id or ii["invoice"] is not None:
            continue
        ii_sub = ((ii.get("parent") or {}).get("subscription_details") or {}).get("subscription")
        if sub_id is None or ii_sub in (None, sub_id):
            out.append(ii)
    return out


def finalize_invoice(ctx: Context, inv: dict[str, Any]) -> dict[str, Any]:
    if inv["status"] != "draft":
        raise InvalidRequestError(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
        )
    customer = ctx.store.require("customer", inv["customer"], param="customer")
    now = ctx.now(customer)
    before = {"status": "draft"}
    inv["number"] = f"{customer['invoice_prefix']}-{customer['next_invoice_sequence']:04d}"
    customer["next_invoice_sequence"] += 1
    if customer["currency"] is None:
        customer["currency"] = inv["currency"]
    inv["status"] = "open"
    inv["status_transitions"]["finalized_at"] = now
    inv["effective_at"] = now
    inv["hosted_invoice_url"] = f"{ctx.base_url}/i/{inv['id']}/{inv['_hosted_token']}"
    inv["invoice_pdf"] = f"{ctx.base_url}/i/{inv['id']}/{inv['_hosted_token']}/pdf"
    inv["webhooks_delivered_at"] = now
    if inv["collection_method"] == "send_invoice":
        inv["due_date"] = inv.get("due_date") or now + 86400 * (inv.get("_days_until_due") or 30)
    # The customer's credit balance (negative) is used first; a negative total becomes credit.
    total, starting = inv["total"], customer["balance"]
    inv["starting_balance"] = starting
    if total >= 0:
        applied = min(total, -starting) if starting < 0 else -starting
        due = total - applied
        if due < 0:
            due = 0
        ending = starting + (total - due)
    else:
        due = 0
        ending = starting + total
    inv["amount_due"] = inv["amount_remaining"] = due
    inv["ending_balance"] = ending
    if ending != starting:
        customer_before = {"balance": starting}
        customer["balance"] = ending
        ctx.emit("customer.updated", customer, customer_before)
    if due > 0 and inv["collection_method"] == "charge_automatically":
        _invoice_payment_intent(ctx, inv, customer)
    ctx.emit("invoice.finalized", inv, before)
    if due == 0:
        mark_paid(ctx, inv, now)
    return inv


def _invoice_payment_intent(ctx: Context, inv: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    now = ctx.now(customer)
    pi = objects.payment_intent(
        ctx.store.new_id("payment_intent"),
        now,
        ctx.store.random_string(25),
        inv["amount_due"],
        inv["currency"],
    )
    pi["customer"] = customer["id"]
    pi["description"] = {
        "subscription_create": "Subscription creation",
        "subscription_cycle": "Subscription update",
        "subscription_update": "Subscription update",
    }.get(inv["billing_reason"], inv["description"] or "Invoice " + inv["number"])
    pi["_invoice"] = inv["id"]
    ctx.store.add("payment_intent", pi)
    payment = objects.invoice_payment(ctx.store.new_id("invoice_payment"), now, inv, pi["id"])
    ctx.store.add("invoice_payment", payment)
    inv["_payments"] = [*inv.get("_payments", []), payment["id"]]
    inv["_payment_intent"] = pi["id"]
    ctx.emit("payment_intent.created", pi)
    return pi


def invoice_payment_intent(ctx: Context, inv: dict[str, Any]) -> dict[str, Any] | None:
    return ctx.store.get("payment_intent", inv.get("_payment_intent"))


def mark_paid(ctx: Context, inv: dict[str, Any], now: int, *, out_of_band: bool = False) -> None:
    before = {
        "status": inv["status"],
        "amount_paid": inv["amount_paid"],
        "amount_remaining": inv["amount_remaining"],
    }
    inv["status"] = "paid"
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status_transitions"]["paid_at"] = now
    inv["next_payment_attempt"] = None
    if out_of_band:
        pi = invoice_payment_intent(ctx, inv)
        if pi is not None and pi["status"] not in ("succeeded", "canceled"):
            pi["status"] = "canceled"
            pi["canceled_at"] = now
            pi["cancellation_reason"] = "abandoned"
            ctx.emit("payment_intent.canceled", pi)
    for pay_id in inv.get("_payments", []):
        payment = ctx.store.get("invoice_payment", pay_id)
        pi = ctx.store.get("payment_intent", payment["payment"]["payment_intent"]) if payment else None
        if payment and pi and pi["status"] == "succeeded":
            payment["status"] = "paid"
            payment["amount_paid"] = pi["amount_received"]
            payment["status_transitions"]["paid_at"] = now
    ctx.emit("invoice.paid", inv, before)
    ctx.emit("invoice.payment_succeeded", inv, before)
    sub = ctx.store.get("subscription", inv.get("_subscription"))
    if sub is not None:
        subscriptions.subscription_paid(ctx, sub, inv)


def pay_invoice(
    ctx: Context, inv: dict[str, Any], *, pm: dict[str, Any] | None = None, off_session: bool = True
) -> PaymentResult:
    """One payment attempt on an open invoice; the caller decides whether a failure is an error."""
    customer = ctx.store.require("customer", inv["customer"])
    sub = ctx.store.get("subscription", inv.get("_subscription"))
    if inv["status"] == "draft":
        finalize_invoice(ctx, inv)
    if inv["status"] == "paid":
        return PaymentResult("succeeded")
    if inv["status"] not in ("open", "uncollectible"):
        raise InvalidRequestError(f"You cannot pay an invoice with status {inv['status']}.", param="invoice")
    pm = pm or default_payment_method(ctx, customer, sub, inv)
    pi = invoice_payment_intent(ctx, inv)
    if pi is None or pi["status"] in ("canceled", "succeeded"):
        pi = _invoice_payment_intent(ctx, inv, customer)
    if pm is None:
        error = InvalidRequestError(
            "This customer has no attached payment source or default payment method. Please consider "
            "adding a "
            "default payment method.",
        )
        payment_failed(ctx, inv, now=ctx.now(customer))
        return PaymentResult("failed", error)
    if pm["customer"] != customer["id"]:
        payments.attach(ctx, pm, customer)
    # The invoice follows its PaymentIntent through the hooks below, whoever confirms it.
    return payments.confirm_payment_intent(ctx, pi, pm, off_session=off_session)


def invoice_payment_attempt_failed(ctx: Context, pi: dict[str, Any]) -> None:
    """Called when a PaymentIntent made for an invoice is declined."""
    inv = ctx.store.get("invoice", pi.get("_invoice"))
    if inv is not None and inv["status"] in ("open", "uncollectible"):
        payment_failed(ctx, inv, now=ctx.now(inv))


def invoice_action_required(ctx: Context, pi: dict[str, Any]) -> None:
    """Called when a PaymentIntent made for an invoice needs the customer's authentication."""
    inv = ctx.store.get("invoice", pi.get("_invoice"))
    if inv is not None and inv["status"] in ("open", "uncollectible"):
        inv["attempted"] = True
        inv["attempt_count"] += 1
        ctx.emit("invoice.payment_action_required", inv)


def invoice_payment_succeeded(ctx: Context, pi: dict[str, Any]) -> None:
    """Called when a PaymentIntent made for an invoice succeeds (also when the customer confirms it)."""
    inv = ctx.store.get("invoice", pi.get("_invoice"))
    if inv is None or inv["status"] not in ("open", "uncollectible"):
        return
    inv["attempted"] = True
    inv["attempt_count"] += 1
    sub = ctx.store.get("subscription", inv.get("_subscription"))
    pm = ctx.store.get("payment_method", pi["payment_method"])
    if (
        sub is not None
        and pm is not None
        and sub["payment_settings"]["save_default_payment_method"] == "on_subscription"
    ):
        if pm["customer"] is None:
            payments.attach(ctx, pm, ctx.store.require("customer", sub["customer"]))
        sub["default_payment_method"] = pm["id"]
    mark_paid(ctx, inv, ctx.now(inv))


def payment_failed(ctx: Context, inv: dict[str, Any], *, now: int) -> None:
    before = {"attempt_count": inv["attempt_count"], "attempted": inv["attempted"]}
    inv["attempted"] = True
    inv["attempt_count"] += 1
    sub = ctx.store.get("subscription", inv.get("_subscription"))
    retry_days = ctx.store.extra.get("retry_days", list(DEFAULT_RETRY_DAYS))
    if (
        sub is not None
        and inv["billing_reason"] != "subscription_create"
        and inv["attempt_count"] <= len(retry_days)
    ):
        inv["next_payment_attempt"] = now + 86400 * retry_days[inv["attempt_count"] - 1]
    else:
        inv["next_payment_attempt"] = None
    ctx.emit("invoice.payment_failed", inv, before)
    if sub is not None and sub["status"] in ("active", "trialing"):
        subscriptions.set_status(ctx, sub, "past_due")


def void_invoice(ctx: Context, inv: dict[str, Any]) -> dict[str, Any]:
    if inv["status"] not in ("open", "uncollectible"):
        raise InvalidRequestError(
            f"You can only pass in open or uncollectible invoices. This invoice is {inv['status']}."
        )
    now = ctx.now(inv)
    before = {"status": inv["status"]}
    inv["status"] = "void"
    inv["status_transitions"]["voided_at"] = now
    inv["amount_remaining"] = 0
    inv["next_payment_attempt"] = None
    pi = invoice_payment_intent(ctx, inv)
    if pi is not None and pi["status"] not in ("succeeded", "canceled"):
        pi["status"] = "canceled"
        pi["canceled_at"] = now
        pi["cancellation_reason"] = "void_invoice"
        ctx.emit("payment_intent.canceled", pi)
    ctx.emit("invoice.voided", inv, before)
    return inv


def mark_uncollectible(ctx: Context, inv: dict[str, Any]) -> dict[str, Any]:
    if inv["status"] != "open":
        raise InvalidRequestError(
            f"You can only mark open invoices as uncollectible. This invoice is {inv['status']}."
        )
    before = {"status": inv["status"]}
    inv["status"] = "uncollectible"
    inv["status_transitions"]["marked_uncollectible_at"] = ctx.now(inv)
    inv["next_payment_attempt"] = None
    ctx.emit("invoice.marked_uncollectible", inv, before)
    return inv


def retry_invoice_payment(ctx: Context, inv: dict[str, Any]) -> PaymentResult:
    """Stripe's automatic collection retry of a failed renewal; after the last scheduled retry the
    subscription takes the final action (`cancel` by default, or `unpaid`, or stays `past_due`)."""
    result = pay_invoice(ctx, inv, off_session=True)
    retries = ctx.store.extra.get("retry_days", list(DEFAULT_RETRY_DAYS))
    sub = ctx.store.get("subscription", inv.get("_subscription"))
    if result.status != "succeeded" and sub is not None and inv["attempt_count"] > len(retries):
        action = ctx.store.extra.get("final_action", DEFAULT_FINAL_ACTION)
        if action == "cancel":
            subscriptions.cancel_subscription(ctx, sub, reason="payment_failed")
        elif action == "unpaid":
            subscriptions.set_status(ctx, sub, "unpaid")
    return result


# ---------------------------------------------------------------------- invoice items and previews
def new_invoice_item(
    ctx: Context,
    customer: dict[str, Any],
    *,
    price: dict[str, Any] | None = None,
    quantity: int = 1,
    amount: int | None = None,
    currency: str | None = None,
    description: str | None = None,
    sub: dict[str, Any] | None = None,
    sub_item: dict[str, Any] | None = None,
    period: tuple[int, int] | None = None,
    proration: bool = False,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    now = ctx.now(customer)
    ii = objects.invoiceitem(
        ctx.store.new_id("invoiceitem"),
        now,
        customer["id"],
        (price or {}).get("currency") or currency or "usd",
    )
    if price is not None:
        ii["amount"] = unit_amount(price) * quantity if amount is None else amount
        ii["pricing"] = {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        }
    else:
        ii["amount"] = amount or 0
        ii["pricing"] = {
            "price_details": None,
            "type": "price_details",
            "unit_amount_decimal": str(ii["amount"]),
        }
    ii["net_amount"] = ii["amount"]
    ii["quantity"] = quantity
    ii["quantity_decimal"] = str(quantity)
    ii["description"] = description or (describe_item(ctx, price, quantity) if price else None)
    ii["proration"] = proration
    ii["metadata"] = metadata or {}
    ii["test_clock"] = customer.get("test_clock")
    if period:
        ii["period"] = {"end": period[1], "start": period[0]}
    if sub is not None:
        ii["parent"] = {
            "subscription_details": {
                "subscription": sub["id"],
                "subscription_item": sub_item["id"] if sub_item else None,
            },
            "type": "subscription_details",
        }
    ctx.store.add("invoiceitem", ii)
    ctx.emit("invoiceitem.created", ii)
    return ii


def send_invoice(ctx: Context, inv: dict[str, Any]) -> dict[str, Any]:
    if inv["status"] != "open":
        raise InvalidRequestError("You can only send an invoice that is open.", param="invoice")
    ctx.emit("invoice.sent", inv)
    return inv


def _preview_line(
    ctx: Context,
    inv: dict[str, Any],
    *,
    amount: int,
    description: str,
    period: tuple[int, int],
    quantity: int = 1,
    price: dict[str, Any] | None = None,
    sub_item: dict[str, Any] | None = None,
    proration: bool = False,
) -> dict[str, Any]:
    """A line of a preview invoice (not stored), shaped as `add_line` shapes stored ones."""
    line = objects.line_item("il_tmp_" + ctx.store.random_string(20), inv["id"], inv["currency"])
    line.update(
        {
            "amount": amount,
            "subtotal": amount,
            "description": description,
            "period": {"end": period[1], "start": period[0]},
            "quantity": quantity,
            "quantity_decimal": str(quantity),
            "subscription": inv.get("_subscription"),
        }
    )
    if price is not None:
        line["pricing"] = {
            "price_details": {"price": price["id"], "product": price["product"]},
            "type": "price_details",
            "unit_amount_decimal": price["unit_amount_decimal"],
        }
    if sub_item is not None and sub_item.get("id"):
        line["metadata"] = dict(sub_item.get("metadata") or {})
        line["parent"] = {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "proration": proration,
                "proration_details": {"credited_items": None},
                "subscription": sub_item["subscription"],
                "subscription_item": sub_item["id"],
            },
            "type": "subscription_item_details",
        }
    return line


def preview_invoice(
    ctx: Context,
    customer: dict[str, Any],
    sub: dict[str, Any] | None,
    *,
    items: list[tuple[dict[str, Any], int, dict[str, Any]]] | None = None,
    prorations: list[Any] = (),
    cycle_from: int | None = None,
    prorations_only: bool = False,
) -> dict[str, Any]:
    """The next invoice (not stored): the next period of `sub` plus pending invoice items.

    For a previewed change (`subscriptions.preview_update`): `items` are the subscription's
    (price, quantity, item) configurations after it, `prorations` its proration specs (first on
    the invoice, as Stripe lists them), `cycle_from` a new billing cycle starting then and billed
    at once (an interval change), `prorations_only` the invoice `always_invoice` makes now."""
    now = ctx.now(customer)
    inv = objects.invoice("upcoming_" + ctx.store.random_string(20), now, customer, "Stripe emulator")
    inv["_lines"] = []
    lines: list[dict[str, Any]] = []
    if sub is not None:
        inv["_subscription"] = sub["id"]
        inv["currency"] = sub["currency"]
        inv["billing_reason"] = (
            "upcoming" if cycle_from is None and not prorations_only else "subscription_update"
        )
        start, end = period_of(ctx, sub)
        for spec in prorations:
            lines.append(
                _preview_line(
                    ctx,
                    inv,
                    amount=spec.amount,
                    description=spec.description,
                    period=spec.period,
                    quantity=spec.quantity,
                    price=spec.price,
                    sub_item=spec.item,
                    proration=True,
                )
            )
        configs = (
            items
            if items is not None
            else [(price_of(ctx, item), item["quantity"], item) for item in items_of(ctx, sub)]
        )
        bill_from = cycle_from if cycle_from is not None else end
        for price, quantity, item in [] if prorations_only else configs:
            recurring = price["recurring"]
            next_end = add_interval(bill_from, recurring["interval"], recurring["interval_count"])
            period = (bill_from, next_end)
            if is_metered(price):  # the usage so far in the current period, billed at its end
                quantity = (
                    0
                    if sub["status"] == "trialing"
                    else metered_usage(ctx, price, customer["id"], (start, now + 1))
                )
                period = (start, end if cycle_from is None else cycle_from)
            lines.append(
                _preview_line(
                    ctx,
                    inv,
                    amount=unit_amount(price) * quantity,
                    description=describe_item(ctx, price, quantity),
                    period=period,
                    quantity=quantity,
                    price=price,
                    sub_item=item,
                )
            )
        if cycle_from is not None or prorations_only:
            inv["period_start"], inv["period_end"] = now, now
            inv["next_payment_attempt"] = now
        else:
            inv["period_start"], inv["period_end"] = start, end
            inv["next_payment_attempt"] = end
    for ii in pending_items(ctx, customer["id"], sub["id"] if sub else None):
        line = objects.line_item("il_tmp_" + ctx.store.random_string(20), inv["id"], ii["currency"])
        line.update(
            {
                "amount": ii["amount"],
                "subtotal": ii["amount"],
                "description": ii["description"],
                "period": ii["period"],
            }
        )
        lines.append(line)
    if not lines:
        raise InvalidRequestError("Nothing to invoice for customer", code="invoice_upcoming_none", status=404)
    total = sum(line["amount"] for line in lines)
    inv.update(
        {
            "subtotal": total,
            "subtotal_excluding_tax": total,
            "total": total,
            "total_excluding_tax": total,
            "amount_due": max(total + customer["balance"], 0),
            "amount_remaining": max(total + customer["balance"], 0),
            "starting_balance": customer["balance"],
            "lines": objects.list_object(f"/v1/invoices/{inv['id']}/lines", lines),
        }
    )
    inv.pop("_lines")
    inv.pop("_subscription", None)
    return inv
