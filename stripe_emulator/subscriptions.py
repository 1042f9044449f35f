"""Subscriptions: creation, status, periods, prorations, item changes, cancellation, trials and
renewals. Test clocks and the scheduler (`timeline.py`) call `renew_subscription`, `end_trial` and
`invoicing.retry_invoice_payment` as they are."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import invoicing, objects, payments
from .clock import add_interval, day_of_month, format_date
from .errors import InvalidRequestError

if TYPE_CHECKING:
    from .app import Context

RENEWAL_DRAFT_SECONDS = 3600


def set_period(ctx: Context, sub: dict[str, Any], start: int, end: int | None = None) -> None:
    """Every item's period becomes [start, end) (default: one interval of its price from start)."""
    anchor_day = day_of_month(sub["billing_cycle_anchor"])
    for item in invoicing.items_of(ctx, sub):
        recurring = invoicing.price_of(ctx, item)["recurring"]
        item["current_period_start"] = start
        item["current_period_end"] = end or add_interval(
            start, recurring["interval"], recurring["interval_count"], anchor_day=anchor_day
        )


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


def subscription_amount(ctx: Context, specs: list[invoicing.ItemSpec]) -> int:
    """What is due up front: metered prices are billed in arrears."""
    return sum(
        invoicing.unit_amount(s.price) * s.quantity for s in specs if not invoicing.is_metered(s.price)
    )


def create_subscription(
    ctx: Context,
    customer: dict[str, Any],
    specs: list[invoicing.ItemSpec],
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
    one_time: list[invoicing.ItemSpec],
    missing_pm_behavior: str,
    save_default_payment_method: str = "off",
) -> dict[str, Any]:
    now = ctx.now(customer)
    currency = specs[0].price["currency"]
    pm = default_pm or invoicing.default_payment_method(ctx, customer)
    # The first invoice: the first period (nothing during a trial), one-time items, and the
    # customer's pending invoice items; the customer's credit balance pays first.
    pending = [ii for ii in invoicing.pending_items(ctx, customer["id"]) if not _sub_of_item(ii)]
    amount = (
        (subscription_amount(ctx, specs) if trial_end is None else 0)
        + subscription_amount(ctx, one_time)
        + sum(ii["amount"] for ii in pending)
    )
    due = amount + customer["balance"] if amount > 0 else 0
    needs_payment = due > 0 and collection_method == "charge_automatically"
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
        precheck(ctx, pm, off_session)

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
        schedule_cancel(ctx, sub, now)

    inv = invoicing.new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason="subscription_create",
        collection_method=collection_method,
        days_until_due=days_until_due,
    )
    period_start, period_end = invoicing.period_of(ctx, sub)
    for item in invoicing.items_of(ctx, sub):
        price = invoicing.price_of(ctx, item)
        trial = trial_end is not None
        metered = invoicing.is_metered(price)  # billed in arrears: nothing up front
        quantity = 0 if metered else item["quantity"]
        invoicing.add_line(
            ctx,
            inv,
            amount=0 if trial or metered else invoicing.unit_amount(price) * quantity,
            description=f"Trial period for {invoicing.product_name(ctx, price)}"
            if trial
            else invoicing.describe_item(ctx, price, quantity),
            period=(period_start, period_end),
            price=price,
            quantity=quantity,
            sub_item=item,
        )
    for spec in one_time:
        ii = invoicing.new_invoice_item(ctx, customer, price=spec.price, quantity=spec.quantity, sub=sub)
        invoicing.attach_invoice_item(ctx, inv, ii)
    for ii in pending:
        invoicing.attach_invoice_item(ctx, inv, ii)
    inv["period_start"] = inv["period_end"] = now
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    invoicing.finalize_invoice(ctx, inv)
    if inv["status"] == "paid":
        if sub["status"] == "incomplete":
            sub["status"] = "active"
    elif collection_method == "send_invoice":
        sub["status"] = "active"
        invoicing.send_invoice(ctx, inv)
    elif payment_behavior == "default_incomplete":
        pi = invoicing.invoice_payment_intent(ctx, inv)
        if pi is not None and pm is not None:
            pi["payment_method"] = pm["id"]
            pi["status"] = "requires_confirmation"
    else:
        invoicing.pay_invoice(ctx, inv, pm=pm, off_session=off_session)
    sub.pop("_creating", None)
    ctx.emit("customer.subscription.created", sub)
    return sub


def _sub_of_item(ii: dict[str, Any]) -> str | None:
    return ((ii.get("parent") or {}).get("subscription_details") or {}).get("subscription")


