"""Subscriptions and invoices: periods, prorations, invoice building, finalization, payment and
dunning. Everything that moves a subscription through time lives here, so test clocks (part 2)
reuse `renew_subscription`, `end_trial` and `retry_invoice_payment` as they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import objects, payments
from .clock import add_interval, day_of_month, format_date
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


def set_period(ctx: Context, sub: dict[str, Any], start: int, end: int | None = None) -> None:
    """Every item's period becomes [start, end) (default: one interval of its price from start)."""
    anchor_day = day_of_month(sub["billing_cycle_anchor"])
    for item in items_of(ctx, sub):
        recurring = price_of(ctx, item)["recurring"]
        item["current_period_start"] = start
        item["current_period_end"] = end or add_interval(
            start, recurring["interval"], recurring["interval_count"], anchor_day=anchor_day
        )


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
        inv["subscription"] = sub["id"]
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
            "subscription": inv["subscription"],
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
    sub = ctx.store.get("subscription", inv["subscription"])
    if sub is not None:
        subscription_paid(ctx, sub, inv)


def pay_invoice(
    ctx: Context, inv: dict[str, Any], *, pm: dict[str, Any] | None = None, off_session: bool = True
) -> PaymentResult:
    """One payment attempt on an open invoice; the caller decides whether a failure is an error."""
    customer = ctx.store.require("customer", inv["customer"])
    sub = ctx.store.get("subscription", inv["subscription"])
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
    sub = ctx.store.get("subscription", inv["subscription"])
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
    sub = ctx.store.get("subscription", inv["subscription"])
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
        set_status(ctx, sub, "past_due")


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
    sub = ctx.store.get("subscription", inv["subscription"])
    if result.status != "succeeded" and sub is not None and inv["attempt_count"] > len(retries):
        action = ctx.store.extra.get("final_action", DEFAULT_FINAL_ACTION)
        if action == "cancel":
            cancel_subscription(ctx, sub, reason="payment_failed")
        elif action == "unpaid":
            set_status(ctx, sub, "unpaid")
    return result


# ---------------------------------------------------------------------- subscriptions
def set_status(ctx: Context, sub: dict[str, Any], status: str) -> None:
    if sub["status"] == status:
        return
    before = {"status": sub["status"]}
    sub["status"] = status
    if not sub.get("_creating"):
        ctx.emit("customer.subscription.updated", sub, before)


def subscription_paid(ctx: Context, sub: dict[str, Any], inv: dict[str, Any]) -> None:
    if sub["status"] in ("incomplete", "past_due", "unpaid", "paused"):
        set_status(ctx, sub, "trialing" if sub["trial_end"] and sub["trial_end"] > ctx.now(sub) else "active")


def subscription_amount(ctx: Context, specs: list[ItemSpec]) -> int:
    """What is due up front: metered prices are billed in arrears."""
    return sum(unit_amount(s.price) * s.quantity for s in specs if not is_metered(s.price))


