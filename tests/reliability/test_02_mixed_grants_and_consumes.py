"""Item 2: 200 grants and consumes at once (50 threads released by a barrier, 4 operations
each: the embedded PostgreSQL allows about 100 connections): the final balance is the
arithmetic result, every operation is in the ledger, and the balance_after chain adds up."""

import random
from decimal import Decimal

import pytest

from credits.models import CreditTransaction
from credits.services import credit_consume, credit_grant
from tests.billing.factories import OrganizationFactory

from .helpers import balance, ledger_sum, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_hundred_mixed_concurrent_grants_and_consumes_add_up():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=5000)  # more than all consumes: none may be refused
    rng = random.Random(2)
    ops = [
        ("grant" if rng.random() < 0.5 else "consume", Decimal(rng.randint(1, 9999)) / 100)
        for _ in range(200)
    ]

    def work(t: int):
        for i in range(t * 4, t * 4 + 4):
            kind, amount = ops[i]
            if kind == "grant":
                credit_grant(organization=org, amount=amount, source=("promo", "manual")[i % 2])
            else:
                credit_consume(organization=org, amount=amount, idempotency_key=f"m{i}")

    results = run_together(len(ops) // 4, work)
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] == "error"][:3]
    expected = (
        Decimal(5000) + sum(a for k, a in ops if k == "grant") - sum(a for k, a in ops if k == "consume")
    )
    assert balance(org) == expected == ledger_sum(org)
    assert CreditTransaction.objects.filter(organization=org).count() == 201
    # The balance_after chain is the running sum in commit order: no lost update anywhere.
    running = Decimal(0)
    for row in CreditTransaction.objects.filter(organization=org).order_by("sequence"):
        running += row.amount
        assert row.balance_after == running
