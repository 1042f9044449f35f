"""GET /usage reads its period and totals in one statement (`usage.selectors.SUMMARY_SQL`) and
answers exactly what the two-statement reading answers: the period decided in Python from the
same row, the totals of PERIOD_TOTALS_SQL over its bounds. Where the statement's period is not
Python's (an ended period rolled forward, odd mirrored data), the second statement runs."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import time_machine
from djstripe.models import Subscription

from billing.models import Organization
from billing.selectors import organization_billing_period, organization_period_state_get
from billing.services import subscription_create
from usage import selectors
from usage.selectors import PERIOD_TOTALS_SQL, SUMMARY_SQL, floor_hour, usage_summary_get
from usage.services import usage_events_record

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def statements():
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        sent.append(query if isinstance(query, str) else repr(query))
        return original(self, query, params, **kwargs)

    psycopg.Cursor.execute = execute
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = original


def reference(org, now):
    """The two-statement reading: the period, then PERIOD_TOTALS_SQL over it."""
    from config.postgres import prepared

    state = organization_period_state_get(organization_id=org.pk, now=now)
    params = selectors._period_params(org.pk, floor_hour(state.period_start), floor_hour(state.period_end))
    totals = {row[0]: row[1:] for row in prepared.fetchall(PERIOD_TOTALS_SQL, params)}
    return state.period_start, state.period_end, totals


def summary_and_statements(org, now):
    usage_summary_get(organization=org, now=now)  # the catalogue cache warm: only the summary's own count
    with statements() as sent:
        summary = usage_summary_get(organization=org, now=now)
    return summary, [q for q in sent if q in (SUMMARY_SQL, PERIOD_TOTALS_SQL)], len(sent)


def check(org, now, expected_statements: int):
    start, end, totals = reference(org, now)
    summary, ours, count = summary_and_statements(org, now)
    assert (summary.period_start, summary.period_end) == (start, end)
    by_code = {m.metric: m for m in summary.usage}
    catalog = selectors.metric_catalog()
    for code, metric in catalog.items():
        total, events, largest = totals.get(metric.id, (0, 0, 0))
        expected = {"count": events, "max": largest}.get(metric.aggregation, total)
        if metric.aggregation != "unique":
            assert by_code[code].current == expected, code
    assert ours[0] == SUMMARY_SQL
    assert len(ours) == expected_statements and count == expected_statements
    return summary


def record(org, when: datetime, **quantities):
    events = [
        {"metric": metric, "quantity": quantity, "idempotency_key": f"{metric}-{when.isoformat()}",
         "occurred_at": when.isoformat()}
        for metric, quantity in quantities.items()
    ]  # fmt: skip
    with time_machine.travel(when + timedelta(minutes=1), tick=False):
        assert usage_events_record(organization=org, events=events).accepted == len(events)


def test_free_plan_calendar_month_in_one_statement(billing_org):
    now = datetime(2027, 3, 15, 12, 30, tzinfo=UTC)
    record(billing_org, datetime(2027, 3, 1, 0, 10, tzinfo=UTC), SMS_SENT=3, STORAGE_USED_MB=40)
    record(billing_org, datetime(2027, 3, 14, 23, 59, tzinfo=UTC), SMS_SENT=4, STORAGE_USED_MB=25)
    record(billing_org, datetime(2027, 3, 15, 12, 5, tzinfo=UTC), SMS_SENT=5, API_REQUEST=2)
    record(billing_org, datetime(2027, 2, 28, 23, 0, tzinfo=UTC), SMS_SENT=100)  # the month before
    summary = check(billing_org, now, 1)
    assert {m.metric: m.current for m in summary.usage}["SMS_SENT"] == 12


def test_a_period_within_one_day_and_an_empty_organization(billing_org):
    check(billing_org, datetime(2027, 3, 1, 0, 0, tzinfo=UTC), 1)
    check(billing_org, datetime(2027, 3, 31, 23, 59, 59, tzinfo=UTC), 1)


@pytest.fixture
def subscribed(billing_org, webhooks, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        subscription_create(
            organization=billing_org, plan="business", interval="month", payment_method="pm_card_visa",
            trial_days=0,
        )  # fmt: skip
    webhooks.deliver()
    org = Organization.objects.get(pk=billing_org.pk)
    assert org.subscription_status == "active"
    return org


def test_the_subscription_period_in_one_statement_and_an_ended_one_in_two(subscribed):
    start, end = organization_billing_period(organization=subscribed, now=datetime.now(UTC))
    record(subscribed, start + timedelta(minutes=30), SMS_SENT=7, AI_TOKENS=1000)
    record(subscribed, start + timedelta(days=2, hours=3), SMS_SENT=2)
    check(subscribed, start + timedelta(days=3), 1)
    # The period ended, its renewal not mirrored yet: rolled forward in Python, not the
    # statement's calendar month, so the totals are read again for Python's period.
    rolled = check(subscribed, end + timedelta(hours=2), 2)
    assert rolled.period_start == end
    # A clock behind the period (a test clock ahead of real time): the calendar month, one statement.
    check(subscribed, start - timedelta(days=40), 1)


@pytest.mark.parametrize(
    "odd",
    [
        {"current_period_start": "1700000000"},
        {"current_period_start": 10**30},
        {"current_period_start": -5},
        {"current_period_start": 1.5e9},
        {"current_period_start": None, "current_period_end": None},
        {"current_period_start": True},
    ],
)
def test_odd_mirrored_periods_never_break_the_statement(subscribed, odd):
    subscription = Subscription.objects.get(id=subscribed.stripe_subscription_id)
    data = subscription.stripe_data
    data.update(odd)
    for item in data["items"]["data"]:
        item.update(odd)
    Subscription.objects.filter(pk=subscription.pk).update(stripe_data=data)
    now = datetime.now(UTC)
    try:
        expected = reference(subscribed, now)
    except Exception as exc:  # the two-statement reading fails: so must ours, alike
        with pytest.raises(type(exc)):
            usage_summary_get(organization=subscribed, now=now)
        return
    summary, ours, _count = summary_and_statements(subscribed, now)
    assert (summary.period_start, summary.period_end) == expected[:2]
    assert ours[0] == SUMMARY_SQL
