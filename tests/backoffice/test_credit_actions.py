"""Grant and adjust credits from the organization page: a confirmation page with the reason,
one audit row per action with before and after, the double submit acting once, and a refused
action writing no audit row and changing nothing."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from billing.models import AuditEntry
from credits.models import CreditTransaction
from credits.selectors import credit_summary_get
from credits.services import credit_grant

pytestmark = pytest.mark.django_db


def url(org, action: str) -> str:
    return f"/admin/billing/organizationpage/{org.pk}/{action}/"


def balance(org) -> D:
    return credit_summary_get(organization=org).balance


def test_grant_asks_for_a_reason_and_is_audited(web, organization, superuser):
    page = web.get(url(organization, "grant"))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="reason"' in body and "Required: why" in body and "Grant the credits" in body
    key = page.context["form"].initial["idempotency_key"]

    refused = web.post(url(organization, "grant"), {"amount": "500", "reason": "  ", "idempotency_key": key})
    assert refused.status_code == 200 and "reason" in refused.context["form"].errors
    assert AuditEntry.objects.count() == 0 and balance(organization) == 0

    done = web.post(
        url(organization, "grant"),
        {"amount": "500", "reason": "Goodwill after outage", "idempotency_key": key},
    )
    assert done.status_code == 302 and done["Location"].endswith(f"/{organization.pk}/overview/")
    assert balance(organization) == D(500)
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.organization_id, entry.reason) == (
        "credits_grant",
        superuser.pk,
        organization.pk,
        "Goodwill after outage",
    )
    assert D(entry.before["balance"]) == 0 and D(entry.after["balance"]) == 500
    assert "boss@staff.test" in entry.actor or superuser.get_username() in entry.actor

    again = web.post(
        url(organization, "grant"),
        {"amount": "500", "reason": "Goodwill after outage", "idempotency_key": key},
    )
    assert again.status_code == 302
    assert balance(organization) == D(500) and AuditEntry.objects.count() == 1


def test_adjust_below_the_overdraft_is_refused_and_logs_nothing(web, organization):
    credit_grant(organization=organization, amount=100, reason="seed")
    rows = CreditTransaction.objects.count()
    refused = web.post(
        url(organization, "adjust"), {"amount": "-250", "reason": "Clawback", "idempotency_key": "k1"}
    )
    assert refused.status_code == 200
    assert "overdraft" in str(refused.context["form"].errors)
    assert AuditEntry.objects.count() == 0
    assert CreditTransaction.objects.count() == rows and balance(organization) == D(100)

    done = web.post(
        url(organization, "adjust"), {"amount": "-40", "reason": "Clawback", "idempotency_key": "k2"}
    )
    assert done.status_code == 302
    entry = AuditEntry.objects.get()
    assert entry.action == "credits_adjust"
    assert (entry.before["balance"], entry.after["balance"], entry.after["adjusted_by"]) == (
        "100.0000",
        "60.0000",
        "-40.0000",
    )


def test_bad_input_never_500s_and_changes_nothing(web, organization):
    for body in (
        {"amount": "abc", "reason": "x", "idempotency_key": "k"},
        {"amount": "1e400", "reason": "x", "idempotency_key": "k"},
        {"amount": "-5", "reason": "x", "idempotency_key": "k"},
        {"amount": "5", "reason": "x" * 1001, "idempotency_key": "k"},
        {"amount": "5", "reason": "x", "idempotency_key": "k" * 65},
        {"amount": "5", "reason": "x", "idempotency_key": "k", "expires_at": "not a date"},
    ):
        response = web.post(url(organization, "grant"), body)
        assert response.status_code == 200, body
    assert AuditEntry.objects.count() == 0 and balance(organization) == 0
    assert (
        web.get(url(organization, "grant").replace(str(organization.pk), str(uuid.uuid4()))).status_code
        == 404
    )


def test_the_audit_log_is_append_only_in_the_database(web, organization):
    web.post(url(organization, "grant"), {"amount": "5", "reason": "Test", "idempotency_key": "k"})
    entry = AuditEntry.objects.get()
    for attempt in (
        lambda: AuditEntry.objects.filter(pk=entry.pk).update(reason="edited"),
        lambda: AuditEntry.objects.filter(pk=entry.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            attempt()
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM billing_auditentry")
    assert AuditEntry.objects.get().reason == "Test"


def test_the_audit_log_admin_lists_filters_and_refuses_edits(web, organization):
    web.post(url(organization, "grant"), {"amount": "5", "reason": "Grant reason", "idempotency_key": "a"})
    web.post(url(organization, "adjust"), {"amount": "-1", "reason": "Adjust reason", "idempotency_key": "b"})
    listing = web.get("/admin/billing/auditentry/")
    assert listing.status_code == 200
    assert "Grant reason" in listing.content.decode() and "Adjust reason" in listing.content.decode()
    only_grants = web.get("/admin/billing/auditentry/", {"action__exact": "credits_grant"}).content.decode()
    assert "Grant reason" in only_grants and "Adjust reason" not in only_grants
    searched = web.get("/admin/billing/auditentry/", {"q": str(organization.pk)}).content.decode()
    assert "Grant reason" in searched
    entry = AuditEntry.objects.first()
    assert web.get("/admin/billing/auditentry/add/").status_code == 403
    view = web.get(f"/admin/billing/auditentry/{entry.pk}/change/")
    assert view.status_code == 200 and 'name="reason"' not in view.content.decode()
    assert web.post(f"/admin/billing/auditentry/{entry.pk}/change/", {"reason": "x"}).status_code == 403
    assert web.post(f"/admin/billing/auditentry/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = web.post(
        "/admin/billing/auditentry/",
        {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.count() == 2
