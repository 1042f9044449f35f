"""The same back-office form submitted at once from several tabs: one grant, one audit row
(real threads, one PostgreSQL connection each, released together by a barrier)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from billing.models import AuditEntry
from credits.models import CreditGrant
from credits.selectors import credit_summary_get
from invoices.backoffice.services import backoffice_credits_adjust, backoffice_credits_grant
from tests.billing.factories import OrganizationFactory, UserFactory
from tests.credits.test_concurrency import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_one_grant_form_sent_eight_times_at_once_grants_and_logs_once():
    org = OrganizationFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    results = run_together(
        8,
        lambda i: backoffice_credits_grant(
            actor=staff, organization=org, amount=D(250), reason="Outage credit", idempotency_key="form-1"
        ),
    )
    assert all(kind == "ok" for kind, _ in results), results
    assert sum(entry is not None for _, entry in results) == 1
    assert CreditGrant.objects.filter(account__organization=org).count() == 1
    assert AuditEntry.objects.filter(action="credits_grant").count() == 1
    assert credit_summary_get(organization=org).balance == D(250)


def test_different_adjustments_at_once_each_log_once_and_add_up():
    org = OrganizationFactory()
    staff = UserFactory(is_staff=True, is_superuser=True)
    backoffice_credits_grant(
        actor=staff, organization=org, amount=D(100), reason="seed", idempotency_key="seed"
    )
    results = run_together(
        6,
        lambda i: backoffice_credits_adjust(
            actor=staff, organization=org, amount=D(-10), reason=f"correction {i}", idempotency_key=f"adj-{i}"
        ),
    )
    assert all(kind == "ok" for kind, _ in results), results
    entries = AuditEntry.objects.filter(action="credits_adjust")
    assert entries.count() == 6
    assert credit_summary_get(organization=org).balance == D(40)
    # Each row's before/after is the balance its own transaction saw: six distinct steps of 10.
    assert sorted(D(e.after["balance"]) for e in entries) == [D(40), D(50), D(60), D(70), D(80), D(90)]
