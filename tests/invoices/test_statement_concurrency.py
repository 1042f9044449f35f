"""20 statements of one organization generated at once (threads, a barrier, one PostgreSQL
connection each): 20 numbers, 1 to 20, no gap and no duplicate."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from credits.services import credit_consume, credit_grant
from invoices.models import Invoice
from invoices.services import statement_generate
from tests.billing.factories import OrganizationFactory

THREADS = 20


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_statements_take_twenty_numbers_without_gaps(credit_catalogue):
    organization = OrganizationFactory()
    start = timezone.now() - timedelta(seconds=1)
    credit_grant(organization=organization, amount=100, reference="seed")
    credit_consume(organization=organization, event_name="SMS_SENT", quantity=3)
    end = timezone.now()
    barrier = threading.Barrier(THREADS)
    numbers, errors = [], []
    lock = threading.Lock()

    def generate():
        try:
            barrier.wait(timeout=120)
            statement = statement_generate(organization=organization, period_start=start, period_end=end)
            with lock:
                numbers.append(statement.sequence)
        except Exception as exc:
            with lock:
                errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=generate) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert sorted(numbers) == list(range(1, THREADS + 1))
    stored = Invoice.objects.filter(organization=organization, kind="statement")
    assert sorted(stored.values_list("sequence", flat=True)) == list(range(1, THREADS + 1))
    assert len(set(stored.values_list("number", flat=True))) == THREADS
    assert {s.closing_credits - s.opening_credits for s in stored} == {97}
