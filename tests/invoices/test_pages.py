"""The invoice pages on the billing pages frame: the list with status and date filters and
paging, one invoice with its lines, its PDF, and "send to my billing e-mail" (the billing role
and up; a member is not offered it and is refused when forcing it); another tenant's invoice is
not found."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from billing.models import Membership, Role
from invoices.models import Invoice, InvoiceSend
from invoices.views import PAGE_SIZE
from tests.billing.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


def make(org, n: int, *, status: str = "paid", days_ago: int = 0, total: int = 2900) -> Invoice:
    return Invoice.objects.create(
        organization=org,
        kind="stripe",
        status=status,
        number=f"INV-{n:04d}",
        stripe_id=f"in_pages_{org.pk.hex[:8]}_{n}",
        total=total,
        subtotal=total,
        amount_due=total,
        currency="usd",
        created_at=timezone.now() - timedelta(days=days_ago),
        customer_email="ap@acme.test",
    )


@pytest.fixture
def signed_in(client, billing_org, billing_owner):
    client.force_login(billing_owner)
    return client


def listing(client, org, **query) -> str:
    response = client.get(f"/billing/{org.pk}/invoices/", query)
    assert response.status_code == 200
    return response.content.decode()


def test_the_list_is_on_the_frame_with_status_and_date_filters(signed_in, billing_org):
    make(billing_org, 1, status="paid", days_ago=40)
    make(billing_org, 2, status="open", days_ago=3)
    other = OrganizationFactory()
    make(other, 99)
    html = listing(signed_in, billing_org)
    assert 'aria-current="page" data-nav="invoices"' in html and 'id="switch-organization"' not in html
    assert "INV-0001" in html and "INV-0002" in html and "INV-0099" not in html
    assert "$29.00" in html
    html = listing(signed_in, billing_org, status="open")
    assert "INV-0002" in html and "INV-0001" not in html
    start = (timezone.localdate() - timedelta(days=50)).isoformat()
    end = (timezone.localdate() - timedelta(days=30)).isoformat()
    html = listing(signed_in, billing_org, start=start, end=end)
    assert "INV-0001" in html and "INV-0002" not in html
    html = listing(signed_in, billing_org, start=end, end=start)  # the wrong way round: said, not a 500
    assert "The end date must not be before the start date." in html
    assert "No invoices match these filters." in listing(signed_in, billing_org, status="void")
    assert listing(signed_in, billing_org, status="nonsense", page="x")  # ignored, still a page


def test_paging_keeps_the_filters(signed_in, billing_org):
    for n in range(PAGE_SIZE + 3):
        make(billing_org, n + 1, status="open", days_ago=n)
    make(billing_org, 500, status="paid")
    html = listing(signed_in, billing_org, status="open")
    assert f"{PAGE_SIZE + 3} invoices, page 1 of 2" in html and "status=open&amp;page=2" in html
    html = listing(signed_in, billing_org, status="open", page=2)
    assert "INV-0023" in html and "INV-0500" not in html and "page 2 of 2" in html


def test_detail_pdf_and_send_to_the_billing_email(
    signed_in, billing_org, celery_eager, django_capture_on_commit_callbacks
):
    invoice = make(billing_org, 7, status="open")
    page = signed_in.get(f"/billing/{billing_org.pk}/invoices/{invoice.pk}/")
    html = page.content.decode()
    assert page.status_code == 200 and "Invoice INV-0007" in html and "$29.00" in html
    assert 'data-nav="invoices"' in html and "Send to my billing e-mail" in html and "Download PDF" in html
    pdf = signed_in.get(f"/billing/{billing_org.pk}/invoices/{invoice.pk}/pdf")
    assert pdf.status_code == 200 and pdf.content[:5] == b"%PDF-"
    send = f"/billing/{billing_org.pk}/invoices/{invoice.pk}/send"
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(send, follow=True)
    assert "on its way to billing@acme.test" in response.content.decode()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["billing@acme.test"]
    assert mail.outbox[0].attachments[0][2] == "application/pdf"
    # A second click asks first, and sends only when confirmed.
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(send, follow=True)
    html = response.content.decode()
    assert "already sent to billing@acme.test" in html and "Send again to billing@acme.test" in html
    assert len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.post(send, {"resend": "1"})
    assert len(mail.outbox) == 2 and InvoiceSend.objects.filter(invoice=invoice).count() == 2


def test_a_member_reads_but_is_not_offered_the_send_and_is_refused_when_forcing_it(client, billing_org):
    invoice = make(billing_org, 8, status="open")
    member = UserFactory()
    Membership.objects.create(user=member, organization=billing_org, role=Role.MEMBER)
    client.force_login(member)
    html = client.get(f"/billing/{billing_org.pk}/invoices/{invoice.pk}/").content.decode()
    assert "Send to my billing e-mail" not in html and '<form method="post"' not in html.split("<main")[1]
    assert "Someone with the billing role or higher can e-mail this invoice." in html
    assert client.post(f"/billing/{billing_org.pk}/invoices/{invoice.pk}/send").status_code == 403
    assert not InvoiceSend.objects.exists() and mail.outbox == []


def test_another_tenants_invoice_is_not_found(signed_in, billing_org):
    theirs = make(OrganizationFactory(), 9)
    for suffix in ("", "pdf", "send"):
        method = signed_in.post if suffix == "send" else signed_in.get
        assert method(f"/billing/{billing_org.pk}/invoices/{theirs.pk}/{suffix}").status_code == 404