def precheck(ctx: Context, pm: dict[str, Any], off_session: bool) -> None:
    """`error_if_incomplete`: a payment that would not succeed fails the request and changes nothing."""
    card = payments.test_card(pm)
    if card.decline_code or card.fails_on_attach:
        raise payments.card_error(card, payment_method=ctx.render(pm))
    if card.authentication == "always" or (card.authentication == "setup" and not pm.get("_set_up")):
        raise payments.authentication_error(payment_method=ctx.render(pm))


def schedule_cancel(ctx: Context, sub: dict[str, Any], now: int) -> None:
    _, end = invoicing.period_of(ctx, sub)
    sub["cancel_at_period_end"] = True
    sub["cancel_at"] = end
    sub["canceled_at"] = now
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def unschedule_cancel(sub: dict[str, Any]) -> None:
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
        _proration_items(ctx, sub, customer, removed=invoicing.items_of(ctx, sub), added=[], at=now)
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    sub["cancel_at_period_end"] = False
    sub["cancellation_details"] = {"comment": comment, "feedback": feedback, "reason": reason}
    for inv in ctx.store.all("invoice"):  # automatic collection stops; the invoices stay open
        if inv.get("_subscription") == sub["id"] and inv["status"] == "open":
            inv["next_payment_attempt"] = None
    if invoice_now:
        items = invoicing.pending_items(ctx, customer["id"], sub["id"])
        if items:
            inv = invoicing.new_invoice(ctx, customer, sub=sub, billing_reason="subscription_update")
            for ii in items:
                invoicing.attach_invoice_item(ctx, inv, ii)
            sub["latest_invoice"] = inv["id"]
            ctx.emit("invoice.created", inv)
            invoicing.finalize_invoice(ctx, inv)
            if inv["status"] == "open":
                invoicing.pay_invoice(ctx, inv)
    ctx.emit("customer.subscription.deleted", sub)
    return sub


@dataclass
class ProrationSpec:
    """One proration: credit for unused time of a removed configuration (negative) or charge for
    the remaining time of an added one, from `at` to the end of the current period."""

    price: dict[str, Any]
    quantity: int
    amount: int
    item: dict[str, Any]
    period: tuple[int, int]
    description: str


def proration_specs(
    ctx: Context,
    sub: dict[str, Any],
    *,
    removed: list[dict[str, Any]],
    added: list[tuple[dict[str, Any], int, dict[str, Any]]],
    at: int,
) -> list[ProrationSpec]:
    """The prorations of a change at `at` (shared by the change itself and by previews)."""
    start, end = invoicing.period_of(ctx, sub)
    if end <= start or at >= end:
        return []
    fraction = (end - at) / (end - start)
    specs = []
    when = format_date(at)
    for item in removed:
        price = invoicing.price_of(ctx, item)
        if invoicing.is_metered(price):
            continue
        amount = -round(invoicing.unit_amount(price) * item["quantity"] * fraction)
        if amount:
            name = invoicing.product_name(ctx, price)
            specs.append(
                ProrationSpec(
                    price,
                    item["quantity"],
                    amount,
                    item,
                    (at, end),
                    f"Unused time on {item['quantity']} {invoicing.TIMES} {name} after {when}",
                )
            )
    for price, quantity, item in added:
        if invoicing.is_metered(price):
            continue
        amount = round(invoicing.unit_amount(price) * quantity * fraction)
        if amount:
            name = invoicing.product_name(ctx, price)
            specs.append(
                ProrationSpec(
                    price,
                    quantity,
                    amount,
                    item,
                    (at, end),
                    f"Remaining time on {quantity} {invoicing.TIMES} {name} after {when}",
                )
            )
    return specs


def _proration_items(
    ctx: Context,
    sub: dict[str, Any],
    customer: dict[str, Any],
    *,
    removed: list[dict[str, Any]],
    added: list[tuple[dict[str, Any], int, dict[str, Any]]],
    at: int,
) -> list[dict[str, Any]]:
    """Pending invoice items for the prorations of a change (see `proration_specs`)."""
    return [
        invoicing.new_invoice_item(
            ctx,
            customer,
            price=spec.price,
            quantity=spec.quantity,
            amount=spec.amount,
            sub=sub,
            sub_item=spec.item,
            period=spec.period,
            proration=True,
            description=spec.description,
        )
        for spec in proration_specs(ctx, sub, removed=removed, added=added, at=at)
    ]


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
    start, end = invoicing.period_of(ctx, sub)
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
            new_price = change.price or invoicing.price_of(ctx, item)
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
    if not invoicing.items_of(ctx, sub):
        raise InvalidRequestError("A subscription must have at least one active plan.", param="items")
    currencies = {invoicing.price_of(ctx, i)["currency"] for i in invoicing.items_of(ctx, sub)}
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


