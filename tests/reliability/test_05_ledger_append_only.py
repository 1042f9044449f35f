"""Item 5: ledger rows cannot be updated or deleted by raw SQL, from any connection; the
refusal changes nothing, and inserts still work."""

import pytest
from django.db import DatabaseError, connection, transaction

from credits.models import CreditTransaction
from credits.selectors import ledger_trigger_installed
from credits.services import credit_consume, credit_grant
from tests.billing.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)

STATEMENTS = [
    "UPDATE credits_credittransaction SET amount = amount * 100 WHERE organization_id = %s",
    "UPDATE credits_credittransaction SET balance_after = 0, reason = 'edited' WHERE organization_id = %s",
    "UPDATE credits_credittransaction SET metadata = '{}'::jsonb WHERE organization_id = %s",
    "DELETE FROM credits_credittransaction WHERE organization_id = %s",
]


@pytest.mark.parametrize("sql", STATEMENTS)
def test_raw_sql_cannot_change_or_remove_ledger_rows(sql):
    org = OrganizationFactory()
    credit_grant(organization=org, amount=5)
    credit_consume(organization=org, amount=2, idempotency_key="x")
    before = list(CreditTransaction.objects.filter(organization=org).order_by("sequence").values())
    with pytest.raises(DatabaseError, match="append-only"), connection.cursor() as cursor:
        cursor.execute(sql, [org.pk])  # autocommit: its own transaction, as a psql session would
    assert list(CreditTransaction.objects.filter(organization=org).order_by("sequence").values()) == before
    assert ledger_trigger_installed()
    with transaction.atomic():
        credit_consume(organization=org, amount=1, idempotency_key="y")  # appending still works
    assert CreditTransaction.objects.filter(organization=org).count() == 3
