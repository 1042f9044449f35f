"""Item 4: the cached balance equals the sum of the ledger after every test.

The suite checks it after every test that touched the database (the autouse fixture
`_ledger_invariants` in tests/conftest.py runs the same checks as `manage.py reconcile`). This
module proves the check is on for this directory, that the figures agree after a busy scenario,
and that a planted difference is caught (a check that cannot fail proves nothing)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from credits.models import CreditAccount, CreditGrant, CreditTransaction
from credits.selectors import ledger_drift_list
from credits.services import (
    credit_account_settings_update,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
    credit_grants_expire,
)
from tests.billing.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


def test_the_after_test_check_is_on_for_every_test(request):
    assert "_ledger_invariants" in request.fixturenames


def test_after_a_busy_scenario_balance_ledger_and_grants_agree():
    org = OrganizationFactory()
    credit_account_settings_update(organization=org, overdraft_limit=5)
    credit_grant(organization=org, amount="10.5", source="promo")
    credit_grant(
        organization=org, amount=3, source="subscription", expires_at=timezone.now() + timedelta(seconds=1)
    )
    used = credit_consume(organization=org, amount="7.25", idempotency_key="a")
    credit_consume(organization=org, amount="9", idempotency_key="b")  # into the overdraft
    credit_consumption_reverse(organization=org, transaction_id=used.transaction.pk, reason="undo")
    credit_grants_expire(organization=org)
    account = CreditAccount.objects.get(organization=org)
    ledger = CreditTransaction.objects.filter(organization=org).aggregate(s=Sum("amount"))["s"]
    remaining = CreditGrant.objects.filter(organization=org).aggregate(s=Sum("remaining"))["s"]
    assert account.balance == ledger
    assert account.balance == remaining - max(-account.balance, Decimal(0))  # minus the overdraft in use
    assert ledger_drift_list(organization_ids=[org.pk]).clean


def test_a_cached_balance_that_differs_from_the_ledger_is_reported(allow_ledger_drift):
    org = OrganizationFactory()
    credit_grant(organization=org, amount=10)
    assert ledger_drift_list(organization_ids=[org.pk]).clean
    with connection.cursor() as cursor:  # the account row is not append-only: plant a difference
        cursor.execute(
            "UPDATE credits_creditaccount SET balance = balance + 1 WHERE organization_id = %s", [org.pk]
        )
    report = ledger_drift_list(organization_ids=[org.pk])
    assert not report.clean
    assert any("balance" in str(d) for d in report.drifts), report.drifts
