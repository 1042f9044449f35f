"""Generated statements (the seeds' `generateInvoice(period, includeUsage, includeCredits)`): a
period's usage (from the usage app's rollups, priced by the plan) and credit movements (purchases,
other grants, consumptions, expiries, adjustments, refunds) with the opening and closing credit
balance.

Everything is read set-based, for one organization or a chunk of them at once (the period close
issues hundreds per transaction): one ledger query, one usage query (whole days from the daily
rollups, partial days from the hourly ones), and the statements, their lines and the usage
watermark bulk-inserted.

- Credit lines are summed exactly from the append-only ledger: the credits of the lines are the
  ledger's movement over the period, and opening + lines == closing.
- Usage lines: per metric with usage in the period, its value by the metric's aggregation (sum,
  count, max, distinct) over the hours that start in the period, the events and the credits they
  charged (equal to the rollups), the plan's included quantity (its limit) and, with a metered
  price for the metric, the whole units above it at that price (what the Stripe meter bills).
- Late usage (billing statements, those of a period close): what an earlier billing statement
  billed of each metric and period is kept (`StatementUsage`, the watermark). The next billing
  statement compares the rollups of each such period, while usage can still arrive for it, with
  what was billed and bills the difference as an adjustment line labelled with that period.
  Statements of an organization are issued one at a time (its `StatementSequence` row is locked
  before anything is read), so a late event is billed exactly once.

Numbers are per organization without gaps (`StatementSequence`, incremented in the transaction
that issues the statement), and an issued statement is immutable (database triggers, migration
0002): it is written as a draft and issued in the same transaction.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone

from billing.models import Organization, Plan, PlanMeteredPrice
from billing.selectors import ENTITLED_STATUSES
from config.exceptions import ValidationFailed
from credits.formatting import credits_str
from credits.models import CreditSource, TransactionKind
from usage.models import Aggregation, Metric
from usage.selectors import floor_day, floor_hour
from usage.validation import MAX_AGE

from ..models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, StatementUsage

MAX_PERIOD = timedelta(days=366)
ZERO = Decimal(0)
SOURCE_LABELS = dict(CreditSource.choices)
# A billed period is settled (no usage can still arrive for it) once a billing statement was
# issued this long after its end: events older than `MAX_AGE` are refused, plus a margin.
SETTLED_AFTER = MAX_AGE + timedelta(days=1)
LATE_LOOKBACK = timedelta(days=400)


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
    billed: StatementUsage | None = None  # the watermark row a billing statement writes for it


@dataclass
class StatementDraft:
    lines: list[DraftLine]
    opening_credits: Decimal | None
    closing_credits: Decimal | None
    currency: str
    amount_paid: int


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _num(value: Decimal | int) -> str:
    text = f"{Decimal(value).quantize(Decimal('0.0001')):,f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _whole(value: Decimal) -> int:
    """Whole units, as the Stripe meter sync rounds them (`usage.services.meter_sync`)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _money(amount: int, currency: str) -> str:
    return f"{Decimal(amount) / 100:,.2f} {currency.upper()}"


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


