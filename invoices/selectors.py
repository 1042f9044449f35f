"""Reads of the invoices app. Every read is scoped to one organization: another tenant's
invoice is simply not found."""

from __future__ import annotations

import uuid

from django.db.models import Prefetch, QuerySet

from billing.models import Organization

from .exceptions import InvoiceNotFound
from .models import Invoice, InvoiceLine, InvoiceSend


def invoice_list(
    *, organization: Organization, status: str | None = None, kind: str | None = None
) -> QuerySet[Invoice]:
    queryset = Invoice.objects.filter(organization=organization).exclude(kind="statement", status="draft")
    if status:
        queryset = queryset.filter(status=status)
    if kind:
        queryset = queryset.filter(kind=kind)
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
