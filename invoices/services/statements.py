"""Generated statements (the seeds' `generateInvoice(period, includeUsage, includeCredits)`): a
period's credit movements (purchases, other grants, consumptions, expiries, adjustments, refunds)
with the opening and closing credit balance, and (once the usage app is there) its usage.

The lines are read from the append-only ledger and summed exactly: the credits of the lines are
the ledger's movement over the period, opening + lines == closing, and the money lines are what
the purchases cost. Numbers are per organization without gaps (`StatementSequence`, incremented
in the transaction that issues the statement), and an issued statement is immutable (database
triggers, migration 0002): it is written as a draft and issued in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing.models import Organization
from config.exceptions import ValidationFailed
from credits.formatting import credits_str
from credits.models import CreditSource, TransactionKind

from ..models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus

MAX_PERIOD = timedelta(days=366)
ZERO = Decimal(0)
SOURCE_LABELS = dict(CreditSource.choices)


@dataclass
class DraftLine:
    kind: str
    description: str
    credits: Decimal | None = None
    amount: int = 0
    currency: str = "usd"
    quantity: Decimal | None = None
    metric: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None
    metadata: dict = field(default_factory=dict)


@dataclass
class StatementDraft:
    lines: list[DraftLine]
    opening_credits: Decimal | None
    closing_credits: Decimal | None
    currency: str
    amount_paid: int


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def statement_period_validate(*, period_start: datetime, period_end: datetime) -> None:
    fields: dict[str, list[str]] = {}
    if period_start >= period_end:
        fields["period_end"] = ["period_end must be after period_start."]
    elif period_end - period_start > MAX_PERIOD:
        fields["period_end"] = ["A statement covers at most 366 days."]
    if period_end > timezone.now() + timedelta(minutes=1):
        fields.setdefault("period_end", []).append("period_end must not be in the future.")
    if fields:
        raise ValidationFailed(fields=fields)


# The whole ledger read of a statement, in one round trip: the opening balance, the consumptions
# and expiries summed per event and per source, and one row per grant, adjustment and refund (with
# the purchase behind a grant, if any). Ordered so the lines come out grants first, then by kind.
LEDGER_SQL = """
SELECT 0 AS part, '' AS kind, '' AS event_name, '' AS source, SUM(t.amount) AS amount,
       NULL::numeric AS quantity, COUNT(*) AS n, NULL::uuid AS txn_id, '' AS reason,
       NULL::timestamptz AS at, NULL::uuid AS purchase_id, NULL::bigint AS price,
       NULL::varchar AS currency, NULL::varchar AS pack_name, NULL::numeric AS purchase_credits
  FROM credits_credittransaction t
 WHERE t.organization_id = %(org)s AND t.created_at < %(start)s
UNION ALL
SELECT CASE t.kind WHEN 'consume' THEN 2 ELSE 3 END, t.kind, t.event_name, COALESCE(g.source, ''),
       SUM(t.amount), SUM(t.quantity), COUNT(*), NULL, '', NULL, NULL, NULL, NULL, NULL, NULL
  FROM credits_credittransaction t LEFT JOIN credits_creditgrant g ON g.id = t.grant_id
 WHERE t.organization_id = %(org)s AND t.created_at >= %(start)s AND t.created_at < %(end)s
   AND t.kind IN ('consume', 'expire')
 GROUP BY t.kind, CASE t.kind WHEN 'consume' THEN t.event_name ELSE '' END, t.event_name,
          COALESCE(g.source, '')
UNION ALL
SELECT CASE t.kind WHEN 'grant' THEN 1 ELSE 4 END, t.kind, t.event_name, COALESCE(g.source, ''),
       t.amount, NULL, 1, t.id, t.reason, t.created_at, p.id, p.amount, p.currency, pk.name, p.credits
  FROM credits_credittransaction t
  LEFT JOIN credits_creditgrant g ON g.id = t.grant_id
  LEFT JOIN credits_creditpurchase p ON t.kind = 'grant' AND p.grant_id = t.grant_id
  LEFT JOIN credits_creditpack pk ON pk.id = p.pack_id
 WHERE t.organization_id = %(org)s AND t.created_at >= %(start)s AND t.created_at < %(end)s
   AND t.kind IN ('grant', 'adjust', 'refund')
