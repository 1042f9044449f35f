"""Tenant pages of the invoices app (`/billing/<org>/invoices/`), on the billing pages frame
(`billing.pages`: sign-in, the organization's roles, the switcher and the section navigation):
the invoices and statements with status and date filters and paging, one invoice with its lines,
its PDF, and "send to my billing e-mail" (the billing role and up; a member is not offered it
and is refused if the form is forced).

Everything is read through `invoices.selectors` and written through `invoices.services`, as the
API does (`GET /invoices`, `GET /invoices/{id}`, `GET /invoices/{id}/pdf`, `POST .../send`)."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import formats
from django.views.decorators.http import require_GET, require_POST

from billing.access import Action
from billing.pages import Page, organization_page, shell_context
from config.exceptions import ApplicationError

from .documents import invoice_document_filename, invoice_document_pdf
from .exceptions import InvoiceAlreadySent
from .forms import InvoiceFilterForm
from .models import Invoice
from .selectors import invoice_get, invoice_list
from .services import invoice_send_queue

PAGE_SIZE = 20


def _invoice(page: Page, invoice_id) -> Invoice:
    try:
        return invoice_get(organization=page.organization, invoice_id=invoice_id)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


def _detail_url(page: Page, invoice: Invoice) -> str:
    return reverse("invoice-page", args=[page.organization.pk, invoice.pk])


@organization_page()
@require_GET
def invoice_list_page(request, page: Page):
    form = InvoiceFilterForm(request.GET or None)
    filters = form.selector_filters() if form.is_bound and form.is_valid() else {}
    invoices = Paginator(invoice_list(organization=page.organization, **filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    context = {
        **shell_context(page, active="invoices", title="Invoices"),
        "form": form,
        "invoices": invoices,
        "previous_query": form.query(page=invoices.previous_page_number()) if invoices.has_previous() else "",
        "next_query": form.query(page=invoices.next_page_number()) if invoices.has_next() else "",
    }
    if request.htmx and request.htmx.target == "invoices":
        return render(request, "invoices/partials/invoice_table.html", context)
    return render(request, "invoices/invoice_list.html", context)


@organization_page()
@require_GET
def invoice_page(request, page: Page, invoice_id):
    invoice = _invoice(page, invoice_id)
    lines = list(invoice.lines.all())
    title = "Statement" if invoice.is_statement else "Invoice"
    context = {
        **shell_context(page, active="invoices", title=f"{title} {invoice.number or ''}".strip()),
        "invoice": invoice,
        "title": title,
        "lines": lines,
        "has_credits": any(line.credits is not None for line in lines) or invoice.opening_credits is not None,
        "sends": list(invoice.sends.all()[:10]),
        "can_send": page.can_pay and invoice.status != "draft",
        "billing_email": page.organization.billing_email,
        "resend_offered": request.GET.get("resend") == "1",
    }
    return render(request, "invoices/invoice_detail.html", context)


@organization_page()
@require_GET
def invoice_pdf_page(request, page: Page, invoice_id):
    invoice = _invoice(page, invoice_id)
    response = HttpResponse(invoice_document_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'attachment; filename="{invoice_document_filename(invoice)}"'
    response["Cache-Control"] = "private, no-store"
    return response


@organization_page(Action.PAY)
@require_POST
def invoice_send_action(request, page: Page, invoice_id):
    """E-mail the invoice (PDF attached) to the organization's billing e-mail, through the task
    the API's `POST /invoices/{id}/send` uses. A second send to the same address asks first."""
    invoice = _invoice(page, invoice_id)
    email = page.organization.billing_email
    try:
        invoice_send_queue(
            organization=page.organization,
            invoice_id=invoice.pk,
            resend=request.POST.get("resend") == "1",
            actor=page.access.actor,
        )
    except InvoiceAlreadySent as exc:
        sent_at = (exc.extra or {}).get("sent_at")
        when = ""
        if sent_at:
            from django.utils.dateparse import parse_datetime

            when = f" on {formats.date_format(parse_datetime(sent_at), 'DATE_FORMAT')}"
        messages.warning(request, f"This invoice was already sent to {email}{when}. Send it again?")
        return redirect(_detail_url(page, invoice) + "?resend=1#send")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_detail_url(page, invoice))
    messages.success(request, f"The invoice is on its way to {email}.")
    return redirect(_detail_url(page, invoice))
