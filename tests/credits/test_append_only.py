"""The ledger is append-only in the database itself, whoever writes."""

import pytest
from django.db import DatabaseError, connection, transaction

from credits.models import CreditTransaction
from credits.selectors import ledger_trigger_installed
from credits.services import credit_grant

pytestmark = pytest.mark.django_db


@pytest.fixture
def row(organization):
    return credit_grant(organization=organization, amount=5).transaction


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE credits_credittransaction SET amount = 500 WHERE id = %s",
        "UPDATE credits_credittransaction SET reason = 'edited' WHERE id = %s",
        "DELETE FROM credits_credittransaction WHERE id = %s",
    ],
)
def test_raw_sql_update_or_delete_is_refused(row, sql):
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [row.pk])
    fresh = CreditTransaction.objects.get(pk=row.pk)
    assert (fresh.amount, fresh.reason) == (row.amount, row.reason)


def test_the_orm_is_refused_too(row):
    with pytest.raises(DatabaseError), transaction.atomic():
        CreditTransaction.objects.filter(pk=row.pk).update(reason="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        CreditTransaction.objects.filter(pk=row.pk).delete()
    assert CreditTransaction.objects.filter(pk=row.pk).exists()


def test_inserts_are_allowed_and_reconcile_sees_the_trigger(row):
    assert ledger_trigger_installed()
