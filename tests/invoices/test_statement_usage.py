"""Usage on statements: usage lines equal to the rollups and priced by the plan (included
quantity, metered overage), and late usage billed once as an adjustment line on the next billing
statement, labelled with its original period (also when replayed and under concurrent closes)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
import time_machine
from django.db import connection
from django.db.models import Sum

from billing.models import Plan, PlanMeteredPrice
from credits.services import credit_grant
from invoices.models import Invoice, InvoiceLine, PeriodClose, StatementSequence, StatementUsage
from invoices.services import (
    period_close_run,
    statement_close_organization,
    statement_generate,
    statements_close_chunk,
)
from tests.billing.factories import OrganizationFactory
from usage.models import Metric, UsageRollup
from usage.services import usage_record, usage_track

pytestmark = pytest.mark.django_db

JAN_10 = datetime(2026, 1, 10, 12, tzinfo=UTC)
JAN = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC))
FEB_CLOSE = datetime(2026, 2, 1, 3, tzinfo=UTC)
MAR_CLOSE = datetime(2026, 3, 1, 3, tzinfo=UTC)
APR_CLOSE = datetime(2026, 4, 1, 3, tzinfo=UTC)


def seed_catalogues() -> None:
    """The rows the migrations seed (a test that flushes the database loses them)."""
    import importlib

    from django.apps import apps

    from billing.catalogue import catalogue_seed, metered_prices_seed
    from billing.models import PlanPrice

    catalogue_seed(Plan, PlanPrice)
    metered_prices_seed(Plan, PlanMeteredPrice)
    importlib.import_module("credits.migrations.0003_seed_catalogue").seed(apps, None)
    importlib.import_module("usage.migrations.0002_seed_metrics").seed(apps, None)


@pytest.fixture
def metered_plan(db):
    if not Metric.objects.filter(code="SMS_SENT").exists():
        seed_catalogues()
    plan, _ = Plan.objects.update_or_create(
        code="stmt-metered", defaults={"name": "Metered", "limits": {"SMS_SENT": 10, "API_REQUEST": 100}}
    )
    PlanMeteredPrice.objects.update_or_create(
        plan=plan,
        metric="SMS_SENT",
        interval="month",
        currency="usd",
        defaults={"meter_event_name": "sms_sent", "unit_amount": 5},
    )
    return plan


def org_on(plan):
    """An organization on the plan, made before January (a close covers the ones that existed)."""
    with time_machine.travel(JAN[0] - timedelta(days=30), tick=False):
        return OrganizationFactory(plan=plan, subscription_status="active")


def record(org, metric, quantity, at, key=None):
    result = usage_record(
        organization=org, metric=metric, quantity=quantity, occurred_at=at, idempotency_key=key
    )
    assert not result.rejected, result.rejected
    return result


def rollups(org, metric, start, end, field="quantity"):
    rows = UsageRollup.objects.filter(
        organization_id=org.pk, metric__code=metric, hour__gte=start, hour__lt=end
    ).aggregate(total=Sum(field))
    return rows["total"] or 0


def usage_lines(statement, kind="usage"):
    return {line.metric: line for line in statement.lines.filter(kind=kind)}


def test_usage_lines_equal_the_rollups_and_are_priced_by_the_plan(metered_plan):
    org = org_on(metered_plan)
    start = datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # a partial first hour and day
    with time_machine.travel(JAN_10, tick=False):
        credit_grant(organization=org, amount=1000, reference="usage-seed")
        for n in range(7):  # SMS: 14 in the period, across days and hours
            record(org, "SMS_SENT", 2, JAN[0] + timedelta(days=n, hours=n + 1))
        record(org, "SMS_SENT", 5, JAN[0])  # hour 00:00 starts before the period: not in it
        record(org, "API_REQUEST", 1, JAN[0] + timedelta(days=2, hours=5))
        record(org, "API_REQUEST", 1, JAN[0] + timedelta(days=9, hours=11, minutes=30))  # the last hour
        for n in range(3):  # credits charged through track
            usage_track(
                organization=org,
                metric="CALL_DURATION_SECONDS",
                quantity=D("40.5"),
                idempotency_key=f"call-{n}",
                occurred_at=JAN[0] + timedelta(days=3, hours=n + 2),
            )
        statement = statement_generate(organization=org, period_start=start, period_end=JAN_10)
    lines = usage_lines(statement)
    assert set(lines) == {"SMS_SENT", "API_REQUEST", "CALL_DURATION_SECONDS"}
    hour_from, hour_to = datetime(2026, 1, 1, 1, tzinfo=UTC), JAN_10
    for metric, line in lines.items():
        assert line.quantity == rollups(org, metric, hour_from, hour_to) or metric == "API_REQUEST"
        assert line.metadata["events"] == rollups(org, metric, hour_from, hour_to, "events")
        assert D(line.metadata["credits"]) == rollups(org, metric, hour_from, hour_to, "credits")
        assert (line.period_start, line.period_end) == (start, JAN_10)
    assert lines["SMS_SENT"].quantity == 14 and lines["API_REQUEST"].quantity == 2  # count metric
    assert D(lines["CALL_DURATION_SECONDS"].metadata["credits"]) > 0
    # included 10, 4 over at 0.05: 20 cents, the only money of the statement
    assert lines["SMS_SENT"].metadata["overage"] == 4 and lines["SMS_SENT"].amount == 20
    assert "10 included" in lines["SMS_SENT"].description and "4 over" in lines["SMS_SENT"].description
    assert lines["API_REQUEST"].amount == 0 and "100 included" in lines["API_REQUEST"].description
    assert statement.subtotal == statement.total == 20 and statement.amount_paid == 0
    # the usage lines move no credits: opening + credit lines == closing, as before
    credit_lines = statement.lines.exclude(credits=None)
    assert statement.closing_credits - statement.opening_credits == sum(line.credits for line in credit_lines)
    assert not StatementUsage.objects.exists()  # an ad-hoc statement bills nothing: no watermark


def test_without_usage_a_statement_has_no_usage_lines(metered_plan):
    org = org_on(metered_plan)
    with time_machine.travel(JAN_10, tick=False):
        record(org, "SMS_SENT", 3, JAN[0] + timedelta(hours=3))
        statement = statement_generate(
            organization=org, period_start=JAN[0], period_end=JAN_10, include_usage=False
        )
    assert not statement.lines.filter(kind__startswith="usage").exists()


def billed(org, metric, period):
    rows = StatementUsage.objects.filter(
        organization=org, metric__code=metric, period_start=period[0], period_end=period[1]
    )
    return rows.aggregate(total=Sum("quantity"))["total"]


def test_late_usage_lands_once_as_an_adjustment_on_the_next_statement(metered_plan, celery_eager):
    org = org_on(metered_plan)
    with time_machine.travel(JAN_10, tick=False):
        record(org, "SMS_SENT", 12, JAN_10 - timedelta(hours=2), key="jan-1")
    with time_machine.travel(FEB_CLOSE, tick=False):
        january = period_close_run()
        first = Invoice.objects.get(period_close=january, organization=org)
    assert usage_lines(first)["SMS_SENT"].quantity == 12 and usage_lines(first)["SMS_SENT"].amount == 10
    late_at = datetime(2026, 1, 31, 23, 15, tzinfo=UTC)
    with time_machine.travel(FEB_CLOSE + timedelta(days=1), tick=False):
        record(org, "SMS_SENT", 3, late_at, key="late-1")
        record(org, "SMS_SENT", 3, late_at, key="late-1")  # a replay records nothing
        # the January close run again: its statement stands, nothing is billed again
        assert statement_close_organization(close_id=january.pk, organization_id=org.pk).pk == first.pk
        record(org, "SMS_SENT", 1, FEB_CLOSE + timedelta(hours=5), key="feb-1")
    with time_machine.travel(MAR_CLOSE, tick=False):
        second = Invoice.objects.get(period_close=period_close_run(), organization=org)
    adjustment = usage_lines(second, "usage_adjustment")["SMS_SENT"]
    assert (adjustment.period_start, adjustment.period_end) == JAN
    assert adjustment.quantity == 3 and adjustment.metadata["events"] == 1
    assert adjustment.amount == 15 and adjustment.metadata["overage"] == 3  # 12 + 3 - 10 = 5 over, 2 billed
    assert "Late usage for 01 Jan 2026 to 01 Feb 2026" in adjustment.description
    assert usage_lines(second)["SMS_SENT"].quantity == 1  # February's own usage
    assert second.subtotal == 15 and second.sequence == 2
    assert billed(org, "SMS_SENT", JAN) == rollups(org, "SMS_SENT", *JAN) == 15
    with time_machine.travel(MAR_CLOSE + timedelta(days=1), tick=False):
        record(org, "SMS_SENT", 3, late_at, key="late-1")  # replayed after it was billed
    with time_machine.travel(APR_CLOSE, tick=False):
        third = Invoice.objects.get(period_close=period_close_run(), organization=org)
    assert not third.lines.filter(kind="usage_adjustment").exists()
    adjustments = InvoiceLine.objects.filter(invoice__organization=org, kind="usage_adjustment")
    assert adjustments.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_closes_bill_late_usage_once(metered_plan, celery_eager):
    organizations = [org_on(metered_plan) for _ in range(4)]
    with time_machine.travel(JAN_10, tick=False):
        for n, org in enumerate(organizations):
            record(org, "SMS_SENT", 5 + n, JAN_10, key="jan")
    with time_machine.travel(FEB_CLOSE, tick=False):
        period_close_run()
    with time_machine.travel(FEB_CLOSE + timedelta(days=2), tick=False):
        for org in organizations:
            record(org, "SMS_SENT", 2, datetime(2026, 1, 30, tzinfo=UTC), key="late")
    with time_machine.travel(MAR_CLOSE, tick=False):
        february = PeriodClose.objects.create(
            period_start=JAN[1], period_end=datetime(2026, 3, 1, tzinfo=UTC)
        )
        ids = [str(org.pk) for org in organizations]
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        def run(work):
            try:
                barrier.wait(timeout=120)
                work()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        works = [lambda: statements_close_chunk(close_id=february.pk, organization_ids=ids)] * 3
        works += [
            lambda org=org: statement_close_organization(close_id=february.pk, organization_id=org.pk)
            for org in organizations[:3]
        ]
        threads = [threading.Thread(target=run, args=(work,)) for work in works]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not errors, errors
    for org in organizations:
        statements = Invoice.objects.filter(organization=org, kind="statement").order_by("sequence")
        assert [s.sequence for s in statements] == [1, 2]
        assert StatementSequence.objects.get(organization=org).last_number == 2
        adjustments = InvoiceLine.objects.filter(invoice__organization=org, kind="usage_adjustment")
        assert [(a.quantity, a.period_start) for a in adjustments] == [(2, JAN[0])]
        assert billed(org, "SMS_SENT", JAN) == rollups(org, "SMS_SENT", *JAN)


def test_a_failing_chunk_falls_back_to_one_transaction_per_organization(metered_plan, monkeypatch):
    """Fault injection: the set-based read fails for any chunk of more than one organization; each
    organization still gets its statement (one by one), numbered 1."""
    from invoices.services import statements

    organizations = [org_on(metered_plan) for _ in range(3)]
    with time_machine.travel(JAN_10, tick=False):
        for org in organizations:
            record(org, "SMS_SENT", 4, JAN_10 - timedelta(hours=1), key="jan")
    real = statements._credit_drafts

    def only_one(org_ids, start, end):
        if len(org_ids) > 1:
            raise ValueError("injected")
        return real(org_ids, start, end)

    monkeypatch.setattr(statements, "_credit_drafts", only_one)
    with time_machine.travel(FEB_CLOSE, tick=False):
        close = PeriodClose.objects.create(period_start=JAN[0], period_end=JAN[1])
        issued = statements_close_chunk(
            close_id=close.pk, organization_ids=[str(o.pk) for o in organizations]
        )
    assert issued == 3
    for org in organizations:
        statement = Invoice.objects.get(period_close=close, organization=org)
        assert statement.sequence == 1 and usage_lines(statement)["SMS_SENT"].quantity == 4


def test_the_api_shows_usage_lines(billing_org, billing_client, credit_catalogue):
    if not Metric.objects.filter(code="SMS_SENT").exists():
        seed_catalogues()
    start = datetime.now(UTC) - timedelta(days=2)
    record(billing_org, "SMS_SENT", 7, start + timedelta(hours=3))
    response = billing_client.post(
        f"/api/v1/organizations/{billing_org.id}/invoices",
        {"period_start": start.isoformat(), "include_usage": True, "include_credits": False,
         "period_end": datetime.now(UTC).isoformat()},
        format="json",
    )  # fmt: skip
    assert response.status_code == 201, response.json()
    body = billing_client.get(
        f"/api/v1/organizations/{billing_org.id}/invoices/{response.json()['id']}"
    ).json()
    usage = [line for line in body["lines"] if line["kind"] == "usage"]
    assert [(line["metric"], line["quantity"]) for line in usage] == [("SMS_SENT", "7")]