def create_subscription(
    ctx: Context,
    customer: dict[str, Any],
    specs: list[ItemSpec],
    *,
    trial_end: int | None,
    default_pm: dict[str, Any] | None,
    payment_behavior: str,
    collection_method: str,
    days_until_due: int | None,
    metadata: dict[str, str],
    description: str | None,
    cancel_at_period_end: bool,
    off_session: bool,
    one_time: list[ItemSpec],
    missing_pm_behavior: str,
    save_default_payment_method: str = "off",
) -> dict[str, Any]:
    now = ctx.now(customer)
    currency = specs[0].price["currency"]
    pm = default_pm or default_payment_method(ctx, customer)
    amount = subscription_amount(ctx, specs) + subscription_amount(ctx, one_time)
    needs_payment = trial_end is None and amount > 0 and collection_method == "charge_automatically"
    if needs_payment and pm is None and payment_behavior in ("allow_incomplete", "error_if_incomplete"):
        raise InvalidRequestError(
            "This customer has no attached payment source or default payment method. Please consider "
            "adding a "
            "default payment method. For more information, visit "
            "https://stripe.com/docs/billing/subscriptions/"
            "payment-methods-setting#payment-method-priority.",
            code="resource_missing",
        )
    if needs_payment and payment_behavior == "error_if_incomplete" and pm is not None:
        _precheck(ctx, pm, off_session)

    sub = objects.subscription(ctx.store.new_id("subscription", 24), now, customer["id"], currency)
    sub.update(
        {
            "collection_method": collection_method,
            "days_until_due": days_until_due if collection_method == "send_invoice" else None,
            "default_payment_method": default_pm["id"] if default_pm else None,
            "metadata": metadata,
            "description": description,
            "test_clock": customer.get("test_clock"),
            "_items": [],
            "_creating": True,
        }
    )
    sub["trial_settings"]["end_behavior"]["missing_payment_method"] = missing_pm_behavior
    sub["payment_settings"]["save_default_payment_method"] = save_default_payment_method
    for spec in specs:
        si = objects.subscription_item(
            ctx.store.new_id("subscription_item", 14), now, sub["id"], spec.price["id"], spec.quantity
        )
        si["metadata"] = spec.metadata
        ctx.store.add("subscription_item", si)
        sub["_items"].append(si["id"])
    ctx.store.add("subscription", sub)
    if trial_end is not None:
        sub.update(
            {
                "status": "trialing",
                "trial_start": now,
                "trial_end": trial_end,
                "billing_cycle_anchor": trial_end,
            }
        )
        set_period(ctx, sub, now, trial_end)
    else:
        set_period(ctx, sub, now)
    if cancel_at_period_end:
        _schedule_cancel(ctx, sub, now)

    inv = new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason="subscription_create",
        collection_method=collection_method,
        days_until_due=days_until_due,
    )
    period_start, period_end = period_of(ctx, sub)
    for item in items_of(ctx, sub):
        price = price_of(ctx, item)
        trial = trial_end is not None
        metered = is_metered(price)  # billed in arrears: nothing up front
        quantity = 0 if metered else item["quantity"]
        add_line(
            ctx,
            inv,
            amount=0 if trial or metered else unit_amount(price) * quantity,
            description=f"Trial period for {product_name(ctx, price)}"
            if trial
            else describe_item(ctx, price, quantity),
            period=(period_start, period_end),
            price=price,
            quantity=quantity,
            sub_item=item,
        )
    for spec in one_time:
        ii = new_invoice_item(ctx, customer, price=spec.price, quantity=spec.quantity, sub=sub)
        attach_invoice_item(ctx, inv, ii)
    inv["period_start"] = inv["period_end"] = now
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    finalize_invoice(ctx, inv)
    if inv["status"] == "paid":
        if sub["status"] == "incomplete":
            sub["status"] = "active"
    elif collection_method == "send_invoice":
        sub["status"] = "active"
        send_invoice(ctx, inv)
    elif payment_behavior == "default_incomplete":
        pi = invoice_payment_intent(ctx, inv)
        if pi is not None and pm is not None:
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
    else:
        pay_invoice(ctx, inv, pm=pm, off_session=off_session)
    sub.pop("_creating", None)
    ctx.emit("customer.subscription.created", sub)
    return sub


def _precheck(ctx: Context, pm: dict[str, Any], off_session: bool) -> None:
    """`error_if_incomplete`: a payment that would not succeed fails the request and changes nothing."""
    card = payments.test_card(pm)
    if card.decline_code or card.fails_on_attach:
        raise payments.card_error(card, payment_method=ctx.render(pm))
    if card.authentication == "always" or (card.authentication == "setup" and not pm.get("_set_up")):
        raise payments.authentication_error(payment_method=ctx.render(pm))


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


def _schedule_cancel(ctx: Context, sub: dict[str, Any], now: int) -> None:
    _, end = period_of(ctx, sub)
    sub["cancel_at_period_end"] = True
    sub["cancel_at"] = end
    sub["canceled_at"] = now
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def _unschedule_cancel(sub: dict[str, Any]) -> None:
    sub["cancel_at_period_end"] = False
    sub["cancel_at"] = None
    sub["canceled_at"] = None
    sub["cancellation_details"] = {"comment": None, "feedback": None, "reason": None}


