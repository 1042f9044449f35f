"""The plan's included credits: granted for each paid subscription period, expiring at its end."""

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
from .ledger import GrantResult, actor_label, credit_grant

logger = logging.getLogger(__name__)


def subscription_credits_grant(
    *,
    organization: Organization,
    invoice_id: str,
    period_start: datetime,
    period_end: datetime,
    amount,
) -> GrantResult | None:
    """The plan's included credits for one paid subscription invoice: once per invoice,
    expiring at the period end (what is left then expires as a ledger row)."""
    if quantize(amount) <= 0:
        return None
    return credit_grant(
        organization=organization,
        amount=amount,
        source=CreditSource.SUBSCRIPTION,
        reason=f"Subscription credits {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
        expires_at=period_end,
        reference=f"invoice:{invoice_id}",
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
    return subscription_credits_grant(
        organization=period.organization,
        invoice_id=period.invoice_id,
        period_start=period.period_start,
        period_end=period.period_end,
        amount=period.plan.included_credits,
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
