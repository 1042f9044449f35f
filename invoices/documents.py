"""The invoice document: one template (`invoices/document.html`) for the e-mail's HTML body, its
PDF and `GET /invoices/{id}/pdf`, for Stripe invoices and statements alike.

The PDF is made by xhtml2pdf (ReportLab underneath): pure pip, no system libraries. The document
loads nothing from outside (every `src`/`href` fetch is refused), so the data printed in it can
never make the renderer reach a URL or a file.
"""

from __future__ import annotations

import io
import logging

from django.conf import settings
from django.template.loader import render_to_string
from xhtml2pdf import pisa

from .exceptions import PdfRenderingFailed
from .models import Invoice

logger = logging.getLogger(__name__)


def _context(invoice: Invoice, *, for_pdf: bool) -> dict:
    lines = list(invoice.lines.all())
    address = invoice.customer_address or {}
    address_lines = [
        part
        for part in (
            address.get("line1"),
            address.get("line2"),
            " ".join(p for p in (address.get("postal_code"), address.get("city")) if p),
            address.get("state"),
            address.get("country"),
        )
        if part
    ]
    credit_lines = [line for line in lines if line.credits is not None]
    return {
        "invoice": invoice,
        "lines": lines,
        "has_credits": bool(credit_lines) or invoice.opening_credits is not None,
        "credits_in": sum((line.credits for line in credit_lines if line.credits > 0), start=0),
        "credits_out": sum((line.credits for line in credit_lines if line.credits < 0), start=0),
        "address_lines": address_lines,
        "issuer_name": settings.INVOICE_ISSUER_NAME,
        "issuer_lines": [line for line in settings.INVOICE_ISSUER_ADDRESS.split("|") if line.strip()],
        "title": "Statement" if invoice.is_statement else "Invoice",
        "for_pdf": for_pdf,
    }


def invoice_document_html(invoice: Invoice) -> str:
    """The document as HTML: the e-mail's body. (The tenant's invoice page is its own template,
    `invoices/invoice_detail.html`, in the site's shell, with the PDF link.)"""
    return render_to_string("invoices/document.html", _context(invoice, for_pdf=False))


def _no_fetch(uri: str, rel: str) -> str:
    logger.warning("invoice document asked to load %r: refused", uri[:200])
    return ""


def invoice_document_pdf(invoice: Invoice) -> bytes:
    html = render_to_string("invoices/document.html", _context(invoice, for_pdf=True))
    out = io.BytesIO()
    result = pisa.CreatePDF(html, dest=out, encoding="utf-8", link_callback=_no_fetch)
    if result.err:
        logger.error("PDF of invoice %s: %s errors", invoice.pk, result.err)
        raise PdfRenderingFailed()
    return out.getvalue()


def invoice_document_filename(invoice: Invoice) -> str:
    name = invoice.number or str(invoice.pk)
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name) + ".pdf"
