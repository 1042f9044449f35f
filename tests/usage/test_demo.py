"""`manage.py usage_seed_demo`: a month of usage through the services, once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from billing.models import Plan
from credits.services import credit_grant
from tests.billing.factories import OrganizationFactory
from usage.models import UsageEvent, UsageRollup

from .conftest import admin_client_of, url

pytestmark = pytest.mark.django_db


def test_the_demo_organization_gets_a_month_of_usage_once():
    org = OrganizationFactory(
        name="Demo Organization", plan=Plan.objects.get(code="professional"), subscription_status="active"
    )
    credit_grant(organization=org, amount=1000, source="subscription", reference="demo")
    out = StringIO()
    call_command("usage_seed_demo", stdout=out)
    assert (
        "Demo usage ready." in out.getvalue() and "5 tracked AI messages and 1 reservation" in out.getvalue()
    )
    events = UsageEvent.objects.filter(organization_id=org.pk).count()
    assert events > 2000
    days = admin_client_of(org).get(url(org, "/SMS_SENT"), {"group_by": "day"}).json()["series"]
    assert len(days) >= 30
    stats = admin_client_of(org).get(url(org, "/stats")).json()
    assert {v["value"] for v in stats["top_dimensions"]["platform"]} >= {"ios", "android", "web"}
    rollups = UsageRollup.objects.filter(organization_id=org.pk).count()
    call_command("usage_seed_demo", stdout=StringIO())
    assert UsageEvent.objects.filter(organization_id=org.pk).count() == events
    assert UsageRollup.objects.filter(organization_id=org.pk).count() == rollups


def test_first_run_tracks_usage_before_the_paid_invoice_webhook_has_arrived(billing_org, stripe_emulator):
    """`make run` seeds usage before its web server can take the paid invoice's webhook: the
    plan's credits are granted from the paid invoice (once), so the tracked usage is not skipped."""
    from billing.services import subscription_create
    from credits.selectors import credit_summary_get

    subscription_create(
        organization=billing_org, plan="professional", interval="month", payment_method="pm_card_visa",
        trial_days=0,
    )  # fmt: skip
    assert credit_summary_get(organization=billing_org).balance == 0  # no webhook delivered
    out = StringIO()
    call_command("usage_seed_demo", organization=str(billing_org.pk), days=1, stdout=out)
    assert "5 tracked AI messages and 1 reservation" in out.getvalue(), out.getvalue()
    summary = credit_summary_get(organization=billing_org)
    included = Plan.objects.get(code="professional").included_credits
    assert summary.held > 0 and summary.balance < included
    call_command("usage_seed_demo", organization=str(billing_org.pk), days=1, stdout=StringIO())
    assert credit_summary_get(organization=billing_org).balance == summary.balance  # granted once
