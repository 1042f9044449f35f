"""Invoice documents and statements (`make bench`; figures printed, never asserted).

- PDF: a 25-line Stripe invoice and a statement rendered by the one template through xhtml2pdf,
  milliseconds per PDF (what `GET /invoices/{id}/pdf` and each e-mail cost).
- Statements: organizations with a month of ledger activity each (grants and consumptions of
  several events), one statement per organization generated in one process, statements per second
  (the credit part of a period close; the usage part needs the usage app).
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
