"""`mirror_write` runs a mirror write again when PostgreSQL aborts it to break a deadlock with a
concurrent writer (a webhook syncing the same customer and cards in the other order)."""

import threading

import pytest
from django.db import connection, transaction

from billing.models import Organization
from billing.services.organizations import mirror_write
from tests.billing.factories import OrganizationFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_deadlocked_mirror_write_is_run_again_and_lands():
    first, second = OrganizationFactory(name="first"), OrganizationFactory(name="second")
    both_hold_one = threading.Barrier(2, timeout=60)
    attempts = []

    def webhook():  # the other writer: second row, then first row; never the deadlock's victim
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL deadlock_timeout = '20s'")
                Organization.objects.filter(pk=second.pk).update(name="second by webhook")
                both_hold_one.wait()
                Organization.objects.filter(pk=first.pk).update(name="first by webhook")
        finally:
            connection.close()

    def write():
        attempts.append(1)
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL deadlock_timeout = '200ms'")
        Organization.objects.filter(pk=first.pk).update(name="first by page")
        if len(attempts) == 1:
            both_hold_one.wait()
        Organization.objects.filter(pk=second.pk).update(name="second by page")
        return "written"

    other = threading.Thread(target=webhook)
    other.start()
    assert mirror_write(write) == "written"
    other.join(timeout=120)
    assert len(attempts) == 2  # aborted once by PostgreSQL, then run again after the webhook committed
    assert set(Organization.objects.values_list("name", flat=True)) == {"first by page", "second by page"}


def test_other_errors_are_not_retried():
    attempts = []

    def write():
        attempts.append(1)
        raise ValueError("not a deadlock")

    with pytest.raises(ValueError):
        mirror_write(write)
    assert len(attempts) == 1
