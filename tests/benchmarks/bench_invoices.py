"""Invoice documents and statements (`make bench`; figures printed, never asserted).

- PDF: a 25-line Stripe invoice and a statement rendered by the one template through xhtml2pdf,
  milliseconds per PDF (what `GET /invoices/{id}/pdf` and each e-mail cost).
- Statements: organizations with a month of ledger activity each (grants and consumptions of
  several events), one statement per organization generated in one process, statements per second.
- Period close: `BENCH_CLOSE_ORGS` (10,000) organizations on a metered plan, each with a month of
  ledger rows and a month of usage (hourly rollups of two metrics every `BENCH_CLOSE_USAGE_EVERY`
  hours and their daily rollups, seeded set-based in SQL), closed by the beat task's dispatch and
  the chunk tasks on a real Celery worker: seconds and statements per second.
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing.models import Organization
from credits.models import CreditAccount, CreditGrant, CreditTransaction
from invoices.documents import invoice_document_pdf
from invoices.models import Invoice, InvoiceLine
from invoices.services import statement_generate

pytestmark = pytest.mark.django_db(transaction=True)

ORGS = int(os.environ.get("BENCH_STATEMENT_ORGS", "300"))
ROWS_PER_ORG = int(os.environ.get("BENCH_STATEMENT_ROWS", "200"))
EVENTS = ["SMS_SENT", "CALL_MADE", "AI_MESSAGE_GENERATED", "API_REQUEST", "CONTACT_CREATED"]
START = datetime(2026, 1, 1, tzinfo=UTC)
END = datetime(2026, 2, 1, tzinfo=UTC)


def _stripe_invoice(organization) -> Invoice:
    invoice = Invoice.objects.create(
        organization=organization,
        kind="stripe",
        status="open",
        stripe_id=f"in_bench_{uuid.uuid4().hex[:12]}",
        number="BENCH-0001",
        subtotal=32500,
        total=32500,
        amount_due=32500,
        amount_remaining=32500,
        customer_name=organization.name,
        customer_email=organization.billing_email,
        created_at=START,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(invoice=invoice, position=n, kind="invoice_item", description=f"Item {n}", amount=100 * n)
        for n in range(1, 26)
    )
    return invoice


def _month_of_ledger(organization) -> None:
    account = CreditAccount.objects.create(organization=organization)
    grant = CreditGrant.objects.create(
        account=account,
        organization=organization,
        source="purchase",
        amount=Decimal(100000),
        remaining=Decimal(100000),
        created_at=START,
    )
    balance = Decimal(100000)
    rows = [
        CreditTransaction(
            organization=organization,
            account=account,
            sequence=1,
            kind="grant",
            amount=balance,
            balance_after=balance,
            grant=grant,
            created_at=START,
        )
    ]
    step = (END - START) / ROWS_PER_ORG
    for n in range(2, ROWS_PER_ORG + 1):
        balance -= 3
        rows.append(
            CreditTransaction(
                organization=organization,
                account=account,
                sequence=n,
                kind="consume",
                amount=Decimal(-3),
                balance_after=balance,
                event_name=EVENTS[n % len(EVENTS)],
                quantity=Decimal(3),
                created_at=START + step * n,
            )
        )
    CreditTransaction.objects.bulk_create(rows)
    CreditAccount.objects.filter(pk=account.pk).update(balance=balance, sequence=ROWS_PER_ORG)


def test_pdf_rendering():
    organization = Organization.objects.create(name="Bench Ltd", billing_email="bench@example.com")
    invoice = _stripe_invoice(organization)
    _month_of_ledger(organization)
    statement = statement_generate(organization=organization, period_start=START, period_end=END)
    print()
    for label, document in (("25-line invoice", invoice), ("statement", statement)):
        invoice_document_pdf(document)  # fonts and templates loaded once
        runs = 20
        began = time.perf_counter()
        for _ in range(runs):
            data = invoice_document_pdf(document)
        elapsed = (time.perf_counter() - began) / runs
        print(
            f"PDF {label:16s} {elapsed * 1000:7.1f} ms per PDF  ({1 / elapsed:5.1f}/s, {len(data):,} bytes)"
        )


def test_statement_generation():
    organizations = [
        Organization.objects.create(name=f"Bench {n}", billing_email=f"b{n}@example.com") for n in range(ORGS)
    ]
    began = time.perf_counter()
    for organization in organizations:
        _month_of_ledger(organization)
    seeded = time.perf_counter() - began
    began = time.perf_counter()
    for organization in organizations:
        statement_generate(organization=organization, period_start=START, period_end=END + timedelta(0))
    elapsed = time.perf_counter() - began
    print(
        f"\nstatements: {ORGS} organizations x {ROWS_PER_ORG} ledger rows (seeded in {seeded:.1f} s): "
        f"{elapsed:.2f} s, {ORGS / elapsed:.0f} statements/s in one process"
    )


CLOSE_ORGS = int(os.environ.get("BENCH_CLOSE_ORGS", "10000"))
CLOSE_ROWS = int(os.environ.get("BENCH_CLOSE_ROWS", "20"))
CLOSE_WORKERS = int(os.environ.get("BENCH_CLOSE_CONCURRENCY", "2"))
CLOSE_USAGE_EVERY = int(os.environ.get("BENCH_CLOSE_USAGE_EVERY", "2"))


def _metered_plan():
    from billing.models import Plan, PlanMeteredPrice

    plan, _ = Plan.objects.update_or_create(
        code="bench-metered",
        defaults={"name": "Bench metered", "limits": {"SMS_SENT": 100, "API_REQUEST": 1000}},
    )
    PlanMeteredPrice.objects.update_or_create(
        plan=plan,
        metric="SMS_SENT",
        interval="month",
        currency="usd",
        defaults={"meter_event_name": "sms_sent", "unit_amount": 2},
    )
    return plan


def _analyze() -> None:
    """Fresh planner statistics after the bulk seeding (autovacuum would gather them in time on a
    live database; without them the planner guesses empty tables)."""
    from django.db import connection

    with connection.cursor() as cursor:
        for table in (
            "billing_organization",
            "credits_creditaccount",
            "credits_creditgrant",
            "credits_credittransaction",
            "usage_usagerollup",
            "usage_usagerollupday",
            "invoices_invoice",
            "invoices_statementsequence",
        ):
            cursor.execute(f"ANALYZE {table}")


def _month_of_usage(every_hours: int) -> int:
    """Hourly rollups of SMS_SENT and API_REQUEST for every organization, every `every_hours`
    hours of January, and the daily rollups that add them up (what the recording writes)."""
    from django.db import connection

    from usage.models import Metric

    if not Metric.objects.filter(code="SMS_SENT").exists():  # a flushing test before removed the seeds
        import importlib

        from django.apps import apps

        importlib.import_module("usage.migrations.0002_seed_metrics").seed(apps, None)
    metrics = list(Metric.objects.filter(code__in=["SMS_SENT", "API_REQUEST"]).values_list("pk", flat=True))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO usage_usagerollup
                   (organization_id, metric_id, hour, quantity, events, quantity_max, credits)
            SELECT o.id, m.id, h, 1 + (extract(hour FROM h)::int %% 3),
                   1 + (extract(hour FROM h)::int %% 3), 1, 0
              FROM billing_organization o
             CROSS JOIN unnest(%(metrics)s::int[]) AS m(id)
             CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 hour',
                                        make_interval(hours => %(every)s)) AS h
            """,
            {"metrics": metrics, "start": START, "end": END, "every": every_hours},
        )
        rows = cursor.rowcount
        cursor.execute(
            """
            INSERT INTO usage_usagerollupday
                   (organization_id, metric_id, day, quantity, events, quantity_max, credits)
            SELECT organization_id, metric_id, date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                   sum(quantity), sum(events), max(quantity_max), sum(credits)
              FROM usage_usagerollup GROUP BY 1, 2, 3
            """
        )
    return rows


