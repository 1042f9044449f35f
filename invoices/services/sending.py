"""Sending an invoice by e-mail (HTML body, PDF attached), with the notice outbox's rule: the
send is a row first (`InvoiceSend`, visible on the invoice), e-mailed after commit by a task,
and by a beat task when that task was lost. At least once: a worker that dies after the mail left
and before `sent_at` was committed sends it again. A second send to the same address is refused
unless asked for explicitly (`resend`), so a double click sends one e-mail."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from billing.models import Organization

from ..documents import invoice_document_filename, invoice_document_html, invoice_document_pdf
from ..exceptions import InvoiceAlreadySent, InvoiceNotSendable
from ..models import Invoice, InvoiceSend
from ..selectors import invoice_get
from ..tasks import invoice_send_task

logger = logging.getLogger(__name__)

DISPATCH_GRACE = timedelta(minutes=2)
MAX_ATTEMPTS = 6


def invoice_send_queue(
    *,
    organization: Organization,
    invoice_id,
    email: str | None = None,
    resend: bool = False,
    actor: str = "",
) -> InvoiceSend:
    """Log a send of the invoice to `email` (default: the billing e-mail) and e-mail it after
    commit. 409 when it was already sent (or is queued) to that address and `resend` is false."""
    invoice = invoice_get(organization=organization, invoice_id=invoice_id)
    if invoice.status == "draft":
        raise InvoiceNotSendable()
    recipients = [(email or organization.billing_email).strip().lower()]
    with transaction.atomic():
        Invoice.objects.select_for_update().filter(pk=invoice.pk).values_list("pk", flat=True).get()
        earlier = (
            InvoiceSend.objects.filter(
                invoice=invoice,
                recipients=recipients,
                status__in=[InvoiceSend.Status.QUEUED, InvoiceSend.Status.SENT],
            )
            .order_by("-created_at")
            .first()
        )
        if earlier is not None and not resend:
            raise InvoiceAlreadySent(
                extra={"send_id": str(earlier.pk), "sent_at": earlier.sent_at and earlier.sent_at.isoformat()}
            )
        send = InvoiceSend.objects.create(
            invoice=invoice,
            organization=organization,
            recipients=recipients,
            resend=earlier is not None,
            requested_by=actor,
        )
        send_id = send.pk
        transaction.on_commit(lambda: invoice_send_task.delay(str(send_id)))
    return send


def invoice_send_deliver(*, send_id) -> bool:
    """E-mail a logged send. Safe to run twice: a sent row is not sent again. False when there
    was nothing to do."""
    with transaction.atomic():
        send = (
            InvoiceSend.objects.select_for_update()
            .select_related("invoice", "invoice__organization")
            .filter(pk=send_id)
            .first()
        )
        if send is None or send.status != InvoiceSend.Status.QUEUED:
            return False
        invoice = invoice_get(organization=send.invoice.organization, invoice_id=send.invoice_id)
        send.attempts += 1
        try:
            _email(invoice, send.recipients)
        except OSError as exc:  # SMTP trouble: kept queued for the retry and the beat task
            send.error = f"{type(exc).__name__}: {exc}"[:500]
            if send.attempts >= MAX_ATTEMPTS:
                send.status = InvoiceSend.Status.FAILED
            send.save(update_fields=["attempts", "error", "status"])
            logger.warning("invoice send %s failed (attempt %s): %s", send.pk, send.attempts, send.error)
            return False
        send.status = InvoiceSend.Status.SENT
        send.sent_at = timezone.now()
        send.error = ""
        send.save(update_fields=["attempts", "error", "status", "sent_at"])
    return True


def _email(invoice: Invoice, recipients: list[str]) -> None:
    context = {
        "invoice": invoice,
        "title": "Statement" if invoice.is_statement else "Invoice",
        "issuer_name": settings.INVOICE_ISSUER_NAME,
        "invoices_url": f"{settings.SITE_URL}/billing/{invoice.organization_id}/invoices/",
    }
    message = EmailMultiAlternatives(
        subject=render_to_string("emails/invoices/invoice_subject.txt", context).strip(),
        body=render_to_string("emails/invoices/invoice.txt", context),
        to=recipients,
    )
    message.attach_alternative(invoice_document_html(invoice), "text/html")
    message.attach(invoice_document_filename(invoice), invoice_document_pdf(invoice), "application/pdf")
    message.send()


def invoice_sends_dispatch_due() -> int:
    """Send the logged sends whose after-commit task never ran (or failed). Answers how many."""
    due = InvoiceSend.objects.filter(
        status=InvoiceSend.Status.QUEUED, created_at__lte=timezone.now() - DISPATCH_GRACE
    )
    sent = 0
    for send_id in due.order_by("created_at").values_list("pk", flat=True)[:200]:
        sent += int(invoice_send_deliver(send_id=send_id))
    return sent


def invoice_send_pending(*, send_id) -> bool:
    """Still waiting to be e-mailed (the task retries it)."""
    return InvoiceSend.objects.filter(pk=send_id, status=InvoiceSend.Status.QUEUED).exists()
