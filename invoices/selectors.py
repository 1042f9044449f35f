"""Reads of the invoices app. Every read is scoped to one organization: another tenant's
invoice is simply not found."""

from __future__ import annotations

import heapq
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.core.cache import cache
from django.db.models import Count, Prefetch, QuerySet, Sum
from django.utils import timezone

from billing.exceptions import StripeUnavailable
from billing.models import Organization
from billing.selectors import (
    SubscriptionSummary,
    organization_charges,
    organization_customer_get,
    subscription_summary_get,
)
from billing.services import subscription_upcoming_invoice_get
from credits.formatting import credits_str
from credits.models import CreditPurchase, PurchaseStatus
from credits.selectors import CreditSummary, credit_summary_get
from usage.selectors import usage_summary_get

from .exceptions import InvoiceNotFound
from .models import Invoice, InvoiceKind, InvoiceLine, InvoiceSend


def invoice_list(
    *,
    organization: Organization,
    status: str | None = None,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[Invoice]:
    """The organization's invoices and statements, newest first; `start` (inclusive) and `end`
    (exclusive) bound the date they were made."""
    queryset = Invoice.objects.filter(organization=organization).exclude(kind="statement", status="draft")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
    if start is not None:
        queryset = queryset.filter(created_at__gte=start)
    if end is not None:
        queryset = queryset.filter(created_at__lt=end)
    return queryset.order_by("-created_at", "-id")


def invoice_get(*, organization: Organization, invoice_id) -> Invoice:
    """The organization's invoice with its lines, or `InvoiceNotFound` (404)."""
    try:
        pk = invoice_id if isinstance(invoice_id, uuid.UUID) else uuid.UUID(str(invoice_id))
    except (TypeError, ValueError) as exc:
        raise InvoiceNotFound() from exc
    invoice = (
        invoice_list(organization=organization)
        .select_related("organization")
        .prefetch_related(
            Prefetch("lines", queryset=InvoiceLine.objects.order_by("position")),
            Prefetch("sends", queryset=InvoiceSend.objects.order_by("-created_at")),
        )
        .filter(pk=pk)
        .first()
    )
    if invoice is None:
        raise InvoiceNotFound()
    return invoice


# --------------------------------------------------------------------------- billing summary
@dataclass(frozen=True)
class NextInvoice:
    date: datetime | None
    amount: int
    currency: str


@dataclass(frozen=True)
class BillingSummary:
    subscription: SubscriptionSummary
    next_invoice: NextInvoice | None
    next_invoice_unavailable: bool  # Stripe could not be asked just now
    credits: CreditSummary
    credits_held: Decimal
    open_invoices: int
    amount_due: int
    currency: str
    usage: list[dict]


PREVIEW_CACHE_SECONDS = 60


def next_invoice_get(*, organization: Organization, subscription_id: str | None) -> NextInvoice | None:
    """The organization's next invoice as Stripe previews it (cached for a minute), or None.
    The same preview the dashboard and the upgrade page show (`subscription_upcoming_invoice_get`)."""
    customer = organization_customer_get(organization=organization)
    if customer is None or subscription_id is None:
        return None
    key = f"invoices:preview:{customer.id}:{subscription_id}"
    cached = cache.get(key)
    if cached is not None:
        return cached or None
    preview = subscription_upcoming_invoice_get(organization=organization)
    result = (
        NextInvoice(date=preview.date, amount=preview.amount_due, currency=preview.currency)
        if preview is not None
        else None
    )
    cache.set(key, result or False, PREVIEW_CACHE_SECONDS)
    return result


def billing_summary_get(*, organization: Organization) -> BillingSummary:
    """Plan and status, the next invoice (Stripe's preview), credits, open invoices, and the usage
    highlights against the plan's limits."""
    subscription = subscription_summary_get(organization=organization)
    unavailable = False
    try:
        next_invoice = next_invoice_get(organization=organization, subscription_id=subscription.stripe_id)
    except StripeUnavailable:
        next_invoice, unavailable = None, True
    open_invoices = Invoice.objects.filter(organization=organization, kind=InvoiceKind.STRIPE, status="open")
    totals = open_invoices.aggregate(count=Count("id"), due=Sum("amount_remaining"))
    currency = next_invoice.currency if next_invoice else "usd"
    credits = credit_summary_get(organization=organization)
    return BillingSummary(
        subscription=subscription,
        next_invoice=next_invoice,
        next_invoice_unavailable=unavailable,
        credits=credits,
        credits_held=credits.held,
        open_invoices=totals["count"] or 0,
        amount_due=totals["due"] or 0,
        currency=currency,
        usage=usage_highlights(organization=organization),
    )


USAGE_HIGHLIGHTS = 5


def usage_highlights(*, organization: Organization) -> list[dict]:
    """The metrics nearest their limit this period (then the most used unlimited ones)."""
    summary = usage_summary_get(organization=organization, now=timezone.now())
    used = [m for m in summary.usage if m.current or m.limit is not None]
    used.sort(key=lambda m: (m.percentage is None, -(m.percentage or 0), -m.current, m.metric))
    return [
        {"metric": m.metric, "current": m.current, "limit": m.limit, "percentage": m.percentage}
        for m in used[:USAGE_HIGHLIGHTS]
    ]


# --------------------------------------------------------------------------- billing history
class HistoryKind(StrEnum):
    PAYMENT = "payment"
    INVOICE = "invoice"
    STATEMENT = "statement"
    CREDIT_PURCHASE = "credit_purchase"
    REFUND = "refund"


@dataclass(frozen=True)
class HistoryEntry:
    kind: str
    id: str
    occurred_at: datetime
    description: str
    amount: int
    currency: str
    status: str


@dataclass(frozen=True)
class HistorySource:
    """One kind of entry: a queryset ordered newest first on `time_field`, and how a row reads."""

    kind: str
    queryset: QuerySet
    time_field: str
    entry: Callable[[Any], HistoryEntry]


def _charge_amount(charge, key: str) -> int:
    return int(charge.stripe_data.get(key) or 0)


def _history_sources(organization: Organization) -> list[HistorySource]:
    """A credit purchase is one entry: the card payment that paid it is not listed again as a
    payment (a refund of it is listed, as a refund)."""
    invoices = Invoice.objects.filter(organization=organization)
    purchases = CreditPurchase.objects.filter(organization=organization)
    charges = organization_charges(organization=organization)
    payments = charges.filter(status="succeeded").exclude(
        payment_intent_id__in=purchases.filter(payment_intent_id__isnull=False).values("payment_intent_id")
    )
    return [
        HistorySource(
            HistoryKind.INVOICE,
            invoices.filter(kind=InvoiceKind.STRIPE).exclude(status="draft"),
            "created_at",
            lambda i: HistoryEntry(
                "invoice",
                str(i.pk),
                i.created_at,
                f"Invoice {i.number}".strip(),
                i.total,
                i.currency,
                i.status,
            ),
        ),
        HistorySource(
            HistoryKind.STATEMENT,
            invoices.filter(kind=InvoiceKind.STATEMENT).exclude(status="draft"),
            "created_at",
            lambda i: HistoryEntry(
                "statement", str(i.pk), i.created_at, f"Statement {i.number}", i.total, i.currency, i.status
            ),
        ),
        HistorySource(
            HistoryKind.PAYMENT,
            payments,
            "created",
            lambda c: HistoryEntry(
                "payment",
                c.id,
                c.created,
                c.stripe_data.get("description") or "Card payment",
                _charge_amount(c, "amount_captured") or _charge_amount(c, "amount"),
                c.stripe_data.get("currency") or "usd",
                c.stripe_data.get("status") or "",
            ),
        ),
        HistorySource(
            HistoryKind.REFUND,
            charges.filter(stripe_data__amount_refunded__gt=0),
            "djstripe_updated",
            lambda c: HistoryEntry(
                "refund",
                c.id,
                c.djstripe_updated,
                f"Refund of {c.stripe_data.get('description') or 'a card payment'}",
                -_charge_amount(c, "amount_refunded"),
                c.stripe_data.get("currency") or "usd",
                "refunded" if c.stripe_data.get("refunded") else "partially_refunded",
            ),
        ),
        HistorySource(
            HistoryKind.CREDIT_PURCHASE,
            purchases.filter(status__in=[PurchaseStatus.SUCCEEDED, PurchaseStatus.REFUNDED]),
            "created_at",
            lambda p: HistoryEntry(
                "credit_purchase",
                str(p.pk),
                p.created_at,
                f"{credits_str(p.credits)} credits",
                p.amount,
                p.currency,
                p.status,
            ),
        ),
    ]


def _entry_key(entry: HistoryEntry) -> tuple[datetime, str]:
    return entry.occurred_at, entry.id


@dataclass(frozen=True)
class HistoryPage:
    count: int
    entries: list[HistoryEntry]


def billing_history_page(
    *,
    organization: Organization,
    offset: int,
    limit: int,
    kinds: list[str] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> HistoryPage:
    """Payments, invoices, statements, credit purchases and refunds, newest first, one page.
    Each source is read only as far as the page needs (the first `offset + limit` rows of each,
    merged), so a long history costs what one page costs. `start` inclusive, `end` exclusive."""
    sources = [s for s in _history_sources(organization) if not kinds or s.kind in kinds]
    count = 0
    streams = []
    for source in sources:
        queryset = source.queryset
        if start:
            queryset = queryset.filter(**{f"{source.time_field}__gte": start})
        if end:
            queryset = queryset.filter(**{f"{source.time_field}__lt": end})
        count += queryset.count()
        rows = queryset.order_by(f"-{source.time_field}", "-pk")[: offset + limit]
        streams.append(sorted((source.entry(row) for row in rows), key=_entry_key, reverse=True))
    merged = heapq.merge(*streams, key=_entry_key, reverse=True)
    return HistoryPage(count=count, entries=list(itertools.islice(merged, offset, offset + limit)))