def _bulk_month(count: int, rows_per_org: int) -> None:
    """`count` organizations, each with a grant and `rows_per_org - 1` consumptions in January."""
    organizations = Organization.objects.bulk_create(
        [
            Organization(name=f"Close {n}", billing_email=f"c{n}@example.com", created_at=START)
            for n in range(count)
        ],
        batch_size=2000,
    )
    Organization.objects.filter(pk__in=[o.pk for o in organizations]).update(created_at=START)
    accounts = CreditAccount.objects.bulk_create(
        [
            CreditAccount(
                organization=o, balance=Decimal(1000 - 3 * (rows_per_org - 1)), sequence=rows_per_org
            )
            for o in organizations
        ],
        batch_size=2000,
    )
    grants = CreditGrant.objects.bulk_create(
        [
            CreditGrant(
                account=a,
                organization_id=a.organization_id,
                source="purchase",
                amount=Decimal(1000),
                remaining=Decimal(1000 - 3 * (rows_per_org - 1)),
                created_at=START,
            )
            for a in accounts
        ],
        batch_size=2000,
    )
    step = (END - START) / rows_per_org
    batch: list[CreditTransaction] = []
    for account, grant in zip(accounts, grants, strict=True):
        balance = Decimal(1000)
        batch.append(
            CreditTransaction(
                organization_id=account.organization_id,
                account=account,
                sequence=1,
                kind="grant",
                amount=balance,
                balance_after=balance,
                grant=grant,
                created_at=START,
            )
        )
        for n in range(2, rows_per_org + 1):
            balance -= 3
            batch.append(
                CreditTransaction(
                    organization_id=account.organization_id,
                    account=account,
                    sequence=n,
                    kind="consume",
                    amount=Decimal(-3),
                    balance_after=balance,
                    event_name=EVENTS[n % len(EVENTS)],
                    quantity=Decimal(3),
                    created_at=START + step * n,
                )
            )
        if len(batch) >= 20000:
            CreditTransaction.objects.bulk_create(batch)
            batch = []
    CreditTransaction.objects.bulk_create(batch)


