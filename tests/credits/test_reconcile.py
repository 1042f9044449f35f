import importlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from credits.models import CreditAccount, CreditGrant
from credits.services import credit_consume, credit_grant

append_only = importlib.import_module("credits.migrations.0002_ledger_append_only")

pytestmark = pytest.mark.django_db


def reconcile(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_clean_ledger(organization):
    credit_grant(organization=organization, amount=10)
    credit_consume(organization=organization, amount=3)
    code, out = reconcile()
    assert code == 0 and "no drift" in out and "2 ledger rows" in out


def test_a_balance_edited_behind_the_ledger_is_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    CreditAccount.objects.filter(organization=organization).update(balance=12)
    code, out = reconcile()
    assert code == 1
    assert "[balance_is_ledger_sum]" in out and str(organization.pk) in out
    assert "[balance_is_grants_minus_overdraft]" in out


def test_grants_edited_behind_the_ledger_are_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    CreditGrant.objects.filter(organization=organization).update(remaining=4)
    code, out = reconcile("--organization", str(organization.pk))
    assert code == 1 and "grants hold 4, balance 10" in out


def test_missing_trigger_is_drift(organization, allow_ledger_drift):
    with connection.cursor() as cursor:
        cursor.execute(append_only.REMOVE_SQL)
    try:
        code, out = reconcile()
        assert code == 1 and "[append_only]" in out
    finally:
        with connection.cursor() as cursor:
            cursor.execute(append_only.INSTALL_SQL)


def test_a_broken_balance_after_chain_is_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    with connection.cursor() as cursor:
        cursor.execute(append_only.REMOVE_SQL)
        cursor.execute("UPDATE credits_credittransaction SET balance_after = 9")
        cursor.execute(append_only.INSTALL_SQL)
    code, out = reconcile()
    assert code == 1 and "[running_balance]" in out and "[balance_after]" in out
