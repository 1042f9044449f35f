"""Stripe invoices kept whole: one `Invoice` (kind `stripe`) per Stripe invoice of an
organization, with every line, in step with the invoice webhooks.

A sync always works from Stripe's current object (dj-stripe's mirror, which dj-stripe has just
re-fetched, or a fresh read with every line), never from an event's copy, and never moves an
invoice back in its life (`STATUS_RANK`): so deliveries in any order, repeated, or racing with
the backfill leave the right status. Lines are replaced only by a complete set, and once the
complete lines of a finalized invoice are stored they are kept (Stripe never changes them).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from billing import stripe_data
from billing.models import Organization
from billing.selectors import organization_customer_get, organization_for_stripe_customer
from billing.services import stripe_invoice_retrieve_whole, stripe_invoices_for_customer

from ..models import STATUS_RANK, Invoice, InvoiceKind, InvoiceLine
from ..tasks import stripe_invoice_sync_task

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    invoice: Invoice | None
    stale: bool = False  # the data was behind what is stored: nothing changed
    lines_missing: bool = False  # the payload did not carry every line: a full read is needed


def stripe_invoice_save(*, data: dict) -> SyncResult:
    """Store a Stripe invoice payload (current state) for its organization. Idempotent."""
    organization = organization_for_stripe_customer(customer_id=stripe_data.object_id(data.get("customer")))
    if organization is None:
        logger.info("invoice %s: its customer belongs to no organization", data.get("id"))
        return SyncResult(invoice=None)
    status = data.get("status") or "draft"
    lines, complete = stripe_data.invoice_lines(data)
    with transaction.atomic():
        Invoice.objects.bulk_create(
            [
                Invoice(
                    organization=organization,
                    kind=InvoiceKind.STRIPE,
                    status=status,
                    stripe_id=data["id"],
                    created_at=stripe_data.timestamp(data.get("created")) or timezone.now(),
                )
            ],
            ignore_conflicts=True,
        )
        invoice = Invoice.objects.select_for_update().get(stripe_id=data["id"])
        if STATUS_RANK.get(status, 0) < STATUS_RANK.get(invoice.status, 0):
            return SyncResult(invoice=invoice, stale=True)
        _apply_header(invoice, data, organization)
        lines_missing = False
        if not invoice.lines_final:
            if complete:
                _replace_lines(invoice, lines)
                invoice.lines_final = status != "draft"
            else:
                lines_missing = True
        invoice.stripe_synced_at = timezone.now()
        invoice.save()
    return SyncResult(invoice=invoice, lines_missing=lines_missing)


def _apply_header(invoice: Invoice, data: dict, organization: Organization) -> None:
    period_start, period_end = stripe_data.invoice_period(data)
    amounts = stripe_data.invoice_amounts(data)
    for name, value in {
        **amounts,
        **stripe_data.invoice_status_times(data),
        "status": data.get("status") or "draft",
        "number": data.get("number") or "",
        "description": data.get("description") or "",
        "currency": (data.get("currency") or "usd").lower(),
        "tax_lines": stripe_data.invoice_tax_lines(data),
        "period_start": period_start,
        "period_end": period_end,
        "due_date": stripe_data.timestamp(data.get("due_date")),
        "customer_name": data.get("customer_name") or organization.name,
        "customer_email": data.get("customer_email") or organization.billing_email,
        "customer_address": data.get("customer_address"),
        "stripe_customer_id": stripe_data.object_id(data.get("customer")) or "",
        "stripe_subscription_id": stripe_data.invoice_subscription_id(data) or "",
        "billing_reason": data.get("billing_reason") or "",
        "collection_method": data.get("collection_method") or "",
        "hosted_url": data.get("hosted_invoice_url") or "",
        "stripe_pdf_url": data.get("invoice_pdf") or "",
    }.items():
        setattr(invoice, name, value)


def _replace_lines(invoice: Invoice, lines: list[dict]) -> None:
    InvoiceLine.objects.filter(invoice=invoice).delete()
    rows = []
    for position, line in enumerate(lines, start=1):
        start, end = stripe_data.line_period(line)
        rows.append(
            InvoiceLine(
                invoice=invoice,
                position=position,
                kind=stripe_data.invoice_line_kind(line),
                stripe_id=line.get("id") or "",
                description=line.get("description") or "",
                quantity=stripe_data.invoice_line_quantity(line),
                amount=int(line.get("amount") or 0),
                currency=(line.get("currency") or invoice.currency).lower(),
                period_start=start,
                period_end=end,
                price_id=stripe_data.invoice_line_price_id(line) or "",
                metadata=line.get("metadata") or {},
            )
        )
    InvoiceLine.objects.bulk_create(rows)


def stripe_invoice_sync(*, invoice_id: str) -> SyncResult:
    """Re-read an invoice from Stripe with every line (outside any transaction) and store it."""
    return stripe_invoice_save(data=stripe_invoice_retrieve_whole(invoice_id=invoice_id))


def stripe_invoice_sync_from_mirror(*, data: dict) -> SyncResult:
    """From a webhook: store the object dj-stripe just re-fetched; when it did not carry every
    line, a task reads the whole invoice after commit."""
    result = stripe_invoice_save(data=data)
    if result.lines_missing:
        invoice_id = data["id"]
        transaction.on_commit(lambda: stripe_invoice_sync_task.delay(invoice_id))
    return result


def stripe_invoice_forget_draft(*, invoice_id: str) -> bool:
    """`invoice.deleted`: Stripe deletes drafts only; the draft goes here too."""
    deleted, _ = Invoice.objects.filter(
        kind=InvoiceKind.STRIPE, stripe_id=invoice_id, status="draft"
    ).delete()
    return bool(deleted)


@dataclass(frozen=True)
class BackfillResult:
    organizations: int
    invoices: int


def stripe_invoices_backfill(*, organizations=None) -> BackfillResult:
    """Read every invoice of the organizations' Stripe customers (all by default) and store each
    whole. Safe to run again and beside the webhooks."""
    queryset = organizations if organizations is not None else Organization.objects.all()
    orgs = invoices = 0
    for organization in queryset.iterator():
        customer = organization_customer_get(organization=organization)
        if customer is None:
            continue
        orgs += 1
        for data in stripe_invoices_for_customer(customer_id=customer.id):
            _, complete = stripe_data.invoice_lines(data)
            result = stripe_invoice_save(data=data) if complete else None
            if result is None or result.lines_missing:
                stripe_invoice_sync(invoice_id=data["id"])
            invoices += 1
    return BackfillResult(organizations=orgs, invoices=invoices)
