"""Staff actions on invoices (the admin calls these): resend, download, void and mark
uncollectible (Stripe invoices), each recorded by `invoice_action_log`.

`invoice_action_log` is the one place an invoice action is audited. It writes the invoices' own
trail (`InvoiceAction`) and, for a staff actor (`staff:<id>`), a row of the staff audit log
(`billing.AuditEntry`), so every action here lands in both, from the admin's bulk actions too."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from billing.models import AuditEntry
from billing.services import audit_record, stripe_invoice_mark_uncollectible, stripe_invoice_void

from ..exceptions import InvoiceActionRefused
from ..models import Invoice, InvoiceAction, InvoiceKind, InvoiceSend
from .sending import invoice_send_queue
from .stripe_sync import stripe_invoice_save

AUDITED = {
    "resend": AuditEntry.Action.INVOICE_RESEND,
    "void": AuditEntry.Action.INVOICE_VOID,
    "mark_uncollectible": AuditEntry.Action.INVOICE_MARK_UNCOLLECTIBLE,
    "download_pdf": AuditEntry.Action.INVOICE_DOWNLOAD,
}


def invoice_action_log(
    *,
    invoice: Invoice,
    action: str,
    actor: str,
    detail: dict | None = None,
    reason: str = "",
    before: dict | None = None,
) -> InvoiceAction:
    """Record what `actor` (`staff:<id>`, `user:<id>`, ...) did to the invoice; a staff actor's
    action also goes to the staff audit log."""
    row = InvoiceAction.objects.create(invoice=invoice, action=action, actor=actor, detail=detail or {})
    if actor.startswith("staff:") and action in AUDITED:
        user = get_user_model().objects.filter(pk=actor.removeprefix("staff:") or None).first()
        audit_record(
            actor=user,
            action=AUDITED[action],
            reason=reason,
            organization=invoice.organization,
            target=f"invoice {invoice.number or invoice.stripe_id or invoice.pk}",
            before=before or {"status": invoice.status},
            after={"status": invoice.status, **(detail or {})},
        )
    return row


def _stripe_invoice(invoice: Invoice, action: str, allowed: set[str]) -> str:
    if invoice.kind != InvoiceKind.STRIPE:
        raise InvoiceActionRefused(f"A statement cannot be {action}: it is immutable once issued.")
    if invoice.status not in allowed:
        raise InvoiceActionRefused(f"A {invoice.status} invoice cannot be {action}.")
    return invoice.stripe_id


def invoice_void(*, invoice: Invoice, actor: str) -> Invoice:
    """Void an open or uncollectible Stripe invoice at Stripe, then store Stripe's answer."""
    stripe_id = _stripe_invoice(invoice, "voided", {"open", "uncollectible"})
    voided = stripe_invoice_void(invoice_id=stripe_id)
    with transaction.atomic():
        result = stripe_invoice_save(data=voided)
        invoice_action_log(
            invoice=result.invoice,
            action="void",
            actor=actor,
            detail={"was": invoice.status},
            before={"status": invoice.status},
        )
    return result.invoice


def invoice_mark_uncollectible(*, invoice: Invoice, actor: str) -> Invoice:
    stripe_id = _stripe_invoice(invoice, "marked uncollectible", {"open"})
    marked = stripe_invoice_mark_uncollectible(invoice_id=stripe_id)
    with transaction.atomic():
        result = stripe_invoice_save(data=marked)
        invoice_action_log(
            invoice=result.invoice,
            action="mark_uncollectible",
            actor=actor,
            before={"status": invoice.status},
        )
    return result.invoice


def invoice_resend(
    *, invoice: Invoice, actor: str, email: str | None = None, reason: str = ""
) -> InvoiceSend:
    """Send the invoice again (explicitly a resend) and record it."""
    with transaction.atomic():
        send = invoice_send_queue(
            organization=invoice.organization, invoice_id=invoice.pk, email=email, resend=True, actor=actor
        )
        invoice_action_log(
            invoice=invoice,
            action="resend",
            actor=actor,
            detail={"send": str(send.pk), "to": send.recipients},
            reason=reason,
        )
    return send


def invoice_download_log(*, invoice: Invoice, actor: str) -> None:
    """Staff downloaded the PDF (the document may hold billing details: who read it is kept)."""
    invoice_action_log(invoice=invoice, action="download_pdf", actor=actor)
