"""Generated statements: the period's credit movements from the ledger, totals equal to the
ledger to the credit and the cent, numbered per organization, immutable in the database."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum
from django.utils import timezone
from pypdf import PdfReader

from credits.models import CreditTransaction
from credits.services import (
    credit_adjust,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
    credit_grant_expire_now,
)
from invoices.documents import invoice_document_pdf
from invoices.models import Invoice, InvoiceLine
from invoices.services import statement_generate

pytestmark = pytest.mark.django_db


def ledger_sum(organization, **filters) -> D:
    rows = CreditTransaction.objects.filter(organization=organization, **filters)
    return rows.aggregate(total=Sum("amount"))["total"] or D(0)


def statements_path(org) -> str:
    return f"/api/v1/organizations/{org.id}/invoices"


@pytest.fixture
def period(billing_org, billing_client, credit_catalogue):
    """Activity before, during and after a period, of every kind the ledger has."""
    org = billing_org
    credit_grant(organization=org, amount=50, reference="before")
    credit_consume(organization=org, amount=5)
    start = timezone.now()
    bought = billing_client.post(
        f"/api/v1/organizations/{org.id}/credits/purchase",
        {"pack": "credits-5k", "payment_method": "pm_card_visa", "idempotency_key": "stmt-1"},
        format="json",
    )
    assert bought.json()["status"] == "succeeded"
    credit_grant(organization=org, amount=200, source="promo", reason="Welcome", reference="promo")
    credit_grant(organization=org, amount=30, expires_at=start + timedelta(days=9), reference="short")
    credit_grant_expire_now(organization=org, reference="short", reason="Ended early")
    credit_consume(organization=org, event_name="SMS_SENT", quantity=3)
    used = credit_consume(organization=org, event_name="SMS_SENT", quantity=4).transaction
    credit_consume(organization=org, event_name="CALL_DURATION_SECONDS", quantity=61)
    credit_consume(organization=org, amount=D("7.25"))
    credit_adjust(organization=org, amount=D("-11.5"), reason="Correction")
    credit_consumption_reverse(organization=org, transaction_id=used.pk, reason="Failed delivery")
    end = timezone.now()
    credit_consume(organization=org, amount=1)  # after the period
    return start, end


def test_a_statement_equals_the_ledger_exactly(billing_org, billing_client, period):
    start, end = period
    response = billing_client.post(
        statements_path(billing_org),
        {"period_start": start.isoformat(), "period_end": end.isoformat()},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    statement = Invoice.objects.get(pk=body["id"])
    lines = list(statement.lines.order_by("position"))
    credits = sum(line.credits for line in lines)
    in_period = ledger_sum(billing_org, created_at__gte=start, created_at__lt=end)
    assert credits == in_period
    assert statement.opening_credits == ledger_sum(billing_org, created_at__lt=start) == D(45)
    assert statement.closing_credits == ledger_sum(billing_org, created_at__lt=end)
    assert statement.closing_credits == statement.opening_credits + in_period
    kinds = [line.kind for line in lines]
    assert kinds.count("credit_purchase") == 1 and kinds.count("credit_grant") == 2
    assert {"credit_consumption", "credit_expiry", "credit_adjustment", "credit_refund"} <= set(kinds)
    sms = next(line for line in lines if line.metric == "SMS_SENT")
    assert (sms.quantity, sms.credits) == (D(7), D(-7))
    purchase = next(line for line in lines if line.kind == "credit_purchase")
    assert (purchase.amount, purchase.credits, purchase.currency) == (4500, D(5000), "usd")
    assert (statement.subtotal, statement.total, statement.amount_paid, statement.amount_remaining) == (
        4500,
        4500,
        4500,
        0,
    )
    assert body["status"] == "issued" and body["kind"] == "statement" and body["number"].endswith("-0001")
    assert body["opening_credits"] == "45" and D(body["closing_credits"]) == statement.closing_credits
    assert len(body["lines"]) == len(lines) and body["lines"][0]["credits"] == "5000"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(invoice_document_pdf(statement))).pages)
    assert statement.number in text and "$45.00" in text and "Closing balance" in text


def test_numbers_follow_on_without_gaps_per_organization(billing_org, organization, period):
    start, end = period
    numbers = [
        statement_generate(organization=billing_org, period_start=start, period_end=end).sequence
        for _ in range(3)
    ]
    assert numbers == [1, 2, 3]
    other = statement_generate(organization=organization, period_start=start, period_end=end)
    assert (
        other.sequence == 1
        and other.number != Invoice.objects.get(organization=billing_org, sequence=1).number
    )
    with pytest.raises(Exception), transaction.atomic():  # a statement that fails gives its number back
        statement_generate(organization=billing_org, period_start=start, period_end=end)
        raise RuntimeError("rolled back")
    assert statement_generate(organization=billing_org, period_start=start, period_end=end).sequence == 4


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE invoices_invoice SET total = 1 WHERE id = %s",
        "UPDATE invoices_invoice SET status = 'draft' WHERE id = %s",
        "DELETE FROM invoices_invoice WHERE id = %s",
        "UPDATE invoices_invoiceline SET amount = 1 WHERE invoice_id = %s",
        "DELETE FROM invoices_invoiceline WHERE invoice_id = %s",
        "INSERT INTO invoices_invoiceline (invoice_id, position, kind, stripe_id, description, amount,"
        " currency, metric, price_id, metadata)"
        " VALUES (%s, 99, 'credit_grant', '', 'sneaked in', 100, 'usd', '', '', '{}')",
    ],
)
def test_an_issued_statement_is_immutable_in_the_database(billing_org, period, sql):
    start, end = period
    statement = statement_generate(organization=billing_org, period_start=start, period_end=end)
    before = (statement.total, statement.status, statement.lines.count())
    with pytest.raises(DatabaseError, match="immutable"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [statement.pk])
    fresh = Invoice.objects.get(pk=statement.pk)
    assert (fresh.total, fresh.status, fresh.lines.count()) == before


def test_the_orm_cannot_change_a_statement_either(billing_org, period):
    start, end = period
    statement = statement_generate(organization=billing_org, period_start=start, period_end=end)
    with pytest.raises(DatabaseError), transaction.atomic():
        statement.delete()
    with pytest.raises(DatabaseError), transaction.atomic():
        InvoiceLine.objects.filter(invoice=statement).update(description="x")
    assert Invoice.objects.filter(pk=statement.pk, status="issued").exists()


def test_a_statement_without_credits_has_no_credit_lines(billing_org, period):
    start, end = period
    statement = statement_generate(
        organization=billing_org,
        period_start=start,
        period_end=end,
        include_credits=False,
        include_usage=False,
    )
    assert statement.lines.count() == 0 and statement.total == 0 and statement.opening_credits is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"period_start": "2026-02-01T00:00:00Z", "period_end": "2026-01-01T00:00:00Z"}, "period_end"),
        ({"period_start": "2020-01-01T00:00:00Z", "period_end": "2026-01-01T00:00:00Z"}, "period_end"),
        ({"period_start": "2026-01-01T00:00:00Z", "period_end": "2999-01-01T00:00:00Z"}, "period_end"),
        ({"period_start": "soon", "period_end": "2026-01-01T00:00:00Z"}, "period_start"),
        ({"period_end": "2026-01-01T00:00:00Z"}, "period_start"),
        (
            {
                "period_start": "2026-01-01T00:00:00Z",
                "period_end": "2026-01-02T00:00:00Z",
                "include_usage": "maybe",
            },
            "include_usage",
        ),
    ],
)
def test_bad_periods_are_400_and_issue_nothing(billing_org, billing_client, body, field):
    response = billing_client.post(statements_path(billing_org), body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not Invoice.objects.exists()


def test_statements_are_listed_and_filtered(billing_org, billing_member_client, period):
    start, end = period
    statement_generate(organization=billing_org, period_start=start, period_end=end)
    listed = billing_member_client.get(statements_path(billing_org), {"kind": "statement"}).json()
    assert listed["count"] == 1 and listed["results"][0]["status"] == "issued"
    history = billing_member_client.get(
        f"/api/v1/organizations/{billing_org.id}/billing-history", {"kind": "statement"}
    ).json()
    assert history["count"] == 1 and history["results"][0]["amount"] == 4500
