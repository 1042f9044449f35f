"""Staff actions on invoices (the admin calls these): resend, download, void and mark
uncollectible (Stripe invoices), each recorded by `invoice_action_log`.

`invoice_action_log` is the one place an invoice action is audited. It writes the invoices' own
trail (`InvoiceAction`); when the staff audit log of the back office exists, this function is
where it gets called (one line), so every action here lands in both."""

from __future__ import annotations

from django.db import transaction

from billing.services import stripe_invoice_mark_uncollectible, stripe_invoice_void

from ..exceptions import InvoiceActionRefused
from ..models import Invoice, InvoiceAction, InvoiceKind, InvoiceSend
from .sending import invoice_send_queue
from .stripe_sync import stripe_invoice_save


def invoice_action_log(
    *, invoice: Invoice, action: str, actor: str, detail: dict | None = None
) -> InvoiceAction:
    """Record what `actor` (`staff:<id>`, `user:<id>`, ...) did to the invoice."""
    # TODO(lead): when the back office's staff audit log lands on main, call it here too (one line);
    # until then the invoice's own `InvoiceAction` trail is the audit record (no second audit log).
    return InvoiceAction.objects.create(invoice=invoice, action=action, actor=actor, detail=detail or {})


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
        invoice_action_log(invoice=result.invoice, action="void", actor=actor, detail={"was": invoice.status})
    return result.invoice


def invoice_mark_uncollectible(*, invoice: Invoice, actor: str) -> Invoice:
    stripe_id = _stripe_invoice(invoice, "marked uncollectible", {"open"})
    marked = stripe_invoice_mark_uncollectible(invoice_id=stripe_id)
    with transaction.atomic():
        result = stripe_invoice_save(data=marked)
        invoice_action_log(invoice=result.invoice, action="mark_uncollectible", actor=actor)
    return result.invoice


def invoice_resend(*, invoice: Invoice, actor: str, email: str | None = None) -> InvoiceSend:
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
        )
    return send


def invoice_download_log(*, invoice: Invoice, actor: str) -> None:
    """Staff downloaded the PDF (the document may hold billing details: who read it is kept)."""
    invoice_action_log(invoice=invoice, action="download_pdf", actor=actor)
