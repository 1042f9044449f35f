"""Sending an invoice: logged, e-mailed by a task with the PDF attached, visible on the invoice;
a second send to the same address only when asked for; a lost task is made up by the beat task."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from pypdf import PdfReader
from rest_framework.test import APIClient

from billing.models import Membership, Role
from invoices.models import Invoice, InvoiceSend
from invoices.services import invoice_send_queue, invoice_sends_dispatch_due
from tests.billing.factories import UserFactory

pytestmark = pytest.mark.django_db


class UnreachableSmtp:
    """An e-mail backend whose server cannot be reached (what smtplib raises then)."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError(111, "Connection refused")


@pytest.fixture
def invoice(webhooks, billing_org, stripe_invoice):
    created = stripe_invoice(billing_org, [1500, 2500])
    webhooks.deliver()
    return Invoice.objects.get(stripe_id=created.id)


@pytest.fixture
def billing_role_client(billing_org):
    user = UserFactory()
    Membership.objects.create(user=user, organization=billing_org, role=Role.BILLING)
    client = APIClient()
    client.force_authenticate(user)
    return client


def send_path(invoice):
    return f"/api/v1/organizations/{invoice.organization_id}/invoices/{invoice.pk}/send"


def test_send_emails_the_pdf_and_logs_it(invoice, billing_role_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = billing_role_client.post(send_path(invoice), {}, format="json")
    assert response.status_code == 202, response.json()
    assert response.json()["recipients"] == ["billing@acme.test"]
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["billing@acme.test"] and invoice.number in message.subject
    html, mime = message.alternatives[0]
    assert mime == "text/html" and "$40.00" in html
    name, content, mimetype = message.attachments[0]
    assert mimetype == "application/pdf" and name == f"{invoice.number}.pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(content)).pages)
    assert invoice.number in text and "$40.00" in text
    detail = billing_role_client.get(f"/api/v1/organizations/{invoice.organization_id}/invoices/{invoice.pk}")
    sends = detail.json()["sends"]
    assert len(sends) == 1 and sends[0]["status"] == "sent" and sends[0]["sent_at"]
    assert sends[0]["requested_by"].startswith("user:")


def test_a_second_send_needs_resend(invoice, billing_role_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert billing_role_client.post(send_path(invoice), {}, format="json").status_code == 202
        again = billing_role_client.post(send_path(invoice), {}, format="json")
        assert again.status_code == 409 and again.json()["error"] == "invoice_already_sent"
        other = billing_role_client.post(send_path(invoice), {"email": "Boss@Acme.test"}, format="json")
        assert other.status_code == 202
        resent = billing_role_client.post(send_path(invoice), {"resend": True}, format="json")
        assert resent.status_code == 202 and resent.json()["resend"] is True
    assert [m.to for m in mail.outbox] == [["billing@acme.test"], ["boss@acme.test"], ["billing@acme.test"]]
    assert InvoiceSend.objects.filter(invoice=invoice, status="sent").count() == 3


def test_bad_input_and_drafts_are_refused(
    webhooks, billing_org, stripe_invoice, billing_role_client, invoice
):
    bad = billing_role_client.post(send_path(invoice), {"email": "not-an-address"}, format="json")
    assert bad.status_code == 400 and bad.json()["fields"]["email"]
    draft_stripe = stripe_invoice(billing_org, [100], finalize=False)
    webhooks.deliver()
    draft = Invoice.objects.get(stripe_id=draft_stripe.id)
    refused = billing_role_client.post(send_path(draft), {}, format="json")
    assert refused.status_code == 409 and refused.json()["error"] == "invoice_not_sendable"
    assert not InvoiceSend.objects.exists() and not mail.outbox


def test_a_lost_task_is_made_up_by_beat_once(invoice):
    send = invoice_send_queue(
        organization=invoice.organization, invoice_id=invoice.pk
    )  # on_commit never runs
    assert not mail.outbox
    assert invoice_sends_dispatch_due() == 0  # within the grace period its own task may still run
    InvoiceSend.objects.filter(pk=send.pk).update(created_at=send.created_at - timedelta(minutes=5))
    assert invoice_sends_dispatch_due() == 1
    assert invoice_sends_dispatch_due() == 0
    assert len(mail.outbox) == 1 and InvoiceSend.objects.get(pk=send.pk).status == "sent"


def test_smtp_down_keeps_the_send_queued_with_its_error(invoice):
    send = invoice_send_queue(organization=invoice.organization, invoice_id=invoice.pk)
    InvoiceSend.objects.filter(pk=send.pk).update(created_at=send.created_at - timedelta(minutes=5))
    with override_settings(EMAIL_BACKEND="tests.invoices.test_sending.UnreachableSmtp"):
        assert invoice_sends_dispatch_due() == 0
    failed = InvoiceSend.objects.get(pk=send.pk)
    assert (failed.status, failed.attempts) == ("queued", 1) and "Connection refused" in failed.error
    assert invoice_sends_dispatch_due() == 1
    done = InvoiceSend.objects.get(pk=send.pk)
    assert (done.status, done.attempts, done.error) == ("sent", 2, "") and len(mail.outbox) == 1
