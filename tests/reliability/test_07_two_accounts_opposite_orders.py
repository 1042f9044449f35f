"""Item 7: operations on two accounts started from opposite ends at once (A then B against B
then A, and the sweeps that walk every account) never deadlock: every lock of several accounts
goes through `credits.locks`, in primary-key order, so no transaction surfaces an error."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from credits.locks import accounts_lock
from credits.models import CreditAccount
from credits.services import credit_consume, credit_grant, credit_grants_expire
from tests.billing.factories import OrganizationFactory

from .helpers import balance, ledger_sum, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_opposite_orders_on_two_accounts_never_deadlock():
    a, b = OrganizationFactory(), OrganizationFactory()
    soon = timezone.now() + timedelta(seconds=1)
    for org in (a, b):
        credit_grant(organization=org, amount=1000, source="promo")
        credit_grant(organization=org, amount=7, source="subscription", expires_at=soon)
    ids = {org.pk: CreditAccount.objects.get(organization=org).pk for org in (a, b)}
    time.sleep(1.1)  # the subscription grants are now due: the sweeps below expire them

    def work(i: int):
        if i % 10 == 9:
            return credit_grants_expire()  # walks every account
        first, second = (a, b) if i % 2 else (b, a)
        with transaction.atomic():
            accounts_lock(account_ids=[ids[first.pk], ids[second.pk]])  # asked in opposite orders
            credit_consume(organization=first, amount=1, idempotency_key=f"{i}-1")
            time.sleep(0.01)  # hold both while the others queue
            credit_consume(organization=second, amount=1, idempotency_key=f"{i}-2")
        return None

    results = run_together(30, work)
    errors = [r for kind, r in results if kind == "error"]
    assert not errors, errors[:3]
    for org in (a, b):
        # 27 pairs consumed 1 from each; the 7 due subscription credits expired (by a sweep or a consume).
        assert balance(org) == Decimal(1000 + 7 - 27 - 7) == ledger_sum(org)