# --------------------------------------------------------------------------- credits (ledger)
# The whole ledger read of the statements, in one round trip for any number of organizations:
# the opening balance, the consumptions and expiries summed per event and per source, and one row
# per grant, adjustment and refund (with the purchase behind a grant, if any). Ordered so the
# lines come out grants first, then by kind.
LEDGER_SQL = """
SELECT t.organization_id AS org, 0 AS part, '' AS kind, '' AS event_name, '' AS source,
       SUM(t.amount) AS amount, NULL::numeric AS quantity, COUNT(*) AS n, NULL::uuid AS txn_id,
       '' AS reason, NULL::timestamptz AS at, NULL::uuid AS purchase_id, NULL::bigint AS price,
       NULL::varchar AS currency, NULL::varchar AS pack_name, NULL::numeric AS purchase_credits
  FROM credits_credittransaction t
 WHERE t.organization_id = ANY(%(orgs)s) AND t.created_at < %(start)s
 GROUP BY t.organization_id
UNION ALL
SELECT t.organization_id, CASE t.kind WHEN 'consume' THEN 2 ELSE 3 END, t.kind, t.event_name,
       COALESCE(g.source, ''), SUM(t.amount), SUM(t.quantity), COUNT(*), NULL, '', NULL, NULL, NULL,
       NULL, NULL, NULL
  FROM credits_credittransaction t LEFT JOIN credits_creditgrant g ON g.id = t.grant_id
 WHERE t.organization_id = ANY(%(orgs)s) AND t.created_at >= %(start)s AND t.created_at < %(end)s
   AND t.kind IN ('consume', 'expire')
 GROUP BY t.organization_id, t.kind, t.event_name, COALESCE(g.source, '')
UNION ALL
SELECT t.organization_id, CASE t.kind WHEN 'grant' THEN 1 ELSE 4 END, t.kind, t.event_name,
       COALESCE(g.source, ''), t.amount, NULL, 1, t.id, t.reason, t.created_at, p.id, p.amount,
       p.currency, pk.name, p.credits
  FROM credits_credittransaction t
  LEFT JOIN credits_creditgrant g ON g.id = t.grant_id
  LEFT JOIN credits_creditpurchase p ON t.kind = 'grant' AND p.grant_id = t.grant_id
  LEFT JOIN credits_creditpack pk ON pk.id = p.pack_id
 WHERE t.organization_id = ANY(%(orgs)s) AND t.created_at >= %(start)s AND t.created_at < %(end)s
   AND t.kind IN ('grant', 'adjust', 'refund')
ORDER BY org, part, at, event_name, source
"""


