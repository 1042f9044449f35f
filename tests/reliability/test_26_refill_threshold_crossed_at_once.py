"""Item 26: 20 consumptions crossing the refill threshold at once (20 threads, a barrier): one
refill in flight -- one pending purchase, one task on the broker -- and the ledger exact."""

import json
from decimal import Decimal

import pytest

from config.celery import app
from credits.models import CreditPurchase, PurchaseKind, PurchaseStatus
from credits.services import auto_refill_set, credit_consume, credit_grant
from tests.billing.factories import OrganizationFactory
from tests.credits.factories import CreditPackFactory

from .helpers import balance, ledger_sum, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def queued(task_name: str) -> int:
    with app.connection_for_write() as conn:
        messages = conn.default_channel.client.lrange("celery", 0, -1)
    return sum(1 for m in messages if json.loads(m)["headers"]["task"] == task_name)


def test_twenty_crossings_at_once_start_one_refill():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=100)
    auto_refill_set(
        organization=org,
        enabled=True,
        threshold=95,
        pack=CreditPackFactory(credits=Decimal(500), amount=500),
        payment_method="pm_card_visa",
        max_refills_per_day=24,
    )
    app.control.purge()
    try:
        results = run_together(
            20, lambda i: credit_consume(organization=org, amount=1, idempotency_key=f"x{i}")
        )
        assert all(kind == "ok" for kind, _ in results), results[:3]
        refills = CreditPurchase.objects.filter(organization=org, kind=PurchaseKind.AUTO_REFILL)
        assert refills.count() == 1 and refills.get().status == PurchaseStatus.PENDING
        assert queued("credits.auto_refill_task") == 1
    finally:
        app.control.purge()  # nobody runs the refill here
    assert balance(org) == 80 == ledger_sum(org)