def test_period_close_at_scale(tmp_path):
    """The beat task's dispatch and the chunk tasks on a real Celery worker
    (`BENCH_CLOSE_CONCURRENCY` processes), from the dispatch to the last statement."""
    from django.conf import settings

    from invoices.models import StatementUsage
    from invoices.services import period_close_progress, period_close_run
    from tests.processes import celery_worker

    began = time.perf_counter()
    _bulk_month(CLOSE_ORGS, CLOSE_ROWS)
    plan = _metered_plan()
    Organization.objects.update(plan=plan, subscription_status="active")
    rollups = _month_of_usage(CLOSE_USAGE_EVERY)
    _analyze()
    seeded = time.perf_counter() - began
    with celery_worker(concurrency=CLOSE_WORKERS, log_path=tmp_path / "worker.log"):
        began = time.perf_counter()
        close = period_close_run(now=END + timedelta(hours=1))
        dispatched = time.perf_counter() - began
        done = 0
        while done < CLOSE_ORGS and time.perf_counter() - began < 1800:
            time.sleep(0.25)
            done, _ = period_close_progress(close=close)
        elapsed = time.perf_counter() - began
    lines = InvoiceLine.objects.filter(invoice__period_close=close).count()
    usage = StatementUsage.objects.filter(statement__period_close=close).count()
    print(
        f"\nperiod close: {CLOSE_ORGS:,} organizations x ({CLOSE_ROWS} ledger rows + {rollups // CLOSE_ORGS}"
        f" hourly usage rollups of 2 metrics in the month) (seeded in {seeded:.0f} s);"
        f" dispatch {dispatched:.1f} s;"
        f" {done:,} statements ({lines:,} lines, {usage:,} usage watermark rows) in {elapsed:.1f} s"
        f" = {done / elapsed:.0f} statements/s ({CLOSE_WORKERS} worker processes,"
        f" chunks of {getattr(settings, 'INVOICES_CLOSE_CHUNK', 250)})"
    )


def test_close_chunk_profile():
    """Where a chunk's time goes: one chunk of `INVOICES_CLOSE_CHUNK` organizations closed in this
    process under cProfile (the top functions by cumulative time)."""
    import cProfile
    import pstats

    from django.conf import settings

    from invoices.models import PeriodClose
    from invoices.services import statements_close_chunk

    size = getattr(settings, "INVOICES_CLOSE_CHUNK", 250)
    _bulk_month(size, CLOSE_ROWS)
    plan = _metered_plan()
    Organization.objects.update(plan=plan, subscription_status="active")
    _month_of_usage(CLOSE_USAGE_EVERY)
    _analyze()
    close = PeriodClose.objects.create(period_start=START, period_end=END)
    ids = [str(pk) for pk in Organization.objects.order_by("pk").values_list("pk", flat=True)]
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    issued = statements_close_chunk(close_id=close.pk, organization_ids=ids)
    profiler.disable()
    elapsed = time.perf_counter() - began
    print(f"\none chunk: {issued} statements in {elapsed:.2f} s ({issued / elapsed:.0f}/s in one process)")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