def _credit_line(row, start: datetime, end: datetime) -> DraftLine:
    kind, event, source, credits, quantity, count, txn_id, reason, at = row[2:11]
    purchase_id, price, currency, pack_name, purchase_credits = row[11:]
    if kind == TransactionKind.CONSUME:
        return DraftLine(
            kind=InvoiceLine.Kind.CREDIT_CONSUMPTION,
            description=f"Credits used: {event or 'direct consumption'} ({_times(count)})",
            credits=credits,
            quantity=quantity if quantity is not None else Decimal(count),
            metric=event,
            period_start=start,
            period_end=end,
        )
    if kind == TransactionKind.EXPIRE:
        return DraftLine(
            kind=InvoiceLine.Kind.CREDIT_EXPIRY,
            description=f"{SOURCE_LABELS.get(source, 'Other')} credits expired",
            credits=credits,
            period_start=start,
            period_end=end,
        )
    if purchase_id is not None:
        what = pack_name or f"{credits_str(purchase_credits)} credits"
        return DraftLine(
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
    if kind == TransactionKind.GRANT:
        return DraftLine(
            kind=InvoiceLine.Kind.CREDIT_GRANT,
            description=f"{SOURCE_LABELS.get(source, 'Credits')} credits granted"
            + (f": {reason}" if reason else ""),
            credits=credits,
            period_start=at,
            period_end=at,
            metadata={"transaction": str(txn_id), "source": source},
        )
    refund = kind == TransactionKind.REFUND
    return DraftLine(
        kind=InvoiceLine.Kind.CREDIT_REFUND if refund else InvoiceLine.Kind.CREDIT_ADJUSTMENT,
        description=("Credits given back" if refund else "Adjustment") + (f": {reason}" if reason else ""),
        credits=credits,
        period_start=at,
        period_end=at,
        metadata={"transaction": str(txn_id)},
    )


def _credit_drafts(org_ids: list, start: datetime, end: datetime) -> dict:
    """organization id -> (opening balance, credit lines)."""
    out: dict = {org_id: [ZERO, []] for org_id in org_ids}
    with connection.cursor() as cursor:
        cursor.execute(LEDGER_SQL, {"orgs": org_ids, "start": start, "end": end})
        for row in cursor.fetchall():
            if row[1] == 0:
                out[row[0]][0] = row[5] or ZERO
            else:
                out[row[0]][1].append(_credit_line(row, start, end))
    return out


# --------------------------------------------------------------------------- usage (rollups)
@dataclass(frozen=True)
class UsageWindow:
    """The usage of an organization over the hours that start in [start, end)."""

    key: int
    organization_id: object
    start: datetime
    end: datetime


@dataclass
class UsageTotals:
    quantity: Decimal = ZERO
    events: int = 0
    largest: Decimal = ZERO
    credits: Decimal = ZERO
    distinct: int = 0

    def value(self, aggregation: str) -> Decimal:
        if aggregation == Aggregation.COUNT:
            return Decimal(self.events)
        if aggregation == Aggregation.MAX:
            return self.largest
        if aggregation == Aggregation.UNIQUE:
            return Decimal(self.distinct)
        return self.quantity


def _ceil_hour(moment: datetime) -> datetime:
    floor = floor_hour(moment)
    return floor if floor == moment else floor + timedelta(hours=1)


def _bounds(window: UsageWindow) -> tuple[datetime, datetime, datetime, datetime]:
    hour_from, hour_to = _ceil_hour(window.start), _ceil_hour(window.end)
    day_from = floor_day(hour_from)
    if day_from < hour_from:
        day_from += timedelta(days=1)
    day_to = floor_day(hour_to)
    if day_from >= day_to:  # within a day, or two partial ones: hours only
        day_from = day_to = hour_to
    return hour_from, hour_to, day_from, day_to


_ROLLUP_COLUMNS = "metric_id, quantity, events, quantity_max, credits"
# Per window and metric: whole days from the daily rollups, the hours before the first whole day
# and after the last one from the hourly rollups (each arm only for the windows that have such
# hours), all in one statement, so it reads one consistent snapshot.
USAGE_SQL = f"""
SELECT wid, metric_id, SUM(quantity), SUM(events), MAX(quantity_max), SUM(credits) FROM (
    SELECT w.wid, {_ROLLUP_COLUMNS}
      FROM unnest(%(d_wid)s::int[], %(d_org)s::uuid[], %(d_from)s::timestamptz[], %(d_to)s::timestamptz[])
           AS w(wid, org, t_from, t_to)
      JOIN usage_usagerollupday d ON d.organization_id = w.org AND d.day >= w.t_from AND d.day < w.t_to
    UNION ALL
    SELECT w.wid, {_ROLLUP_COLUMNS}
      FROM unnest(%(h_wid)s::int[], %(h_org)s::uuid[], %(h_from)s::timestamptz[], %(h_to)s::timestamptz[])
           AS w(wid, org, t_from, t_to)
      JOIN usage_usagerollup h ON h.organization_id = w.org AND h.hour >= w.t_from AND h.hour < w.t_to
) r GROUP BY wid, metric_id
"""  # noqa: S608 - no input in the text

DISTINCT_SQL = """
SELECT w.wid, u.metric_id, COUNT(DISTINCT u.value)
  FROM unnest(%(wid)s::int[], %(org)s::uuid[], %(from)s::timestamptz[], %(to)s::timestamptz[])
       AS w(wid, org, t_from, t_to)
  JOIN usage_usagedistinct u ON u.organization_id = w.org AND u.metric_id = ANY(%(metrics)s)
   AND u.hour >= w.t_from AND u.hour < w.t_to
 GROUP BY w.wid, u.metric_id
"""


def usage_window_totals(windows: list[UsageWindow], metrics: dict[int, Metric]) -> dict:
    """window key -> metric id -> UsageTotals, equal to the rollups of the window's hours."""
    if not windows:
        return {}
    arms: dict[str, list] = {
        k: [] for k in ("d_wid", "d_org", "d_from", "d_to", "h_wid", "h_org", "h_from", "h_to")
    }

    def add(prefix: str, window: UsageWindow, t_from: datetime, t_to: datetime) -> None:
        if t_from < t_to:
            arms[f"{prefix}_wid"].append(window.key)
            arms[f"{prefix}_org"].append(window.organization_id)
            arms[f"{prefix}_from"].append(t_from)
            arms[f"{prefix}_to"].append(t_to)

    for window in windows:
        hour_from, hour_to, day_from, day_to = _bounds(window)
        add("d", window, day_from, day_to)
        add("h", window, hour_from, day_from)
        add("h", window, day_to, hour_to)
    out: dict = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(USAGE_SQL, arms)
        for wid, metric_id, quantity, events, largest, credits in cursor.fetchall():
            out[wid][metric_id] = UsageTotals(
                quantity=quantity or ZERO,
                events=int(events or 0),
                largest=largest or ZERO,
                credits=credits or ZERO,
            )
        unique = [pk for pk, metric in metrics.items() if metric.aggregation == Aggregation.UNIQUE]
        if unique:
            params: dict[str, list] = {"wid": [], "org": [], "from": [], "to": [], "metrics": unique}
            for window in windows:
                hour_from, hour_to, _, _ = _bounds(window)
                params["wid"].append(window.key)
                params["org"].append(window.organization_id)
                params["from"].append(hour_from)
                params["to"].append(hour_to)
            cursor.execute(DISTINCT_SQL, params)
            for wid, metric_id, distinct in cursor.fetchall():
                out[wid].setdefault(metric_id, UsageTotals()).distinct = distinct
    return out


@dataclass
class Pricing:
    """What the organization's plan says of usage: included quantities and metered prices."""

    limits: dict
    metered: dict[str, PlanMeteredPrice]

    def included(self, code: str) -> Decimal | None:
        value = self.limits.get(code)
        return None if value is None else Decimal(value)

    def overage(self, code: str, value: Decimal) -> int:
        """Whole units above the included quantity that a metered price bills."""
        included = self.included(code)
        if included is None or code not in self.metered:
            return 0
        return max(0, _whole(value) - _whole(included))


def _pricings(organizations: list[Organization]) -> dict:
    """organization id -> Pricing of the plan that applies to it now (its plan while entitled,
    else the free plan), from two small queries for the whole chunk."""
    plans = {plan.pk: plan for plan in Plan.objects.all()}
    free = next((plan for plan in plans.values() if plan.code == Plan.FREE), None)
    metered: dict = defaultdict(dict)
    prices = PlanMeteredPrice.objects.filter(active=True).order_by("plan_id", "metric")
    for price in sorted(prices, key=lambda p: (p.interval != "month", p.currency != "usd", p.pk)):
        metered[price.plan_id].setdefault(price.metric, price)
    out = {}
    for organization in organizations:
        plan = None
        if organization.plan_id is not None and organization.subscription_status in ENTITLED_STATUSES:
            plan = plans.get(organization.plan_id)
        plan = plan or free
        out[organization.pk] = Pricing(
            limits=dict(plan.limits or {}) if plan else {}, metered=metered.get(plan.pk, {}) if plan else {}
        )
    return out


def _usage_line(
    metric: Metric, totals: UsageTotals, pricing: Pricing, window: UsageWindow, currency: str
) -> DraftLine:
    value = totals.value(metric.aggregation)
    included = pricing.included(metric.code)
    overage = pricing.overage(metric.code, value)
    price = pricing.metered.get(metric.code)
    amount = overage * price.unit_amount if price and overage else 0
    text = f"{metric.name}: {_num(value)} {metric.unit}"
    if included is not None:
        text += f", {_num(included)} included"
    if overage:
        text += f", {_num(overage)} over at {_money(price.unit_amount, price.currency)} each"
    return DraftLine(
        kind=InvoiceLine.Kind.USAGE,
        description=text,
        quantity=value,
        amount=amount,
        currency=price.currency if price and overage else currency,
        metric=metric.code,
        period_start=window.start,
        period_end=window.end,
        metadata={
            "events": totals.events,
            "credits": str(totals.credits),
            "included": None if included is None else str(included),
            "overage": overage,
            "unit_amount": price.unit_amount if price else None,
        },
        billed=StatementUsage(
            organization_id=window.organization_id,
            metric_id=metric.pk,
            period_start=window.start,
            period_end=window.end,
            quantity=value,
            events=totals.events,
            credits=totals.credits,
            overage=overage,
            amount=amount,
            currency=price.currency if price and overage else currency,
        ),
    )


# The earlier billing statements of the organizations whose period may still receive usage: no
# billing statement of the organization was issued long enough after its end to settle it.
BILLED_WINDOWS_SQL = """
SELECT s.organization_id, s.period_start, s.period_end
  FROM invoices_invoice s
 WHERE s.organization_id = ANY(%(orgs)s) AND s.kind = 'statement' AND s.period_close_id IS NOT NULL
   AND s.include_usage AND s.period_end <= %(start)s AND s.period_end > %(oldest)s
   AND NOT EXISTS (
       SELECT 1 FROM invoices_invoice n
        WHERE n.organization_id = s.organization_id AND n.kind = 'statement'
          AND n.period_close_id IS NOT NULL AND n.created_at >= s.period_end + %(settled)s)
"""

BILLED_SQL = """
SELECT organization_id, period_start, period_end, metric_id, SUM(quantity), SUM(events), SUM(credits),
       SUM(overage), SUM(amount)
  FROM invoices_statementusage
 WHERE organization_id = ANY(%(orgs)s) AND period_end <= %(start)s AND period_end > %(oldest)s
 GROUP BY organization_id, period_start, period_end, metric_id
"""


def _late_windows(org_ids: list, start: datetime, first_key: int) -> tuple[list[UsageWindow], dict]:
    """The billed windows still open to late usage, and what was billed of each (window key ->
    metric id -> (quantity, events, credits, overage, amount))."""
    params = {"orgs": org_ids, "start": start, "oldest": start - LATE_LOOKBACK, "settled": SETTLED_AFTER}
    windows: list[UsageWindow] = []
    billed: dict = defaultdict(dict)
    with connection.cursor() as cursor:
        cursor.execute(BILLED_WINDOWS_SQL, params)
        for key, (org_id, w_start, w_end) in enumerate(cursor.fetchall(), start=first_key):
            windows.append(UsageWindow(key=key, organization_id=org_id, start=w_start, end=w_end))
        if not windows:
            return windows, billed
        by_period = {(w.organization_id, w.start, w.end): w.key for w in windows}
        cursor.execute(BILLED_SQL, params)
        for row in cursor.fetchall():
            org_id, w_start, w_end, metric_id, quantity, events, credits, overage, amount = row
            key = by_period.get((org_id, w_start, w_end))
            if key is not None:
                billed[key][metric_id] = (quantity, int(events), credits, int(overage), int(amount))
    return windows, billed


def _late_lines(
    window: UsageWindow,
    now: dict,
    billed: dict,
    metrics: dict[int, Metric],
    pricing: Pricing,
    currency: str,
) -> list[DraftLine]:
    """The adjustment lines of one earlier period: per metric, the rollups now minus what was
    billed, when they differ."""
    lines = []
    known = (set(now) | set(billed)) & set(metrics)  # a rollup of a metric since deleted bills nothing
    for metric_id in sorted(known, key=lambda pk: (metrics[pk].sort_order, metrics[pk].code)):
        metric = metrics[metric_id]
        totals = now.get(metric_id, UsageTotals())
        value = totals.value(metric.aggregation)
        b_value, b_events, b_credits, b_overage, _amount = billed.get(metric_id, (ZERO, 0, ZERO, 0, 0))
        if (value, totals.events, totals.credits) == (b_value, b_events, b_credits):
            continue
        overage = pricing.overage(metric.code, value) - b_overage
        price = pricing.metered.get(metric.code)
        amount = overage * price.unit_amount if price and overage else 0
        line_currency = price.currency if price and overage else currency
        added = value - b_value
        text = (
            f"Late usage for {window.start:%d %b %Y} to {window.end:%d %b %Y}: {metric.name} "
            f"{'+' if added >= 0 else ''}{_num(added)} {metric.unit}"
        )
        if overage:
            text += f", {_num(overage)} more over at {_money(price.unit_amount, price.currency)} each"
        lines.append(
            DraftLine(
                kind=InvoiceLine.Kind.USAGE_ADJUSTMENT,
                description=text,
                quantity=added,
                amount=amount,
                currency=line_currency,
                metric=metric.code,
                period_start=window.start,
                period_end=window.end,
                metadata={
                    "events": totals.events - b_events,
                    "credits": str(totals.credits - b_credits),
                    "overage": overage,
                    "original_period": [window.start.isoformat(), window.end.isoformat()],
                },
                billed=StatementUsage(
                    organization_id=window.organization_id,
                    metric_id=metric_id,
                    period_start=window.start,
                    period_end=window.end,
                    quantity=added,
                    events=totals.events - b_events,
                    credits=totals.credits - b_credits,
                    overage=overage,
                    amount=amount,
                    currency=line_currency,
                    late=True,
                ),
            )
        )
    return lines


# --------------------------------------------------------------------------- drafts
def statement_drafts_build(
    *,
    organizations: list[Organization],
    period_start: datetime,
    period_end: datetime,
    include_usage: bool,
    include_credits: bool,
    billing: bool = False,
) -> dict:
    """organization id -> StatementDraft: what each statement will say, read set-based from the
    ledger and the rollups. `billing` (a period close's statements) adds the late usage of the
    earlier billed periods. Writes nothing."""
    org_ids = [organization.pk for organization in organizations]
    credit = _credit_drafts(org_ids, period_start, period_end) if include_credits and org_ids else {}
    usage_lines: dict = defaultdict(list)
    if include_usage and org_ids:
        metrics = {metric.pk: metric for metric in Metric.objects.all()}
        pricings = _pricings(organizations)
        windows = [
            UsageWindow(key=n, organization_id=org_id, start=period_start, end=period_end)
            for n, org_id in enumerate(org_ids)
        ]
        late, billed = _late_windows(org_ids, period_start, len(windows)) if billing else ([], {})
        totals = usage_window_totals(windows + late, metrics)
        for window in windows:
            pricing = pricings[window.organization_id]
            found = {pk: t for pk, t in totals.get(window.key, {}).items() if pk in metrics}
            for metric_id in sorted(found, key=lambda pk: (metrics[pk].sort_order, metrics[pk].code)):
                usage_lines[window.organization_id].append(
                    _usage_line(metrics[metric_id], found[metric_id], pricing, window, "usd")
                )
        for window in sorted(late, key=lambda w: w.start):
            usage_lines[window.organization_id] += _late_lines(
                window,
                totals.get(window.key, {}),
                billed.get(window.key, {}),
                metrics,
                pricings[window.organization_id],
                "usd",
            )
    drafts = {}
    for org_id in org_ids:
        lines = list(usage_lines.get(org_id, []))
        opening = closing = None
        if include_credits:
            opening, credit_lines = credit[org_id]
            lines += credit_lines
            closing = opening + sum((line.credits for line in credit_lines if line.credits is not None), ZERO)
        purchases = [line for line in lines if line.kind == InvoiceLine.Kind.CREDIT_PURCHASE]
        currencies = {line.currency for line in purchases} | {line.currency for line in lines if line.amount}
        currency = sorted(currencies)[0] if len(currencies) == 1 else "usd"
        drafts[org_id] = StatementDraft(
            lines=lines,
            opening_credits=opening,
            closing_credits=closing,
            currency=currency,
            amount_paid=sum(line.amount for line in purchases if line.currency == currency),
        )
    return drafts


def statement_draft_build(
    *,
    organization: Organization,
    period_start: datetime,
    period_end: datetime,
    include_usage: bool,
    include_credits: bool,
) -> StatementDraft:
    """What a statement of the organization will say (no late usage: that is for billing
    statements, issued in turn). Writes nothing."""
    return statement_drafts_build(
        organizations=[organization],
        period_start=period_start,
        period_end=period_end,
        include_usage=include_usage,
        include_credits=include_credits,
    )[organization.pk]


# --------------------------------------------------------------------------- issuing
def _take_numbers(org_ids: list, period_close) -> dict:
    """Lock the organizations' statement sequences (in id order, so concurrent chunks never
    deadlock) and take the next number of each that still needs its statement (with a close:
    the ones without a statement for it, checked after the lock, so a concurrent run of the same
    close is seen). The rows stay locked until the transaction ends: statements of an
    organization are issued one at a time, and a rollback gives the numbers back."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO invoices_statementsequence (organization_id, last_number) "
            "SELECT unnest(%s::uuid[]), 0 ON CONFLICT (organization_id) DO NOTHING",
            [org_ids],
        )
        cursor.execute(
            "SELECT organization_id FROM invoices_statementsequence WHERE organization_id = ANY(%s) "
            "ORDER BY organization_id FOR UPDATE",
            [org_ids],
        )
        todo = [row[0] for row in cursor.fetchall()]
        if period_close is not None:
            cursor.execute(
                "SELECT organization_id FROM invoices_invoice WHERE period_close_id = %s "
                "AND organization_id = ANY(%s)",
                [period_close.pk, todo],
            )
            done = {row[0] for row in cursor.fetchall()}
            todo = [org_id for org_id in todo if org_id not in done]
        if not todo:
            return {}
        cursor.execute(
            "UPDATE invoices_statementsequence SET last_number = last_number + 1 "
            "WHERE organization_id = ANY(%s) RETURNING organization_id, last_number",
            [todo],
        )
        return dict(cursor.fetchall())


# The lines and the watermark rows of a chunk, each in one INSERT from arrays (one parameter per
# column instead of one per value, and no model instance per row).
LINES_SQL = """
INSERT INTO invoices_invoiceline (invoice_id, position, kind, stripe_id, description, quantity, amount,
    currency, period_start, period_end, metric, credits, price_id, metadata)
SELECT invoice_id, position, kind, '', description, quantity, amount, currency, period_start, period_end,
       metric, credits, '', metadata::jsonb
  FROM unnest(%s::uuid[], %s::int[], %s::text[], %s::text[], %s::numeric[], %s::bigint[], %s::text[],
              %s::timestamptz[], %s::timestamptz[], %s::text[], %s::numeric[], %s::text[])
       AS t(invoice_id, position, kind, description, quantity, amount, currency, period_start, period_end,
            metric, credits, metadata)
"""

USAGE_BILLED_SQL = """
INSERT INTO invoices_statementusage (statement_id, organization_id, metric_id, period_start, period_end,
    quantity, events, credits, overage, amount, currency, late)
SELECT * FROM unnest(%s::uuid[], %s::uuid[], %s::int[], %s::timestamptz[], %s::timestamptz[], %s::numeric[],
                     %s::bigint[], %s::numeric[], %s::bigint[], %s::bigint[], %s::text[], %s::bool[])
"""


def _lines_insert(lines: list[tuple]) -> None:
    if not lines:
        return
    columns: list[list] = [[] for _ in range(12)]
    for invoice_id, position, line in lines:
        values = (
            invoice_id,
            position,
            line.kind,
            line.description,
            line.quantity,
            line.amount,
            line.currency,
            line.period_start,
            line.period_end,
            line.metric,
            line.credits,
            json.dumps(line.metadata),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(LINES_SQL, columns)


def _usage_billed_insert(rows: list[StatementUsage]) -> None:
    if not rows:
        return
    names = [
        "statement_id", "organization_id", "metric_id", "period_start", "period_end", "quantity", "events",
        "credits", "overage", "amount", "currency", "late",
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(USAGE_BILLED_SQL, [[getattr(row, name) for row in rows] for name in names])


def statement_number(organization: Organization, sequence: int) -> str:
    return f"ST-{organization.pk.hex[:8].upper()}-{sequence:04d}"


def statements_issue(
    *,
    organizations: list[Organization],
    period_start: datetime,
    period_end: datetime,
    include_usage: bool = True,
    include_credits: bool = True,
    actor: str = "",
    period_close=None,
) -> list[Invoice]:
    """Issue the statements of the organizations for the period in one transaction: numbered,
    totalled and immutable from its commit on. With `period_close` (a billing statement: it
    writes the usage watermark and bills late usage), at most one per organization and close:
    the organizations that already have theirs are skipped. Answers the statements issued."""
    statement_period_validate(period_start=period_start, period_end=period_end)
    by_id = {organization.pk: organization for organization in organizations}
    now = timezone.now()
    with transaction.atomic():
        numbers = _take_numbers(sorted(by_id), period_close)
        todo = [by_id[org_id] for org_id in sorted(numbers)]
        drafts = statement_drafts_build(
            organizations=todo,
            period_start=period_start,
            period_end=period_end,
            include_usage=include_usage,
            include_credits=include_credits,
            billing=period_close is not None,
        )
        statements, lines, billed = [], [], []
        for organization in todo:
            draft = drafts[organization.pk]
            subtotal = sum(line.amount for line in draft.lines if line.currency == draft.currency)
            paid = min(draft.amount_paid, subtotal)
            statement = Invoice(
                organization=organization,
                kind=InvoiceKind.STATEMENT,
                status=InvoiceStatus.DRAFT,
                sequence=numbers[organization.pk],
                number=statement_number(organization, numbers[organization.pk]),
                description=f"Statement for {period_start:%d %b %Y} to {period_end:%d %b %Y}",
                currency=draft.currency,
                subtotal=subtotal,
                tax=0,
                total=subtotal,
                amount_due=subtotal,
                amount_paid=paid,
                amount_remaining=subtotal - paid,
                period_start=period_start,
                period_end=period_end,
                customer_name=organization.name,
                customer_email=organization.billing_email,
                include_usage=include_usage,
                include_credits=include_credits,
                opening_credits=draft.opening_credits,
                closing_credits=draft.closing_credits,
                created_by=actor,
                created_at=now,
                lines_final=True,
                period_close=period_close,
            )
            statements.append(statement)
            for position, line in enumerate(draft.lines, start=1):
                lines.append((statement.pk, position, line))
                if period_close is not None and line.billed is not None:
                    line.billed.statement = statement
                    billed.append(line.billed)
        if not statements:
            return []
        Invoice.objects.bulk_create(statements, batch_size=1000)
        _lines_insert(lines)
        _usage_billed_insert(billed)
        Invoice.objects.filter(pk__in=[s.pk for s in statements]).update(status=InvoiceStatus.ISSUED)
        for statement in statements:
            statement.status = InvoiceStatus.ISSUED
    return statements


def statement_generate(
    *,
    organization: Organization,
    period_start: datetime,
    period_end: datetime,
    include_usage: bool = True,
    include_credits: bool = True,
    actor: str = "",
    period_close=None,
) -> Invoice | None:
    """Issue one statement for the period (`statements_issue` for one organization). With
    `period_close`, answers None when the organization already has its statement for it."""
    issued = statements_issue(
        organizations=[organization],
        period_start=period_start,
        period_end=period_end,
        include_usage=include_usage,
        include_credits=include_credits,
        actor=actor,
        period_close=period_close,
    )
    return issued[0] if issued else None