def cancel_subscription(
    ctx: Context,
    sub: dict[str, Any],
    *,
    reason: str = "cancellation_requested",
    prorate: bool = False,
    invoice_now: bool = False,
    comment: str | None = None,
    feedback: str | None = None,
) -> dict[str, Any]:
    if sub["status"] in ("canceled", "incomplete_expired"):
        raise InvalidRequestError(
            f"A canceled subscription can only update its cancellation_details and metadata. ({sub['id']})",
            code="resource_missing",
        )
    customer = ctx.store.require("customer", sub["customer"])
    now = ctx.now(customer)
    if prorate and sub["status"] == "active":
        _proration_items(ctx, sub, customer, removed=items_of(ctx, sub), added=[], at=now)
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    sub["cancel_at_period_end"] = False
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    for inv in ctx.store.all("invoice"):  # automatic collection stops; the invoices stay open
        if inv["subscription"] == sub["id"] and inv["status"] == "open":
            inv["next_payment_attempt"] = None
    if invoice_now:
        items = pending_items(ctx, customer["id"], sub["id"])
        if items:
            inv = new_invoice(ctx, customer, sub=sub, billing_reason="subscription_update")
            for ii in items:
                attach_invoice_item(ctx, inv, ii)
            sub["latest_invoice"] = inv["id"]
            ctx.emit("invoice.created", inv)
            finalize_invoice(ctx, inv)
            if inv["status"] == "open":
                pay_invoice(ctx, inv)
    ctx.emit("customer.subscription.deleted", sub)
    return sub


def _proration_items(
    ctx: Context,
    sub: dict[str, Any],
    customer: dict[str, Any],
    *,
    removed: list[dict[str, Any]],
    added: list[tuple[dict[str, Any], int, dict[str, Any]]],
    at: int,
) -> list[dict[str, Any]]:
    """Credit for the unused time of `removed` items, charge for the remaining time of `added`
    (price, quantity, item) configurations, from `at` to the end of the current period."""
    start, end = period_of(ctx, sub)
    if end <= start or at >= end:
        return []
    fraction = (end - at) / (end - start)
    created = []
    when = format_date(at)
    for item in removed:
        price = price_of(ctx, item)
        if is_metered(price):
            continue
        amount = -round(unit_amount(price) * item["quantity"] * fraction)
        if amount:
            created.append(
                new_invoice_item(
                    ctx,
                    customer,
                    price=price,
                    quantity=item["quantity"],
                    amount=amount,
                    sub=sub,
                    sub_item=item,
                    period=(at, end),
                    proration=True,
                    description=f"Unused time on {item['quantity']} {TIMES} {product_name(ctx, price)} after {when}",  # noqa: E501
                )
            )
    for price, quantity, item in added:
        if is_metered(price):
            continue
        amount = round(unit_amount(price) * quantity * fraction)
        if amount:
            created.append(
                new_invoice_item(
                    ctx,
                    customer,
                    price=price,
                    quantity=quantity,
                    amount=amount,
                    sub=sub,
                    sub_item=item,
                    period=(at, end),
                    proration=True,
                    description=f"Remaining time on {quantity} {TIMES} {product_name(ctx, price)} after {when}",  # noqa: E501
                )
            )
    return created


@dataclass
class ItemChange:
    item_id: str | None
    price: dict[str, Any] | None
    quantity: int | None
    deleted: bool = False
    metadata: dict[str, str] | None = None


def update_items(
    ctx: Context,
    sub: dict[str, Any],
    changes: list[ItemChange],
    *,
    proration_behavior: str,
    proration_date: int | None,
    payment_behavior: str,
) -> dict[str, Any] | None:
    """Applies item changes with prorations; returns the invoice made at once, if any."""
    customer = ctx.store.require("customer", sub["customer"])
    now = ctx.now(customer)
    at = proration_date or now
    old_interval = _interval(ctx, sub)
    removed: list[dict[str, Any]] = []
    added: list[tuple[dict[str, Any], int, dict[str, Any]]] = []
    start, end = period_of(ctx, sub)
    for change in changes:
        if change.item_id is not None:
            item = ctx.store.get("subscription_item", change.item_id)
            if item is None or item["subscription"] != sub["id"]:
                raise InvalidRequestError(
                    f"No such subscription item: '{change.item_id}'", code="resource_missing", param="items"
                )
            if change.deleted:
                removed.append(dict(item))
                sub["_items"].remove(item["id"])
                ctx.store.remove("subscription_item", item["id"])
                continue
            new_price = change.price or price_of(ctx, item)
            new_quantity = change.quantity if change.quantity is not None else item["quantity"]
            if new_price["id"] != item["price"] or new_quantity != item["quantity"]:
                removed.append(dict(item))
                item["price"] = new_price["id"]
                item["quantity"] = new_quantity
                added.append((new_price, new_quantity, item))
            if change.metadata is not None:
                from .params import merge_metadata

                item["metadata"] = merge_metadata(item["metadata"], change.metadata)
        else:
            assert change.price is not None
            item = objects.subscription_item(
                ctx.store.new_id("subscription_item", 14),
                now,
                sub["id"],
                change.price["id"],
                change.quantity or 1,
            )
            item["metadata"] = change.metadata or {}
            item["current_period_start"], item["current_period_end"] = start, end
            ctx.store.add("subscription_item", item)
            sub["_items"].append(item["id"])
            added.append((change.price, item["quantity"], item))
    if not items_of(ctx, sub):
        raise InvalidRequestError("A subscription must have at least one active plan.", param="items")
    currencies = {price_of(ctx, i)["currency"] for i in items_of(ctx, sub)}
    if len(currencies) > 1:
        raise InvalidRequestError("All prices on a subscription must have the same currency.", param="items")
    new_interval = _interval(ctx, sub)
    if not removed and not added:
        return None
    if sub["status"] == "trialing":
        return None
    if new_interval != old_interval:
        # A new billing interval restarts the cycle now: credit the unused time, bill the new period at once.
        credits = (
            _proration_items(ctx, sub, customer, removed=removed, added=[], at=now)
            if proration_behavior != "none"
            else []
        )
        sub["billing_cycle_anchor"] = now
        set_period(ctx, sub, now)
        return _invoice_now(ctx, sub, customer, credits, payment_behavior, include_cycle=True)
    if proration_behavior == "none":
        return None
    items = _proration_items(ctx, sub, customer, removed=removed, added=added, at=at)
    if proration_behavior == "always_invoice" and items:
        return _invoice_now(ctx, sub, customer, items, payment_behavior, include_cycle=False)
    return None