def preview_update(
    ctx: Context,
    customer: dict[str, Any],
    sub: dict[str, Any],
    changes: list[ItemChange],
    *,
    proration_behavior: str,
    proration_date: int | None,
) -> dict[str, Any]:
    """`create_preview` with `subscription_details`: the invoice the change would lead to, worked
    out as `update_items` works it out, without changing anything."""
    now = ctx.now(customer)
    at = proration_date or now
    configs: dict[str, tuple[dict[str, Any], int, dict[str, Any]]] = {
        item["id"]: (invoicing.price_of(ctx, item), item["quantity"], item)
        for item in invoicing.items_of(ctx, sub)
    }
    removed: list[dict[str, Any]] = []
    added: list[tuple[dict[str, Any], int, dict[str, Any]]] = []
    for n, change in enumerate(changes):
        if change.item_id is None:
            assert change.price is not None
            item = {"id": None, "subscription": sub["id"], "metadata": change.metadata or {}}
            quantity = change.quantity or 1
            configs[f"new_{n}"] = (change.price, quantity, item)
            added.append((change.price, quantity, item))
            continue
        item = ctx.store.get("subscription_item", change.item_id)
        if item is None or item["subscription"] != sub["id"]:
            raise InvalidRequestError(
                f"No such subscription item: '{change.item_id}'",
                code="resource_missing",
                param="subscription_details[items]",
            )
        if change.deleted:
            removed.append(item)
            configs.pop(item["id"], None)
            continue
        price = change.price or invoicing.price_of(ctx, item)
        quantity = change.quantity if change.quantity is not None else item["quantity"]
        if price["id"] != item["price"] or quantity != item["quantity"]:
            removed.append(item)
            configs[item["id"]] = (price, quantity, item)
            added.append((price, quantity, item))
    if not configs:
        raise InvalidRequestError(
            "A subscription must have at least one active plan.", param="subscription_details[items]"
        )
    items = list(configs.values())
    if len({price["currency"] for price, _, _ in items}) > 1:
        raise InvalidRequestError(
            "All prices on a subscription must have the same currency.", param="subscription_details[items]"
        )
    if sub["status"] == "trialing" or (not removed and not added):
        return invoicing.preview_invoice(ctx, customer, sub, items=items)
    recurring = items[0][0]["recurring"]
    if (recurring["interval"], recurring["interval_count"]) != _interval(ctx, sub):
        credits = (
            proration_specs(ctx, sub, removed=removed, added=[], at=now)
            if proration_behavior != "none"
            else []
        )
        return invoicing.preview_invoice(ctx, customer, sub, items=items, prorations=credits, cycle_from=now)
    specs = (
        proration_specs(ctx, sub, removed=removed, added=added, at=at) if proration_behavior != "none" else []
    )
    if proration_behavior == "always_invoice":
        return invoicing.preview_invoice(
            ctx, customer, sub, items=items, prorations=specs, prorations_only=True
        )
    return invoicing.preview_invoice(ctx, customer, sub, items=items, prorations=specs)


def _interval(ctx: Context, sub: dict[str, Any]) -> tuple[str, int] | None:
    items = invoicing.items_of(ctx, sub)
    if not items:
        return None
    recurring = invoicing.price_of(ctx, items[0])["recurring"]
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
    inv = invoicing.new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason="subscription_update",
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
    )
    for ii in invoicing.pending_items(ctx, customer["id"], sub["id"]):
        invoicing.attach_invoice_item(ctx, inv, ii)
    if include_cycle:
        _cycle_lines(ctx, sub, inv)
    sub["latest_invoice"] = inv["id"]
    ctx.emit("invoice.created", inv)
    invoicing.finalize_invoice(ctx, inv)
    if inv["status"] == "open" and sub["collection_method"] == "charge_automatically":
        if payment_behavior == "default_incomplete":
            return inv
        invoicing.pay_invoice(ctx, inv, off_session=True)
    return inv


