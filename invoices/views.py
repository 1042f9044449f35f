"""Server-rendered invoice pages for tenants: the organization's invoices and statements, each
as the same document the PDF prints, with its PDF."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from billing.selectors import organization_access
from config.exceptions import ApplicationError

from .documents import invoice_document_filename, invoice_document_html, invoice_document_pdf
from .selectors import invoice_get, invoice_list


def _organization(request, org):
    access = organization_access(org_id=org, user=request.user)
    if access is None:
        raise Http404("Organization not found.")
    return access.organization


def _invoice(request, org, invoice_id):
    organization = _organization(request, org)
    try:
        return invoice_get(organization=organization, invoice_id=invoice_id)
    except ApplicationError as exc:
        raise Http404(exc.message) from exc


@login_required
def invoice_list_page(request, org):
    organization = _organization(request, org)
    page = Paginator(invoice_list(organization=organization), 25).get_page(request.GET.get("page"))
    return render(request, "invoices/invoice_list.html", {"organization": organization, "page": page})


@login_required
def invoice_page(request, org, invoice_id):
    invoice = _invoice(request, org, invoice_id)
    html = invoice_document_html(
        invoice,
        pdf_url=reverse("invoice-page-pdf", kwargs={"org": org, "invoice_id": invoice.pk}),
        back_url=reverse("invoice-list-page", kwargs={"org": org}),
    )
    return HttpResponse(html)


@login_required
def invoice_pdf_page(request, org, invoice_id):
    invoice = _invoice(request, org, invoice_id)
    response = HttpResponse(invoice_document_pdf(invoice), content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{invoice_document_filename(invoice)}"'
    return response
