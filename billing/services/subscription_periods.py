"""Paid subscription periods, read from Stripe's invoices (the credits app grants on them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from djstripe.models import Customer

from .. import stripe_api, stripe_data
from ..models import Organization, Plan
from ..selectors import plan_price_for_stripe_price, subscription_live_get


@dataclass(frozen=True)
class PaidSubscriptionPeriod:
    """A paid subscription invoice: which organization, which plan, which period it paid for."""

    organization: Organization
    invoice_id: str
    plan: Plan
    period_start: datetime
    period_end: datetime
    trial: bool  # the plan's line was free: a trial period, not a paid one


def _subscription_period_of(invoice: dict) -> PaidSubscriptionPeriod | None:
    if invoice.get("status") != "paid":
        return None
    customer_id = stripe_data.object_id(invoice.get("customer"))
    customer = Customer.objects.filter(id=customer_id).select_related("subscriber").first()
    if customer is None or customer.subscriber is None:
        return None
    for line in (invoice.get("lines") or {}).get("data") or []:
        if not stripe_data.invoice_line_is_subscription_period(line):
            continue
        price = stripe_data.invoice_line_price_id(line)
        plan_price = plan_price_for_stripe_price(price_id=price) if price else None
        if plan_price is None:
            continue
        period_start, period_end = stripe_data.line_period(line)
        return PaidSubscriptionPeriod(
            organization=customer.subscriber,
            invoice_id=invoice["id"],
            plan=plan_price.plan,
            period_start=period_start,
            period_end=period_end,
            trial=not line.get("amount"),
        )
    return None


def subscription_invoice_period_get(*, invoice_id: str) -> PaidSubscriptionPeriod | None:
    """Re-read an invoice from Stripe; the period it paid for when it is a paid subscription
    invoice (not a proration-only one), else None."""
    return _subscription_period_of(stripe_api.invoice_retrieve(invoice_id=invoice_id))


def subscription_paid_periods_recent(
    *, organization: Organization, limit: int = 3
) -> list[PaidSubscriptionPeriod]:
    """The latest paid invoices of the organization's live subscription, from Stripe (for the
    beat task that catches periods the webhooks missed)."""
    subscription = subscription_live_get(organization=organization)
    if subscription is None:
        return []
    invoices = stripe_api.invoices_list(subscription_id=subscription.id, status="paid", limit=limit)
    return [p for p in map(_subscription_period_of, invoices) if p is not None]
