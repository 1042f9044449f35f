"""Period close: last month's statement for every organization, one retry-safe task each, the
beat run re-dispatching the missing ones, progress in the admin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from billing.models import Organization
from credits.services import credit_consume, credit_grant
from invoices.models import Invoice, PeriodClose
from invoices.services import (
    period_close_progress,
    period_close_run,
    previous_month,
    statement_close_organization,
)
from tests.billing.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

JANUARY = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEBRUARY = datetime(2026, 2, 1, 3, tzinfo=UTC)


@pytest.fixture
def january_activity(credit_catalogue):
    with time_machine.travel(JANUARY, tick=False):
        organizations = [OrganizationFactory() for _ in range(3)]
        for n, organization in enumerate(organizations, start=1):
            credit_grant(organization=organization, amount=100 * n, reference="jan")
            credit_consume(organization=organization, event_name="SMS_SENT", quantity=n)
    return organizations


def test_previous_month():
    assert previous_month(FEBRUARY) == (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
    assert previous_month(datetime(2026, 1, 5, tzinfo=UTC))[0] == datetime(2025, 12, 1, tzinfo=UTC)


def test_every_organization_gets_one_statement_and_a_rerun_adds_none(january_activity, celery_eager):
    with time_machine.travel(FEBRUARY, tick=False):
        close = period_close_run()
    statements = Invoice.objects.filter(period_close=close)
    assert statements.count() == Organization.objects.count() == 3
    for n, organization in enumerate(january_activity, start=1):
        statement = statements.get(organization=organization)
        assert (statement.period_start, statement.period_end) == close_period(close)
        assert statement.closing_credits - statement.opening_credits == 100 * n - n
        assert statement.sequence == 1
    assert period_close_progress(close=close) == (3, 3)
    with time_machine.travel(FEBRUARY + timedelta(hours=1), tick=False):
        close = period_close_run()
    assert close.finished_at is not None and statements.count() == 3
    again = statement_close_organization(close_id=close.pk, organization_id=january_activity[0].pk)
    assert again.pk == statements.get(organization=january_activity[0]).pk
    assert Invoice.objects.filter(kind="statement").count() == 3


def close_period(close):
    return close.period_start, close.period_end


@pytest.fixture
def purge_queue():
    """Tasks this test enqueues for real (and loses on purpose) leave the broker afterwards."""
    from config.celery import app

    yield
    app.control.purge()


def test_lost_tasks_are_dispatched_again_by_a_later_beat_run(january_activity, purge_queue):
    with time_machine.travel(FEBRUARY, tick=False):
        close = period_close_run()  # not eager: the tasks are enqueued, and lost here
    assert Invoice.objects.filter(period_close=close).count() == 0 and close.dispatches == 1
    statement_close_organization(close_id=close.pk, organization_id=january_activity[0].pk)
    with time_machine.travel(FEBRUARY + timedelta(minutes=10), tick=False):
        assert period_close_run().dispatches == 1  # too soon: its tasks may still be queued
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        with time_machine.travel(FEBRUARY + timedelta(hours=1), tick=False):
            close = period_close_run()
    finally:
        app.conf.task_always_eager = False
    assert close.dispatches == 2 and Invoice.objects.filter(period_close=close).count() == 3
    assert sorted(Invoice.objects.filter(kind="statement").values_list("sequence", flat=True)) == [1, 1, 1]


def test_the_admin_shows_the_progress(january_activity, client, purge_queue):
    with time_machine.travel(FEBRUARY, tick=False):
        close = period_close_run()
    statement_close_organization(close_id=close.pk, organization_id=january_activity[1].pk)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    page = client.get("/admin/invoices/periodclose/")
    assert page.status_code == 200 and b"33.3%" in page.content
    response = client.post(
        "/admin/invoices/periodclose/",
        {"action": "dispatch_missing", "_selected_action": [close.pk]},
        follow=True,
    )
    assert b"2 organization(s) dispatched" in response.content
    assert PeriodClose.objects.get(pk=close.pk).dispatches == 2
