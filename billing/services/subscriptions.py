"""Subscriptions: create, change with proration, cancel, resume."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from djstripe.models import Subscription

from config.exceptions import NotFound, ValidationFailed

from .. import stripe_api, stripe_data
from ..exceptions import SubscriptionExists
from ..models import Organization, Plan, PlanPrice
from ..selectors import (
    organization_customer_get,
    organization_subscriptions_count,
    organization_trial_days,
    plan_get_by_code,
    plan_metered_price_ids,
    plan_metered_prices_all_ids,
    plan_price_for_stripe_price,
    plan_price_get,
    subscription_live_get,
)
from .billing_state import organization_billing_refresh
from .organizations import organization_customer_ensure
from .payment_methods import payment_method_attach


def plan_price_for_subscription(plan_code: str, interval: str) -> PlanPrice:
    """The price a new subscription to `plan_code` pays, or a 400 naming what is wrong."""
    plan = plan_get_by_code(code=plan_code)
    if plan is None:
        raise ValidationFailed(fields={"plan": [f"Unknown plan {plan_code!r}."]})
    if plan.is_free:
        raise ValidationFailed(
            fields={"plan": ["The free plan needs no subscription; cancel the current one to return to it."]}
        )
    price = plan_price_get(plan=plan, interval=interval)
    if price is None or not price.stripe_price_id:
        raise ValidationFailed(fields={"interval": [f"Plan {plan_code!r} has no {interval!r} price."]})
    return price


def subscription_create(
    *,
    organization: Organization,
    plan: str,
    interval: str,
    payment_method: str | None = None,
    trial_days: int | None = None,
):
    """Subscribe the organization to a paid plan. 409 if it has a live subscription, 400 for an
    unknown plan, 402 when the first payment is declined (Stripe then makes no subscription;
    a card given here stays saved, as it does on Stripe's own pages). The trial comes from the
    plan, once per organization (`organization_trial_days`); `trial_days` may only shorten it."""
    price = plan_price_for_subscription(plan, interval)
    if subscription_live_get(organization=organization) is not None:
        raise SubscriptionExists()
    customer = organization_customer_ensure(organization=organization)
    if payment_method:
        # A test token such as `pm_card_visa` becomes a new PaymentMethod when attached: use its id.
        payment_method = payment_method_attach(
            organization=organization, payment_method_id=payment_method, set_default=True
        ).id
        customer = organization_customer_get(organization=organization)
    # The trial is the plan's, once per organization; a client may ask for a shorter one, never
    # a longer one.
    trial = organization_trial_days(organization=organization, plan=price.plan)
    if trial_days is not None:
        trial = min(trial, trial_days)
    has_card = bool(stripe_data.default_payment_method_id(customer.stripe_data))
    if not has_card and not trial:
        raise ValidationFailed(fields={"payment_method": ["A card is needed for a plan without a trial."]})
    generation = organization_subscriptions_count(organization=organization)
    # Same organization, generation and parameters: the same key, so two concurrent requests
    # (or a retried one) make one subscription, never two.
    key = (
        f"subscription:{organization.id}:{generation}:{price.stripe_price_id}:{payment_method or '-'}:{trial}"
    )
    # The subscription pays with the customer's default card (set above when one is given), so
    # replacing the default card later is what the next renewal and Stripe's retries use.
    data = stripe_api.subscription_create(
        customer_id=customer.id,
        price_id=price.stripe_price_id,
        metered_price_ids=plan_metered_price_ids(plan=price.plan, interval=price.interval),
        trial_days=trial or None,
        metadata={"organization_id": str(organization.id), "plan_code": price.plan.code},
        idempotency_key=key,
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def _require_live_subscription(organization: Organization):
    subscription = subscription_live_get(organization=organization)
    if subscription is None:
        raise NotFound("This organization has no subscription.")
    return subscription


def _change_target(organization: Organization, plan: str | None, interval: str | None):
    """The live subscription, its item, its current price and the price of the change."""
    current = _require_live_subscription(organization)
    data = current.stripe_data
    item = next(iter(stripe_data.subscription_items(data)), None)
    price_id = stripe_data.subscription_price_id(data)
    price_now = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    plan_code = plan or (price_now.plan.code if price_now else None)
    new_interval = interval or (price_now.interval if price_now else None)
    if not plan_code or not new_interval:
        raise ValidationFailed(fields={"plan": ["Give a plan or an interval."]})
    price = plan_price_for_subscription(plan_code, new_interval)
    return current, item, price_now, price


def subscription_metered_item_changes(*, subscription: dict, price: PlanPrice) -> list[dict]:
    """The item changes that leave the subscription carrying exactly the metered prices of
    `price`'s plan and interval (`PlanMeteredPrice`): delete the others' metered items, add the
    missing ones. Empty when nothing is to change. The plan's own item (the first) is left alone."""
    wanted = plan_metered_price_ids(plan=price.plan, interval=price.interval)
    known_metered = plan_metered_prices_all_ids()
    kept: set[str] = set()
    changes: list[dict] = []
    for item in stripe_data.subscription_items(subscription)[1:]:
        item_price = item.get("price") if isinstance(item.get("price"), dict) else {}
        price_id = stripe_data.object_id(item.get("price"))
        is_metered = (item_price.get("recurring") or {}).get("usage_type") == "metered"
        if not is_metered and price_id not in known_metered:
            continue  # not ours to manage
        if price_id in wanted and price_id not in kept:
            kept.add(price_id)
        else:
            changes.append({"id": item["id"], "deleted": True})
    return changes + [{"price": price_id} for price_id in wanted if price_id not in kept]


def subscription_metered_items_sync(*, organization: Organization) -> list[dict]:
    """Give the live subscription the metered items of its plan (and take away others'): for
    subscriptions made or changed outside `subscription_create`/`subscription_change` (Stripe
    Checkout, the portal, the dashboard). Safe to run again: answers the changes it made, none
    when the items were right already (so the webhook it causes ends the loop)."""
    current = subscription_live_get(organization=organization)
    if current is None:
        return []
    price_id = stripe_data.subscription_price_id(current.stripe_data)
    price = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    if price is None:
        return []
    changes = subscription_metered_item_changes(subscription=current.stripe_data, price=price)
    if not changes:
        return []
    signature = ",".join(sorted(c.get("id") or c.get("price") for c in changes))
    data = stripe_api.subscription_items_update(
        subscription_id=current.id,
        items=changes,
        idempotency_key=f"subscription:{current.id}:metered:{signature}",
    )
    with transaction.atomic():
        Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return changes


def metered_items_repair(*, organization: Organization, subscription: dict) -> list[dict]:
    """For the repair (`reconcile --repair`, the daily reconcile): when Stripe's current copy of
    the subscription (`subscription`, just read) lacks its plan's metered items, bring the mirror
    up to it and sync the items. Nothing (and no Stripe call) when they are right."""
    current = subscription.to_dict() if hasattr(subscription, "to_dict") else subscription
    if current.get("status") in ("canceled", "incomplete_expired"):
        return []
    price_id = stripe_data.subscription_price_id(current)
    price = plan_price_for_stripe_price(price_id=price_id) if price_id else None
    if price is None or not subscription_metered_item_changes(subscription=current, price=price):
        return []
    with transaction.atomic():
        Subscription.sync_from_stripe_data(subscription, api_key=settings.STRIPE_SECRET_KEY)
    return subscription_metered_items_sync(organization=organization)


def subscription_change(
    *,
    organization: Organization,
    plan: str | None = None,
    interval: str | None = None,
    proration_date: datetime | None = None,
):
    """Move the subscription to another plan or interval, prorated. `proration_date` (from
    `subscription_change_preview`) makes the prorations exactly those the preview showed; it must
    lie within the current period."""
    current, item, price_now, price = _change_target(organization, plan, interval)
    if price_now is not None and price_now.pk == price.pk:
        return current
    metered = subscription_metered_item_changes(subscription=current.stripe_data, price=price)
    moment = None
    if proration_date is not None:
        start, end = stripe_data.subscription_period(current.stripe_data)
        if start is None or end is None or not start <= proration_date <= end:
            raise ValidationFailed(
                fields={"proration_date": ["Must lie within the subscription's current period."]}
            )
        moment = int(proration_date.timestamp())
    updated = stripe_api.subscription_change_price(
        subscription_id=current.id,
        item_id=item["id"],
        price_id=price.stripe_price_id,
        proration_date=moment,
        extra_items=metered,
        idempotency_key=(
            f"subscription:{current.id}:change:{item['id']}:{price.stripe_price_id}:{moment or '-'}"
        ),
    )
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(updated, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_cancel(*, organization: Organization, immediately: bool):
    current = _require_live_subscription(organization)
    if immediately:
        data = stripe_api.subscription_cancel(subscription_id=current.id)
    else:
        data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=True)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


def subscription_resume(*, organization: Organization):
    """Undo a cancellation at period end (before the period has ended)."""
    current = _require_live_subscription(organization)
    if not current.stripe_data.get("cancel_at_period_end"):
        return current
    data = stripe_api.subscription_set_cancel_at_period_end(subscription_id=current.id, cancel=False)
    with transaction.atomic():
        subscription = Subscription.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
    organization_billing_refresh(organization=organization)
    return subscription


@dataclass(frozen=True)
class InvoicePreviewLine:
    description: str
    amount: int
    proration: bool
    period_start: datetime | None
    period_end: datetime | None


@dataclass(frozen=True)
class InvoicePreview:
    """Stripe's preview of the subscription's next invoice, as is or after a plan change.

    `proration_amount` is the sum of the proration lines (what the change itself costs, negative
    for a credit); `proration_date` is the moment they are computed from, to pass back to
    `subscription_change` so the change makes exactly them."""

    plan: Plan | None
    interval: str | None
    amount_due: int
    total: int
    currency: str
    next_payment_attempt: datetime | None
    proration_amount: int
    proration_date: datetime | None
    lines: list[InvoicePreviewLine]
    date: datetime | None = None  # when it is charged: the next payment attempt, else the period end


def _invoice_preview(data: dict, price: PlanPrice | None) -> InvoicePreview:
    lines = [
        InvoicePreviewLine(
            description=line.get("description") or "",
            amount=int(line.get("amount") or 0),
            proration=stripe_data.invoice_line_is_proration(line),
            period_start=stripe_data.line_period(line)[0],
            period_end=stripe_data.line_period(line)[1],
        )
        for line in ((data.get("lines") or {}).get("data") or [])
    ]
    prorations = [line for line in lines if line.proration]
    return InvoicePreview(
        plan=price.plan if price else None,
        interval=price.interval if price else None,
        amount_due=int(data.get("amount_due") or 0),
        total=int(data.get("total") or 0),
        currency=data.get("currency") or "usd",
        next_payment_attempt=stripe_data.timestamp(data.get("next_payment_attempt")),
        date=stripe_data.invoice_preview_date(data),
        proration_amount=sum(line.amount for line in prorations),
        proration_date=min((line.period_start for line in prorations if line.period_start), default=None),
        lines=lines,
    )


def subscription_upcoming_invoice_get(*, organization: Organization) -> InvoicePreview | None:
    """The next invoice of the organization's subscription as Stripe previews it; None without a
    subscription, when it ends at the period end, or when Stripe has nothing to invoice."""
    current = subscription_live_get(organization=organization)
    if current is None or current.stripe_data.get("cancel_at_period_end"):
        return None
    data = stripe_api.invoice_preview(
        customer_id=stripe_data.object_id(current.stripe_data.get("customer")) or current.customer_id,
        subscription_id=current.id,
    )
    if data is None:
        return None
    price_id = stripe_data.subscription_price_id(current.stripe_data)
    return _invoice_preview(data, plan_price_for_stripe_price(price_id=price_id) if price_id else None)


def subscription_change_preview(
    *, organization: Organization, plan: str | None = None, interval: str | None = None
) -> InvoicePreview:
    """What moving to `plan`/`interval` would cost: Stripe's preview of the next invoice after the
    change (the prorations first). 404 without a subscription; 400 for the current price."""
    current, item, price_now, price = _change_target(organization, plan, interval)
    if price_now is not None and price_now.pk == price.pk:
        raise ValidationFailed(fields={"plan": ["This is the current plan and interval."]})
    data = stripe_api.invoice_preview(
        customer_id=stripe_data.object_id(current.stripe_data.get("customer")) or current.customer_id,
        subscription_id=current.id,
        items=[
            {"id": item["id"], "price": price.stripe_price_id},
            *subscription_metered_item_changes(subscription=current.stripe_data, price=price),
        ],
    )
    if data is None:
        raise NotFound("Stripe has nothing to invoice for this subscription.")
    return _invoice_preview(data, price)
