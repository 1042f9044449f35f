"""The plan's included credits: granted for each paid subscription period, expiring at its end.

A tenant gains credits only by paying: a trial period (the plan's line costs nothing) grants
nothing, unless the plan says `trial_grants_credits`; then the trial's credits are granted once
per organization (the grant's reference is the organization's, not the invoice's) and the
unspent part is taken back when the subscription is canceled during the trial
(`trial_credits_take_back`)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from billing.models import Organization
from billing.selectors import organizations_with_live_subscription
from billing.services import (
    PaidSubscriptionPeriod,
    subscription_invoice_period_get,
    subscription_paid_periods_recent,
)

from ..formatting import quantize
from ..models import CreditSource
from .ledger import GrantResult, actor_label, credit_grant, credit_grant_expire_now

logger = logging.getLogger(__name__)


def trial_credits_reference(organization: Organization) -> str:
    return f"trial:{organization.pk}"


def subscription_credits_grant(
    *,
    organization: Organization,
    invoice_id: str,
    period_start: datetime,
    period_end: datetime,
    amount,
    trial: bool = False,
) -> GrantResult | None:
    """The plan's included credits for one subscription invoice: once per invoice (once per
    organization for a trial), expiring at the period end (what is left then expires as a
    ledger row)."""
    if quantize(amount) <= 0:
        return None
    label = "Trial credits" if trial else "Subscription credits"
    return credit_grant(
        organization=organization,
        amount=amount,
        source=CreditSource.SUBSCRIPTION,
        reason=f"{label} {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
        expires_at=period_end,
        reference=trial_credits_reference(organization) if trial else f"invoice:{invoice_id}",
        metadata={
            "invoice_id": invoice_id,
            "period_start": period_start.isoformat(),
            "period_end": period_end.isoformat(),
        },
        actor=actor_label(system="subscription"),
    )


def subscription_credits_for_invoice(*, invoice_id: str) -> bool:
    """Grant the included credits of the plan for the period a paid subscription invoice covers
    (re-read from Stripe). Once per invoice, however often it runs. True when credits were granted
    by this call or an earlier one."""
    period = subscription_invoice_period_get(invoice_id=invoice_id)
    if period is None:
        return False
    return _grant_period(period) is not None


def _grant_period(period: PaidSubscriptionPeriod) -> GrantResult | None:
    if period.trial and not period.plan.trial_grants_credits:
        return None  # a tenant gains credits only by paying
    return subscription_credits_grant(
        organization=period.organization,
        invoice_id=period.invoice_id,
        period_start=period.period_start,
        period_end=period.period_end,
        amount=period.plan.included_credits,
        trial=period.trial,
    )


def trial_credits_take_back(*, organization: Organization) -> bool:
    """The subscription ended during its trial: the unspent trial credits go (an `expire` row).
    True when something was taken back; safe to run again."""
    return credit_grant_expire_now(
        organization=organization,
        reference=trial_credits_reference(organization),
        reason="Trial ended without a payment: trial credits taken back",
    )


def subscription_credits_catch_up() -> int:
    """For every organization on a paid plan, the latest paid invoices of its subscription; grants
    what is missing (the grants are keyed on the invoice, so nothing is granted twice)."""
    granted = 0
    for organization in organizations_with_live_subscription():
        try:
            periods = subscription_paid_periods_recent(organization=organization)
        except Exception:
            logger.exception("subscription credits catch-up failed for %s", organization.pk)
            continue
        for period in periods:
            if period.period_end <= timezone.now():
                continue  # that period is over: its credits would expire at once
            result = _grant_period(period)
            granted += int(bool(result and result.created))
    return granted
