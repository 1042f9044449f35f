"""One template for the page and the PDF: the PDF is a valid PDF whose text (read back with
pypdf) has the number, the lines and the total; the API and the pages serve it, scoped to the
organization."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader

from invoices.documents import invoice_document_html, invoice_document_pdf
from invoices.models import Invoice
from tests.billing.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages)


@pytest.fixture
def mirrored(webhooks, billing_org, stripe_invoice):
    created = stripe_invoice(billing_org, [100 * n for n in range(1, 26)])
    webhooks.deliver()
    return Invoice.objects.get(stripe_id=created.id)


def test_the_pdf_has_the_number_every_line_and_the_total(mirrored):
    text = pdf_text(invoice_document_pdf(mirrored))
    assert mirrored.number in text
    assert "Total" in text and "$325.00" in text
    for n in (1, 13, 25):
        assert f"Item {n}" in text
    assert "Acme" in text and "billing@acme.test" in text


def test_the_email_body_and_the_pdf_come_from_one_template(mirrored):
    html = invoice_document_html(mirrored)
    assert mirrored.number in html and "$325.00" in html
    assert "Pay online" in html and mirrored.hosted_url in html
    assert "Download PDF" not in html  # the links of a page are the tenant page's (invoice_detail.html)
    text = pdf_text(invoice_document_pdf(mirrored))
    assert mirrored.number in text and "$325.00" in text


def test_the_api_serves_the_pdf_to_members_only_of_the_organization(
    mirrored, billing_member_client, catalogue
):
    path = f"/api/v1/organizations/{mirrored.organization_id}/invoices/{mirrored.pk}/pdf"
    response = billing_member_client.get(path, HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert mirrored.number in response["Content-Disposition"]
    assert mirrored.number in pdf_text(response.content)
    from billing.services import organization_create

    other = organization_create(name="Other", billing_email="o@other.test")
    outsider = MembershipFactory(organization=other).user
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(outsider)
    refused = client.get(path, HTTP_ACCEPT="application/pdf")
    assert refused.status_code == 404 and refused.json()["error"] == "not_found"
    wrong_org = f"/api/v1/organizations/{other.id}/invoices/{mirrored.pk}/pdf"
    missing = client.get(wrong_org)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_list_and_detail(mirrored, billing_member_client):
    base = f"/api/v1/organizations/{mirrored.organization_id}/invoices"
    listed = billing_member_client.get(base, {"kind": "stripe", "status": "open"}).json()
    assert listed["count"] == 1
    row = listed["results"][0]
    assert row["id"] == str(mirrored.pk) and row["number"] == mirrored.number
    assert (row["total"], row["amount_due"], row["currency"], row["kind"]) == (32500, 32500, "usd", "stripe")
    assert row["pdf_url"].endswith(f"/invoices/{mirrored.pk}/pdf") and row["hosted_url"]
    assert "lines" not in row
    assert billing_member_client.get(base, {"status": "paid"}).json()["count"] == 0
    bad = billing_member_client.get(base, {"status": "nonsense"})
    assert bad.status_code == 400 and bad.json()["error"] == "validation_error"
    detail = billing_member_client.get(f"{base}/{mirrored.pk}").json()
    assert len(detail["lines"]) == 25 and detail["lines"][0] == {
        "description": "Item 1",
        "quantity": "1",
        "amount": 100,
        "currency": "usd",
        "period_start": detail["lines"][0]["period_start"],
        "period_end": detail["lines"][0]["period_end"],
        "metric": None,
        "kind": "invoice_item",
        "credits": None,
    }


def test_the_pages(mirrored, client, billing_owner):
    client.force_login(billing_owner)
    org = mirrored.organization_id
    listing = client.get(f"/billing/{org}/invoices/")
    assert listing.status_code == 200 and mirrored.number.encode() in listing.content
    page = client.get(f"/billing/{org}/invoices/{mirrored.pk}/")
    assert page.status_code == 200 and b"$325.00" in page.content and b"Download PDF" in page.content
    pdf = client.get(f"/billing/{org}/invoices/{mirrored.pk}/pdf")
    assert pdf.status_code == 200 and mirrored.number in pdf_text(pdf.content)