def _cycle_lines(
    ctx: Context, sub: dict[str, Any], inv: dict[str, Any], usage_period: tuple[int, int] | None = None
) -> None:
    """The lines of a new period: licensed prices for the period ahead, metered prices for the
    usage recorded over `usage_period` (the period just ended; none after a trial)."""
    start, end = invoicing.period_of(ctx, sub)
    for item in invoicing.items_of(ctx, sub):
        price = invoicing.price_of(ctx, item)
        if invoicing.is_metered(price):
            usage = invoicing.metered_usage(ctx, price, sub["customer"], usage_period) if usage_period else 0
            invoicing.add_line(
                ctx,
                inv,
                amount=invoicing.unit_amount(price) * usage,
                description=invoicing.describe_item(ctx, price, usage),
                period=usage_period or (start, end),
                price=price,
                quantity=usage,
                sub_item=item,
            )
            continue
        invoicing.add_line(
            ctx,
            inv,
            amount=invoicing.unit_amount(price) * item["quantity"],
            description=invoicing.describe_item(ctx, price, item["quantity"]),
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
    usage_period = invoicing.period_of(ctx, sub) if bill_usage else None
    set_period(ctx, sub, start)
    inv = invoicing.new_invoice(
        ctx,
        customer,
        sub=sub,
        billing_reason=billing_reason,
        collection_method=sub["collection_method"],
        days_until_due=sub["days_until_due"],
    )
    _cycle_lines(ctx, sub, inv, usage_period)
    for ii in invoicing.pending_items(ctx, customer["id"], sub["id"]):
        invoicing.attach_invoice_item(ctx, inv, ii)
    inv["period_start"], inv["period_end"] = start, start
    sub["latest_invoice"] = inv["id"]
    if sub["status"] == "unpaid":
        ctx.emit("invoice.created", inv)
        return inv  # an unpaid subscription's new invoices stay drafts
    if billing_reason == "subscription_cycle":
        # As in Stripe, a renewal invoice stays a draft for about an hour (`timeline.py` finalizes
        # and charges it at `automatically_finalizes_at`).
        inv["automatically_finalizes_at"] = ctx.now(sub) + RENEWAL_DRAFT_SECONDS
        ctx.emit("invoice.created", inv)
        return inv
    ctx.emit("invoice.created", inv)
    finalize_and_collect(ctx, inv)
    return inv


def finalize_and_collect(ctx: Context, inv: dict[str, Any]) -> dict[str, Any]:
    """A subscription's draft invoice is finalized, then sent (`send_invoice`) or charged."""
    inv["automatically_finalizes_at"] = None
    invoicing.finalize_invoice(ctx, inv)
    if inv["status"] == "open":
        if inv["collection_method"] == "send_invoice":
            invoicing.send_invoice(ctx, inv)
        else:
            invoicing.pay_invoice(ctx, inv, off_session=True)
    return inv


def end_trial(ctx: Context, sub: dict[str, Any], now: int, *, at_once: bool = False) -> None:
    """The trial is over: bill the first paid period, or follow `trial_settings` when there is no
    payment method (`create_invoice` bills anyway, `pause` pauses, `cancel` cancels). At the end
    of the trial period the invoice waits as a draft like any renewal's; `at_once` (an update with
    `trial_end=now`) finalizes and charges it in the request."""
    before = {"status": sub["status"], "trial_end": sub["trial_end"]}
    customer = ctx.store.require("customer", sub["customer"])
    sub["trial_end"] = now
    sub["billing_cycle_anchor"] = now
    behaviour = sub["trial_settings"]["end_behavior"]["missing_payment_method"]
    has_pm = invoicing.default_payment_method(ctx, customer, sub) is not None
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
    inv = start_new_period(ctx, sub, now, "subscription_cycle", bill_usage=False)
    if at_once and inv is not None and inv["status"] == "draft" and inv.get("automatically_finalizes_at"):
        finalize_and_collect(ctx, inv)


def renew_subscription(ctx: Context, sub: dict[str, Any]) -> dict[str, Any] | None:
    """The current period is over: cancel if asked to, else end the trial or bill the next period."""
    _, end = invoicing.period_of(ctx, sub)
    if sub["cancel_at_period_end"] or (sub["cancel_at"] and sub["cancel_at"] <= end):
        cancel_subscription(ctx, sub, reason="cancellation_requested")
        return None
    if sub["status"] == "trialing":
        end_trial(ctx, sub, end)
        return ctx.store.get("invoice", sub["latest_invoice"])
    if sub["status"] in ("canceled", "incomplete", "incomplete_expired", "paused"):
        return None
    before_period = invoicing.period_of(ctx, sub)
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