def _interval(ctx: Context, sub: dict[str, Any]) -> tuple[str, int] | None:
    items = items_of(ctx, sub)
    if not items:
        return None
    recurring = price_of(ctx, items[0])["recurring"]
    return recurring["interval"], recurring["interval_count"]


def _invoice_now(
    ctx: Context,
    sub: dict[str, Any],
    customer: dict[str, Any],
    items: list[dict[str, Any]],
    payment_behavior: str,
    *,
    include_cycle: bool,
) -> dict[str, Any]:
    inv = new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason="subscription_update",
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
    )
    for ii in pending_items(ctx, customer["id"], sub["id"]):
        attach_invoice_item(ctx, inv, ii)
    if include_cycle:
        _cycle_lines(ctx, sub, inv)
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    finalize_invoice(ctx, inv)
    if inv["status"] == "open" and sub["collection_method"] == "charge_automatically":
        if payment_behavior == "default_incomplete":
            return inv
        pay_invoice(ctx, inv, off_session=True)
    return inv


def _cycle_lines(
    ctx: Context, sub: dict[str, Any], inv: dict[str, Any], usage_period: tuple[int, int] | None = None
) -> None:
    """The lines of a new period: licensed prices for the period ahead, metered prices for the
    usage recorded over `usage_period` (the period just ended; none after a trial)."""
    start, end = period_of(ctx, sub)
    for item in items_of(ctx, sub):
        price = price_of(ctx, item)
        if is_metered(price):
            usage = metered_usage(ctx, price, sub["customer"], usage_period) if usage_period else 0
            add_line(
                ctx,
                inv,
                amount=unit_amount(price) * usage,
                description=describe_item(ctx, price, usage),
                period=usage_period or (start, end),
                price=price,
                quantity=usage,
                sub_item=item,
            )
            continue
        add_line(
            ctx,
            inv,
            amount=unit_amount(price) * item["quantity"],
            description=describe_item(ctx, price, item["quantity"]),
            period=(start, end),
            price=price,
            quantity=item["quantity"],
            sub_item=item,
        )


def start_new_period(
    ctx: Context, sub: dict[str, Any], start: int, billing_reason: str, *, bill_usage: bool = True
) -> dict[str, Any] | None:
    """A new billing period from `start`: the invoice for it (with pending invoice items and the
    metered usage of the period that ended) and its payment. Used when a trial ends and, by test
    clocks, at every renewal."""
    customer = ctx.store.require("customer", sub["customer"])
    usage_period = period_of(ctx, sub) if bill_usage else None
    set_period(ctx, sub, start)
    inv = new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason=billing_reason,
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
    )
    _cycle_lines(ctx, sub, inv, usage_period)
    for ii in pending_items(ctx, customer["id"], sub["id"]):
        attach_invoice_item(ctx, inv, ii)
    inv["period_start"], inv["period_end"] = start, start
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    if sub["status"] == "unpaid":
        return inv  # an unpaid subscription's new invoices stay drafts
    finalize_invoice(ctx, inv)
    if inv["status"] == "open":
        if sub["collection_method"] == "send_invoice":
            send_invoice(ctx, inv)
        else:
            pay_invoice(ctx, inv, off_session=True)
    return inv


