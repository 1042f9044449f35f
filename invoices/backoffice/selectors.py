"""Reads of the back office: everything about one organization in one place, built from the
selectors of every app (so it lives in the top app, invoices)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from billing import stripe_data
from billing.models import Organization
from billing.selectors import (
    api_key_list,
    audit_entry_list,
    billing_notice_list,
    membership_list,
    organization_charges,
    organization_customer_get,
    organization_subscriptions,
    payment_method_list,
    subscription_summary_get,
)
from credits.selectors import (
    credit_grants_expiring,
    credit_hold_list,
    credit_purchase_list,
    credit_summary_get,
    credit_transaction_list,
)
from usage.selectors import usage_summary_get

from ..selectors import invoice_list


@dataclass(frozen=True)
class OrganizationOverview:
    organization: Organization
    customer_id: str | None
    subscription: Any  # billing.selectors.SubscriptionSummary
    subscriptions: list[dict]
    credits: Any  # credits.selectors.CreditSummary
    expiring: list
    holds: list
    ledger: list
    purchases: list
    usage: Any  # usage.selectors.UsageSummary
    invoices: list
    payments: list[dict]
    cards: list[dict]
    notices: list
    api_keys: list
    members: list
    audit: list


def _subscription_rows(organization: Organization) -> list[dict]:
    rows = []
    for sub in organization_subscriptions(organization=organization).order_by("-created"):
        data = sub.stripe_data
        start, end = stripe_data.subscription_period(data)
        rows.append(
            {
                "id": sub.id,
                "status": data.get("status", ""),
                "created": stripe_data.timestamp(data.get("created")) if data.get("created") else None,
                "period_start": start,
                "period_end": end,
                "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
                "canceled_at": stripe_data.timestamp(data["canceled_at"])
                if data.get("canceled_at")
                else None,
                "trial_end": stripe_data.timestamp(data["trial_end"]) if data.get("trial_end") else None,
            }
        )
    return rows


def _payment_rows(organization: Organization) -> list[dict]:
    rows = []
    for charge in organization_charges(organization=organization)[:20]:
        data = charge.stripe_data
        rows.append(
            {
                "charge": charge.id,
                "payment_intent": stripe_data.object_id(data.get("payment_intent")),
                "amount": int(data.get("amount") or 0),
                "amount_refunded": int(data.get("amount_refunded") or 0),
                "currency": data.get("currency") or "usd",
                "status": data.get("status", ""),
                "disputed": bool(data.get("disputed")),
                "created": stripe_data.timestamp(data["created"]) if data.get("created") else None,
                "description": data.get("description") or "",
            }
        )
    return rows


def organization_overview_get(*, organization: Organization) -> OrganizationOverview:
    customer = organization_customer_get(organization=organization)
    return OrganizationOverview(
        organization=organization,
        customer_id=customer.id if customer is not None else None,
        subscription=subscription_summary_get(organization=organization),
        subscriptions=_subscription_rows(organization),
        credits=credit_summary_get(organization=organization),
        expiring=credit_grants_expiring(organization=organization),
        holds=list(credit_hold_list(organization=organization)[:20]),
        ledger=list(credit_transaction_list(organization=organization)[:25]),
        purchases=list(credit_purchase_list(organization=organization)),
        usage=usage_summary_get(organization=organization, now=timezone.now()),
        invoices=list(invoice_list(organization=organization)[:20]),
        payments=_payment_rows(organization),
        cards=payment_method_list(organization=organization),
        notices=list(billing_notice_list(organization=organization)),
        api_keys=list(api_key_list(organization=organization)),
        members=list(membership_list(organization=organization)),
        audit=list(audit_entry_list(organization=organization)),
    )
