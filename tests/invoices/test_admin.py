"""The invoices back office: read-only lists with filters and search by number; resend,
download, void and mark uncollectible through the services, each recorded in the invoice's
action log; a statement cannot be voided."""

from __future__ import annotations

import io

import pytest
from django.contrib.messages import get_messages
from django.core import mail
from django.utils import timezone
from pypdf import PdfReader

from invoices.models import Invoice, InvoiceAction
from invoices.services import statement_generate
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db

URL = "/admin/invoices/invoice/"


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


@pytest.fixture
def invoices(webhooks, billing_org, stripe_invoice):
    first = stripe_invoice(billing_org, [1000])
    second = stripe_invoice(billing_org, [2000])
    webhooks.deliver()
    start = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    statement = statement_generate(organization=billing_org, period_start=start, period_end=timezone.now())
    return Invoice.objects.get(stripe_id=first.id), Invoice.objects.get(stripe_id=second.id), statement


def act(client, action, *invoices):
    return client.post(
        URL, {"action": action, "_selected_action": [str(i.pk) for i in invoices]}, follow=True
    )


def test_lists_filter_and_search(client, staff, invoices):
    first, second, statement = invoices
    for params in (
        {"kind": "statement"},
        {"status": "open"},
        {"organization": str(first.organization_id)},
        {"period_start__gte": "2020-01-01 00:00:00+00:00"},
        {"q": first.number},
    ):
        page = client.get(URL, params)
        assert page.status_code == 200, params
    by_number = client.get(URL, {"q": first.number}).content.decode()
    assert first.number in by_number and second.number not in by_number
    statements = client.get(URL, {"kind": "statement"}).content.decode()
    assert statement.number in statements and first.number not in statements
    detail = client.get(f"{URL}{first.pk}/change/")
    assert detail.status_code == 200 and b'name="total"' not in detail.content
    assert client.get(f"{URL}add/").status_code == 403


def test_void_and_mark_uncollectible_go_to_stripe_and_are_logged(client, staff, invoices, stripe_emulator):
    first, second, statement = invoices
    act(client, "void", first)
    act(client, "mark_uncollectible", second)
    assert Invoice.objects.get(pk=first.pk).status == "void"
    assert Invoice.objects.get(pk=second.pk).status == "uncollectible"
    assert stripe_emulator.get(first.stripe_id)["status"] == "void"
    log = {(a.invoice_id, a.action, a.actor) for a in InvoiceAction.objects.all()}
    assert log == {
        (first.pk, "void", f"staff:{staff.pk}"),
        (second.pk, "mark_uncollectible", f"staff:{staff.pk}"),
    }
    response = act(client, "void", statement)
    assert "immutable" in " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert Invoice.objects.get(pk=statement.pk).status == "issued"
    again = act(client, "mark_uncollectible", first)  # void is final
    assert "cannot be marked uncollectible" in " ".join(str(m) for m in get_messages(again.wsgi_request))
    assert InvoiceAction.objects.count() == 2


def test_resend_and_download_are_logged(client, staff, invoices, django_capture_on_commit_callbacks):
    first, _, statement = invoices
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "resend", first, statement)
    assert sorted(m.subject for m in mail.outbox) == sorted(
        [f"Invoice {first.number} from Billing", f"Statement {statement.number} from Billing"]
    )
    response = act(client, "download_pdf", statement)
    assert response["Content-Type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(response.content)).pages)
    assert statement.number in text
    link = client.get(f"{URL}{first.pk}/pdf/")
    assert link.status_code == 200 and link["Content-Type"] == "application/pdf"
    actions = sorted(InvoiceAction.objects.values_list("action", flat=True))
    assert actions == ["download_pdf", "download_pdf", "resend", "resend"]