ORDER BY part, at, event_name, source
"""


def _credit_lines(organization: Organization, start: datetime, end: datetime) -> StatementDraft:
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, {"org": organization.pk, "start": start, "end": end})
        rows = cursor.fetchall()
    opening = ZERO
    lines: list[DraftLine] = []
    amount_paid = 0
    currencies: set[str] = set()
    for row in rows:
        part, kind, event, source, credits, quantity, count, txn_id, reason, at = row[:10]
        purchase_id, price, currency, pack_name, purchase_credits = row[10:]
        if part == 0:
            opening = credits or ZERO
        elif kind == TransactionKind.CONSUME:
            lines.append(
                DraftLine(
                    kind=InvoiceLine.Kind.CREDIT_CONSUMPTION,
                    description=f"Credits used: {event or 'direct consumption'} ({_times(count)})",
                    credits=credits,
                    quantity=quantity if quantity is not None else Decimal(count),
                    metric=event,
                    period_start=start,
                    period_end=end,
                )
            )
        elif kind == TransactionKind.EXPIRE:
            lines.append(
                DraftLine(
                    kind=InvoiceLine.Kind.CREDIT_EXPIRY,
                    description=f"{SOURCE_LABELS.get(source, 'Other')} credits expired",
                    credits=credits,
                    period_start=start,
                    period_end=end,
                )
            )
        elif purchase_id is not None:
            what = pack_name or f"{credits_str(purchase_credits)} credits"
            lines.append(
                DraftLine(
                    kind=InvoiceLine.Kind.CREDIT_PURCHASE,
                    description=f"Credit purchase: {what}",
                    credits=credits,
                    amount=price,
                    currency=currency,
                    quantity=Decimal(1),
                    period_start=at,
                    period_end=at,
                    metadata={"transaction": str(txn_id), "purchase": str(purchase_id)},
                )
            )
            amount_paid += price
            currencies.add(currency)
        elif kind == TransactionKind.GRANT:
            lines.append(
                DraftLine(
                    kind=InvoiceLine.Kind.CREDIT_GRANT,
                    description=f"{SOURCE_LABELS.get(source, 'Credits')} credits granted"
                    + (f": {reason}" if reason else ""),
                    credits=credits,
                    period_start=at,
                    period_end=at,
                    metadata={"transaction": str(txn_id), "source": source},
                )
            )
        else:
            refund = kind == TransactionKind.REFUND
            lines.append(
                DraftLine(
                    kind=InvoiceLine.Kind.CREDIT_REFUND if refund else InvoiceLine.Kind.CREDIT_ADJUSTMENT,
                    description=("Credits given back" if refund else "Adjustment")
                    + (f": {reason}" if reason else ""),
                    credits=credits,
                    period_start=at,
                    period_end=at,
                    metadata={"transaction": str(txn_id)},
                )
            )
    movement = sum((line.credits for line in lines if line.credits is not None), start=ZERO)
    currency = sorted(currencies)[0] if len(currencies) == 1 else "usd"
    return StatementDraft(
        lines=lines,
        opening_credits=opening,
        closing_credits=opening + movement,
        currency=currency,
        amount_paid=amount_paid,
    )


def statement_draft_build(
    *,
    organization: Organization,
    period_start: datetime,
    period_end: datetime,
    include_usage: bool,
    include_credits: bool,
) -> StatementDraft:
    """What the statement will say, read from the ledger (and the usage rollups once the usage
    app is there). Writes nothing."""
    if include_credits:
        return _credit_lines(organization, period_start, period_end)
    return StatementDraft(lines=[], opening_credits=None, closing_credits=None, currency="usd", amount_paid=0)


def _next_number(organization: Organization) -> int:
    """The organization's next statement number. The row stays locked until the transaction
    ends, so concurrent statements take 1, 2, 3... in turn, and a rollback gives it back."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO invoices_statementsequence (organization_id, last_number) VALUES (%s, 1)
            ON CONFLICT (organization_id)
            DO UPDATE SET last_number = invoices_statementsequence.last_number + 1
            RETURNING last_number
            """,
            [organization.pk],
        )
        return cursor.fetchone()[0]


def statement_number(organization: Organization, sequence: int) -> str:
    return f"ST-{organization.pk.hex[:8].upper()}-{sequence:04d}"


def statement_generate(
    *,
    organization: Organization,
    period_start: datetime,
    period_end: datetime,
    include_usage: bool = True,
    include_credits: bool = True,
    actor: str = "",
    period_close=None,
) -> Invoice:
    """Issue a statement for the period: numbered, totalled and immutable from its commit on.
    With `period_close`, at most one per organization and close (the database says so)."""
    statement_period_validate(period_start=period_start, period_end=period_end)
    draft = statement_draft_build(
        organization=organization,
        period_start=period_start,
        period_end=period_end,
        include_usage=include_usage,
        include_credits=include_credits,
    )
    money = [line for line in draft.lines if line.currency == draft.currency]
    subtotal = sum(line.amount for line in money)
    with transaction.atomic():
        sequence = _next_number(organization)
        statement = Invoice.objects.create(
            organization=organization,
            kind=InvoiceKind.STATEMENT,
            status=InvoiceStatus.DRAFT,
            sequence=sequence,
            number=statement_number(organization, sequence),
            description=f"Statement for {period_start:%d %b %Y} to {period_end:%d %b %Y}",
            currency=draft.currency,
            subtotal=subtotal,
            tax=0,
            total=subtotal,
            amount_due=subtotal,
            amount_paid=min(draft.amount_paid, subtotal),
            amount_remaining=subtotal - min(draft.amount_paid, subtotal),
            period_start=period_start,
            period_end=period_end,
            customer_name=organization.name,
            customer_email=organization.billing_email,
            include_usage=include_usage,
            include_credits=include_credits,
            opening_credits=draft.opening_credits,
            closing_credits=draft.closing_credits,
            created_by=actor,
            created_at=timezone.now(),
            lines_final=True,
            period_close=period_close,
        )
        InvoiceLine.objects.bulk_create(
            InvoiceLine(
                invoice=statement,
                position=position,
                kind=line.kind,
                description=line.description,
                quantity=line.quantity,
                amount=line.amount,
                currency=line.currency,
                period_start=line.period_start,
                period_end=line.period_end,
                metric=line.metric,
                credits=line.credits,
                metadata=line.metadata,
            )
            for position, line in enumerate(draft.lines, start=1)
        )
        Invoice.objects.filter(pk=statement.pk).update(status=InvoiceStatus.ISSUED)
        statement.status = InvoiceStatus.ISSUED
    return statement