def end_trial(ctx: Context, sub: dict[str, Any], now: int) -> None:
    """The trial is over: bill the first paid period, or follow `trial_settings` when there is no
    payment method (`create_invoice` bills anyway, `pause` pauses, `cancel` cancels)."""
    before = {"status": sub["status"], "trial_end": sub["trial_end"]}
    customer = ctx.store.require("customer", sub["customer"])
    sub["trial_end"] = now
    sub["billing_cycle_anchor"] = now
    behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    has_pm = default_payment_method(ctx, customer, sub) is not None
    if not has_pm and sub["collection_method"] == "charge_automatically" and behaviour in ("pause", "cancel"):
        if behaviour == "cancel":
            cancel_subscription(ctx, sub, reason="cancellation_requested")
            return
        set_period(ctx, sub, now)
        sub["status"] = "paused"
        ctx.emit("customer.subscription.paused", sub, before)
        ctx.emit("customer.subscription.updated", sub, before)
        return
    sub["status"] = "active"
    ctx.emit("customer.subscription.updated", sub, before)
    start_new_period(ctx, sub, now, "subscription_cycle", bill_usage=False)


def renew_subscription(ctx: Context, sub: dict[str, Any]) -> dict[str, Any] | None:
    """The current period is over: cancel if asked to, else end the trial or bill the next period."""
    _, end = period_of(ctx, sub)
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= end):
        cancel_subscription(ctx, sub, reason="cancellation_requested")
        return None
    if sub["status"] == "trialing":
        end_trial(ctx, sub, end)
        return ctx.store.get("invoice", sub["latest_invoice"])
    if sub["status"] in ("canceled", "incomplete", "incomplete_expired", "paused"):
        return None
    before_period = period_of(ctx, sub)
    inv = start_new_period(ctx, sub, end, "subscription_cycle")
    ctx.emit(
        "customer.subscription.updated",
        sub,
        {"items": {"current_period_start": before_period[0], "current_period_end": before_period[1]}},
    )
    return inv


def resume_subscription(ctx: Context, sub: dict[str, Any]) -> dict[str, Any]:
    if sub["status"] != "paused":
        raise InvalidRequestError("Only paused subscriptions can be resumed.", param="subscription")
    now = ctx.now(sub)
    before = {"status": "paused"}
    sub["status"] = "active"
    sub["billing_cycle_anchor"] = now
    ctx.emit("customer.subscription.resumed", sub, before)
    ctx.emit("customer.subscription.updated", sub, before)
    start_new_period(ctx, sub, now, "subscription_update", bill_usage=False)
    return sub


def preview_invoice(ctx: Context, customer: dict[str, Any], sub: dict[str, Any] | None) -> dict[str, Any]:
    """The next invoice (not stored): the next period of `sub` plus pending invoice items."""
    now = ctx.now(customer)
    inv = objects.invoice("upcoming_" + ctx.store.random_string(20), now, customer, "Stripe emulator")
    inv["_lines"] = []
    lines: list[dict[str, Any]] = []
    if sub is not None:
        inv["subscription"] = sub["id"]
        inv["currency"] = sub["currency"]
        inv["billing_reason"] = "upcoming"
        start, end = period_of(ctx, sub)
        for item in items_of(ctx, sub):
            price = price_of(ctx, item)
            recurring = price["recurring"]
            next_end = add_interval(end, recurring["interval"], recurring["interval_count"])
            quantity, period = item["quantity"], {"end": next_end, "start": end}
            if is_metered(price):  # the usage so far in the current period, billed at its end
                quantity = (
                    0
                    if sub["status"] == "trialing"
                    else metered_usage(ctx, price, customer["id"], (start, now + 1))
                )
                period = {"end": end, "start": start}
            line = objects.line_item("il_tmp_" + ctx.store.random_string(20), inv["id"], inv["currency"])
            line.update(
                {
                    "amount": unit_amount(price) * quantity,
                    "subtotal": unit_amount(price) * quantity,
                    "description": describe_item(ctx, price, quantity),
                    "period": period,
                    "quantity": quantity,
                    "subscription": sub["id"],
                }
            )
            lines.append(line)
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
        raise InvalidRequestError("Nothing to invoice for customer", code="invoice_upcoming_none")
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
    return inv
