"""`seed_demo` gives the demo organization Stripe invoices, an open payment link and a
statement to download; running it again adds nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Organization
from invoices.models import Invoice

pytestmark = pytest.mark.django_db


def snapshot():
    return sorted(Invoice.objects.values_list("kind", "status", "number", "total"))


def test_seed_demo_adds_invoices_and_a_statement_once(client, credit_catalogue):
    out = StringIO()
    call_command("seed_demo", stdout=out)
    organization = Organization.objects.get(name="Demo Organization")
    stripe_invoices = Invoice.objects.filter(organization=organization, kind="stripe")
    assert {i.status for i in stripe_invoices} == {"paid", "open"}  # the subscription's, the payment link
    assert stripe_invoices.get(status="paid").stripe_subscription_id
    statement = Invoice.objects.get(organization=organization, kind="statement")
    assert statement.lines.filter(kind="credit_consumption").exists()
    assert f"statement {statement.number}" in out.getvalue()
    before = snapshot()
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo_invoices", stdout=StringIO())
    assert snapshot() == before
    client.force_login(organization.memberships.get().user)
    page = client.get(f"/billing/{organization.pk}/invoices/{statement.pk}/pdf")
    assert page.status_code == 200 and page["Content-Type"] == "application/pdf"


def test_without_stripe_the_demo_still_has_a_statement(credit_catalogue):
    call_command("seed_demo", "--no-stripe", stdout=StringIO())
    organization = Organization.objects.get(name="Demo Organization")
    assert Invoice.objects.filter(organization=organization, kind="statement").count() == 1
    assert not Invoice.objects.filter(organization=organization, kind="stripe").exists()


def test_after_the_usage_demo_a_statement_has_usage_lines(catalogue, credit_catalogue):
    from tests.invoices.test_statement_usage import seed_catalogues
    from usage.models import Metric

    if not Metric.objects.exists():  # a flushing test before removed the seeded metrics
        seed_catalogues()
    call_command("seed_demo", "--no-stripe", stdout=StringIO())
    call_command("usage_seed_demo", stdout=StringIO())
    out = StringIO()
    call_command("seed_demo_invoices", "--no-stripe", stdout=out)
    organization = Organization.objects.get(name="Demo Organization")
    statement = Invoice.objects.get(organization=organization, kind="statement", sequence=2)
    assert statement.lines.filter(kind="usage", metric="SMS_SENT").exists()
    assert f"statement {statement.number}" in out.getvalue()
    call_command("seed_demo_invoices", "--no-stripe", stdout=StringIO())
    assert Invoice.objects.filter(organization=organization, kind="statement").count() == 2
