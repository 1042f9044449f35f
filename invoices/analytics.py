"""Staff analytics: revenue, credits, usage and the Stripe balance, read across every organization.

Why here: the figures read all four apps (the dj-stripe mirror, the credit ledger, the usage
rollups and the invoice records), and `invoices` is the top layer, the only app that may read all
of them (`invoices -> usage -> credits -> billing`). Nothing is cached: every figure is computed
from the mirror and the product's own tables when asked, so it cannot drift from them.

Money is in integer minor units of one currency (the `currency` asked for; objects in other
currencies are left out), computed with `Decimal` and rounded half-up to a minor unit only when
the figure is given out. Credits are `Decimal` with 4 places. Ratios are `Decimal` in [0, 1],
4 places, or None when their denominator is zero. Each definition is written, one line each, in
README.md ("Staff analytics").

Subscription history comes from the mirror's own record of it: dj-stripe keeps every
`customer.subscription.*` event Stripe delivered, each carrying the whole subscription at that
moment, so the state of a subscription at any instant (status, trial, items and prices) is the
object of its last event at or before it. A subscription with no stored event (synced without a
webhook) counts with its current mirror row from its start date on.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import connection
from django.db.models import Q, Sum
from django.utils import timezone
from djstripe.models import BalanceTransaction, Charge, Dispute, Event, Payout, Refund, Subscription

from billing import stripe_data
from billing.models import Organization
from credits.models import CreditGrant, CreditPurchase, CreditSource, CreditTransaction, TransactionKind
from usage.models import Aggregation, Metric, UsageDimensionRollup, UsageRollup

from .models import Invoice, InvoiceKind, InvoiceLine, InvoiceStatus

ZERO = Decimal(0)
RATIO = Decimal("0.0001")
CREDITS = Decimal("0.0001")
# Statuses in which a subscription pays (counts in MRR). `past_due` still counts: Stripe is
# retrying and the customer has not left; `unpaid`, `paused`, `incomplete*` and `canceled` do not.
PAYING = frozenset({"active", "past_due"})
OPEN_DISPUTE = frozenset({"warning_needs_response", "warning_under_review", "needs_response", "under_review"})
# Months per billing interval, to bring every recurring price to a monthly amount.
PER_MONTH = {"month": Decimal(1), "year": Decimal(1) / 12, "week": Decimal(52) / 12, "day": Decimal(365) / 12}


def minor(amount: Decimal) -> int:
    """An exact amount rounded half-up to whole minor units, only where it is given out."""
    return int(amount.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def ratio(numerator: Decimal | int, denominator: Decimal | int) -> Decimal | None:
    if not denominator:
        return None
    return (Decimal(numerator) / Decimal(denominator)).quantize(RATIO, rounding=ROUND_HALF_UP)


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


# --------------------------------------------------------------------------- subscription history
@dataclass
class SubscriptionHistory:
    """One Stripe subscription's states over time: `(from, object)` sorted by time."""

    id: str
    customer: str
    states: list[tuple[int, dict]] = field(default_factory=list)
    current: dict = field(default_factory=dict)

    def at(self, moment: int) -> dict | None:
        """The subscription as it was at `moment` (None: it did not exist yet)."""
        if not self.states:
            start = self.current.get("start_date") or self.current.get("created") or 0
            return self.current if start <= moment else None
        index = bisect.bisect_right([t for t, _ in self.states], moment) - 1
        return self.states[index][1] if index >= 0 else None


def subscription_histories() -> dict[str, SubscriptionHistory]:
    """Every subscription of the mirror with its history from the stored webhook events."""
    histories: dict[str, SubscriptionHistory] = {}
    for sub in Subscription.objects.only("id", "stripe_data"):
        data = sub.stripe_data or {}
        histories[sub.id] = SubscriptionHistory(
            id=sub.id, customer=stripe_data.object_id(data.get("customer")) or "", current=data
        )
    events = Event.objects.filter(type__startswith="customer.subscription.").order_by(
        "created", "djstripe_id"
    )
    for event in events.only("created", "data", "djstripe_id"):
        obj = stripe_data.event_object(event)
        if obj.get("object") != "subscription" or not obj.get("id"):
            continue
        history = histories.get(obj["id"])
        if history is None:
            history = histories[obj["id"]] = SubscriptionHistory(
                id=obj["id"], customer=stripe_data.object_id(obj.get("customer")) or "", current=obj
            )
        history.states.append((ts(event.created), obj))
    return histories


def subscription_monthly(sub: dict, currency: str) -> Decimal:
    """What a subscription in this state brings each month: its licensed recurring prices times
    their quantities, brought to a month (a yearly price counts a twelfth). Metered prices are
    usage, counted apart (`usage_inclusive_mrr`)."""
    total = ZERO
    for item in stripe_data.subscription_items(sub):
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        if not isinstance(price, dict) or price.get("currency") != currency:
            continue
        if recurring.get("usage_type", "licensed") != "licensed" or price.get("unit_amount") is None:
            continue
        per_month = PER_MONTH.get(recurring.get("interval", "month"), Decimal(1))
        count = Decimal(recurring.get("interval_count") or 1)
        total += Decimal(price["unit_amount"]) * Decimal(item.get("quantity") or 1) * per_month / count
    return total


def is_paying(sub: dict | None, moment: int) -> bool:
    if sub is None or sub.get("status") not in PAYING:
        return False
    ended = sub.get("ended_at")
    return not (ended and ended <= moment)


def mrr_by_customer(
    histories: Iterable[SubscriptionHistory], moment: int, currency: str
) -> dict[str, Decimal]:
    """Each paying customer's MRR at `moment` (customers paying nothing are left out)."""
    out: dict[str, Decimal] = defaultdict(Decimal)
    for history in histories:
        sub = history.at(moment)
        if is_paying(sub, moment):
            amount = subscription_monthly(sub, currency)
            if amount > 0:
                out[history.customer] += amount
    return dict(out)


def mrr_at(moment: datetime, *, currency: str = "usd", histories=None) -> Decimal:
    histories = subscription_histories() if histories is None else histories
    return sum(mrr_by_customer(histories.values(), ts(moment), currency).values(), ZERO)


# --------------------------------------------------------------------------- revenue
@dataclass(frozen=True)
class RevenueReport:
    start: datetime
    end: datetime
    currency: str
    mrr: int
    arr: int
    arpu: int
    paying_customers: int
    customers_at_start: int
    new_customers: int
    churned_customers: int
    mrr_at_start: int
    new_mrr: int
    expansion_mrr: int
    contraction_mrr: int
    churned_mrr: int
    churn_rate: Decimal | None
    revenue_churn_rate: Decimal | None
    trials_ended: int
    trials_converted: int
    trial_conversion_rate: Decimal | None
    gross_volume: int
    refunds: int
    disputes: int
    net_volume: int
    payments_succeeded: int
    payments_failed: int
    payment_success_rate: Decimal | None
    metered_revenue: int
    usage_inclusive_mrr: int


def _in_range(qs, start: datetime, end: datetime):
    return qs.filter(created__gte=start, created__lt=end)


def _amount(obj) -> int:
    return int((obj.stripe_data or {}).get("amount") or 0)


def _currency(obj) -> str:
    return ((obj.stripe_data or {}).get("currency") or "").lower()


def payment_volumes(*, start: datetime, end: datetime, currency: str) -> dict[str, int]:
    """Charges, refunds and disputes created in [start, end) in `currency`."""
    out = {"gross": 0, "succeeded": 0, "failed": 0, "refunds": 0, "disputes": 0, "disputes_count": 0}
    for charge in _in_range(Charge.objects.only("stripe_data", "created"), start, end):
        data = charge.stripe_data or {}
        if _currency(charge) != currency:
            continue
        if data.get("status") == "succeeded":
            out["gross"] += _amount(charge)
            out["succeeded"] += 1
        elif data.get("status") == "failed":
            out["failed"] += 1
    for refund in _in_range(Refund.objects.only("stripe_data", "created"), start, end):
        if _currency(refund) == currency and (refund.stripe_data or {}).get("status") in (
            "succeeded",
            "pending",
        ):
            out["refunds"] += _amount(refund)
    for dispute in _in_range(Dispute.objects.only("stripe_data", "created"), start, end):
        if _currency(dispute) == currency:
            out["disputes"] += _amount(dispute)
            out["disputes_count"] += 1
    return out


def trial_outcomes(
    histories: dict[str, SubscriptionHistory], *, start: datetime, end: datetime, currency: str
) -> tuple[int, int]:
    """Trials that ended in [start, end), and how many of them converted: the subscription has a
    paid Stripe invoice with money paid, paid by `end`."""
    ended = []
    for history in histories.values():
        sub = history.current
        trial_start, trial_end = sub.get("trial_start"), sub.get("trial_end")
        if trial_start and trial_end and ts(start) <= trial_end < ts(end) and trial_end > trial_start:
            ended.append(history.id)
    converted = (
        Invoice.objects.filter(
            kind=InvoiceKind.STRIPE,
            status=InvoiceStatus.PAID,
            stripe_subscription_id__in=ended,
            amount_paid__gt=0,
            currency=currency,
            paid_at__lt=end,
        )
        .values("stripe_subscription_id")
        .distinct()
        .count()
    )
    return len(ended), converted


def metered_revenue_last_closed(
    histories: dict[str, SubscriptionHistory], *, moment: datetime, currency: str
) -> Decimal:
    """For each subscription paying at `moment`: the usage lines of its last Stripe invoice whose
    usage period had closed by then (the metered revenue of its last closed period)."""
    paying = [h.id for h in histories.values() if is_paying(h.at(ts(moment)), ts(moment))]
    lines = (
        InvoiceLine.objects.filter(
            kind=InvoiceLine.Kind.USAGE,
            invoice__kind=InvoiceKind.STRIPE,
            invoice__stripe_subscription_id__in=paying,
            invoice__status__in=[InvoiceStatus.OPEN, InvoiceStatus.PAID],
            currency=currency,
            period_end__lte=moment,
        )
        .values_list("invoice__stripe_subscription_id", "period_end", "amount")
        .order_by()
    )
    latest: dict[str, datetime] = {}
    amounts: dict[tuple[str, datetime], int] = defaultdict(int)
    for sub_id, period_end, amount in lines:
        amounts[(sub_id, period_end)] += amount
        if sub_id not in latest or period_end > latest[sub_id]:
            latest[sub_id] = period_end
    return sum((Decimal(amounts[(s, p)]) for s, p in latest.items()), ZERO)


def revenue_report(*, start: datetime, end: datetime, currency: str = "usd") -> RevenueReport:
    """The revenue figures of [start, end): MRR and what follows from it at `end`, movements
    between `start` and `end`, and the payments made in the range."""
    histories = subscription_histories()
    before = mrr_by_customer(histories.values(), ts(start), currency)
    after = mrr_by_customer(histories.values(), ts(end), currency)
    mrr = sum(after.values(), ZERO)
    mrr_start = sum(before.values(), ZERO)
    new = [c for c in after if c not in before]
    churned = [c for c in before if c not in after]
    expansion = sum((after[c] - before[c] for c in after if c in before and after[c] > before[c]), ZERO)
    contraction = sum((before[c] - after[c] for c in after if c in before and after[c] < before[c]), ZERO)
    churned_mrr = sum((before[c] for c in churned), ZERO)
    trials, converted = trial_outcomes(histories, start=start, end=end, currency=currency)
    volumes = payment_volumes(start=start, end=end, currency=currency)
    metered = metered_revenue_last_closed(histories, moment=end, currency=currency)
    return RevenueReport(
        start=start,
        end=end,
        currency=currency,
        mrr=minor(mrr),
        arr=minor(mrr * 12),
        arpu=minor(mrr / len(after)) if after else 0,
        paying_customers=len(after),
        customers_at_start=len(before),
        new_customers=len(new),
        churned_customers=len(churned),
        mrr_at_start=minor(mrr_start),
        new_mrr=minor(sum((after[c] for c in new), ZERO)),
        expansion_mrr=minor(expansion),
        contraction_mrr=minor(contraction),
        churned_mrr=minor(churned_mrr),
        churn_rate=ratio(len(churned), len(before)),
        revenue_churn_rate=ratio(churned_mrr + contraction, mrr_start),
        trials_ended=trials,
        trials_converted=converted,
        trial_conversion_rate=ratio(converted, trials),
        gross_volume=volumes["gross"],
        refunds=volumes["refunds"],
        disputes=volumes["disputes"],
        net_volume=volumes["gross"] - volumes["refunds"] - volumes["disputes"],
        payments_succeeded=volumes["succeeded"],
        payments_failed=volumes["failed"],
        payment_success_rate=ratio(volumes["succeeded"], volumes["succeeded"] + volumes["failed"]),
        metered_revenue=minor(metered),
        usage_inclusive_mrr=minor(mrr + metered),
    )


def month_starts(end: datetime, months: int) -> list[datetime]:
    """The first instants (UTC) of the `months` calendar months up to the one holding `end`."""
    first = end.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    year, month = first.year, first.month
    for _ in range(months):
        out.append(datetime(year, month, 1, tzinfo=UTC))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


def mrr_series(*, end: datetime, months: int = 12, currency: str = "usd") -> list[tuple[datetime, int]]:
    """MRR at the end of each of the last `months` calendar months (the current one: at `end`)."""
    histories = subscription_histories()
    points = []
    for first in month_starts(end, months):
        following = (first + timedelta(days=32)).replace(day=1)
        moment = min(following, end)
        points.append((first, minor(mrr_at(moment, currency=currency, histories=histories))))
    return points


@dataclass(frozen=True)
class SubscriptionCount:
    plan: str
    status: str
    count: int


def subscriptions_by_plan_and_status() -> list[SubscriptionCount]:
    """Live (not canceled) subscriptions of the mirror, by plan and status, now."""
    from billing.models import PlanPrice

    plan_of = dict(PlanPrice.objects.exclude(stripe_price_id="").values_list("stripe_price_id", "plan__code"))
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for sub in Subscription.objects.only("stripe_data"):
        data = sub.stripe_data or {}
        status = data.get("status") or ""
        if status in ("canceled", "incomplete_expired"):
            continue
        plan = plan_of.get(stripe_data.subscription_price_id(data) or "", "other")
        counts[(plan, status)] += 1
    return [SubscriptionCount(plan=p, status=s, count=c) for (p, s), c in sorted(counts.items())]


# --------------------------------------------------------------------------- credits
@dataclass(frozen=True)
class CreditsReport:
    start: datetime
    end: datetime
    at: datetime
    currency: str
    purchased: Decimal
    granted: Decimal
    consumed: Decimal
    expired: Decimal
    taken_back: Decimal
    liability: Decimal
    liability_amount: int
    utilization: Decimal | None
    by_source: dict[str, Decimal]


def _grant_sources() -> dict[str, str]:
    return {str(pk): source for pk, source in CreditGrant.objects.values_list("pk", "source")}


def credit_liability_at(*, at: datetime, currency: str = "usd") -> tuple[Decimal, Decimal]:
    """Purchased credits not yet spent at the instant `at`, and what they were paid (minor units,
    exact): the service the business still owes for money it holds. Each purchase grant's
    remaining now, plus what left it after `at` (consumption drawn from it, credits taken back
    on a refund or dispute), minus what a reversed consumption gave back to it after `at`."""
    grants = {
        str(g.pk): g
        for g in CreditGrant.objects.filter(source=CreditSource.PURCHASE, created_at__lte=at).only(
            "pk", "amount", "remaining"
        )
    }
    remaining = {pk: g.remaining for pk, g in grants.items()}
    later = CreditTransaction.objects.filter(created_at__gt=at).only(
        "kind", "amount", "grant_id", "allocations", "reverses_id"
    )
    reversed_ids = set()
    for row in later:
        if row.kind in (TransactionKind.CONSUME, TransactionKind.ADJUST) and row.allocations:
            for grant_id, taken in row.allocations:
                if grant_id in remaining:
                    remaining[grant_id] += Decimal(taken)
        elif (
            row.kind in (TransactionKind.EXPIRE, TransactionKind.REFUND)
            and row.amount < 0
            and str(row.grant_id) in remaining
        ):
            remaining[str(row.grant_id)] -= row.amount
        if row.reverses_id is not None:
            reversed_ids.add(row.reverses_id)
    if reversed_ids:
        for original in CreditTransaction.objects.filter(pk__in=reversed_ids).only("allocations"):
            for grant_id, taken in original.allocations or []:
                if grant_id in remaining:
                    remaining[grant_id] -= Decimal(taken)
    prices = {
        str(p.grant_id): p
        for p in CreditPurchase.objects.filter(grant_id__in=list(grants)).only(
            "grant_id", "amount", "credits", "currency"
        )
    }
    credits = ZERO
    money = ZERO
    for grant_id, left in remaining.items():
        left = max(min(left, grants[grant_id].amount), ZERO)
        purchase = prices.get(grant_id)
        if purchase is not None and purchase.currency != currency:
            continue
        credits += left
        if purchase is not None and purchase.credits:
            money += Decimal(purchase.amount) * left / purchase.credits
    return credits, money


def credits_report(
    *, start: datetime, end: datetime, at: datetime | None = None, currency: str = "usd"
) -> CreditsReport:
    """Credit movements in [start, end) from the ledger, and the purchased-credit liability at `at`
    (default: `end`)."""
    at = at or end
    sources = _grant_sources()
    rows = CreditTransaction.objects.filter(created_at__gte=start, created_at__lt=end)
    by_source: dict[str, Decimal] = defaultdict(Decimal)
    purchased = granted = consumed = expired = taken_back = ZERO
    for row in rows.only("kind", "amount", "grant_id", "reverses_id"):
        if row.kind == TransactionKind.GRANT:
            source = sources.get(str(row.grant_id), CreditSource.MANUAL)
            by_source[source] += row.amount
            if source == CreditSource.PURCHASE:
                purchased += row.amount
            else:
                granted += row.amount
        elif row.kind == TransactionKind.ADJUST:
            if row.amount > 0:
                granted += row.amount
                by_source[CreditSource.MANUAL] += row.amount
            else:
                taken_back -= row.amount
        elif row.kind == TransactionKind.CONSUME:
            consumed -= row.amount
        elif row.kind == TransactionKind.EXPIRE:
            expired -= row.amount
        elif row.kind == TransactionKind.REFUND:
            if row.reverses_id is not None:
                consumed -= row.amount  # a consumption given back
            else:
                taken_back -= row.amount  # purchased credits taken back on a refund or dispute
    liability, liability_money = credit_liability_at(at=at, currency=currency)
    return CreditsReport(
        start=start,
        end=end,
        at=at,
        currency=currency,
        purchased=purchased,
        granted=granted,
        consumed=consumed,
        expired=expired,
        taken_back=taken_back,
        liability=liability.quantize(CREDITS),
        liability_amount=minor(liability_money),
        utilization=ratio(consumed, purchased + granted),
        by_source={k: v for k, v in sorted(by_source.items())},
    )


# --------------------------------------------------------------------------- usage
@dataclass(frozen=True)
class UsageReport:
    start: datetime
    end: datetime
    events: int
    credits: Decimal
    by_metric: list[dict[str, Any]]
    by_platform: list[dict[str, Any]]
    by_hour: list[dict[str, Any]]
    peak_hour: int | None
    leaders: list[dict[str, Any]]


def _hour_floor(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def usage_report(*, start: datetime, end: datetime, leaders: int = 5) -> UsageReport:
    """Usage of every organization in [start, end) from the hourly rollups (by metric, by hour of
    the day), the daily dimension rollups (by platform), and the organizations using most credits."""
    metrics = {m.pk: m for m in Metric.objects.all()}
    rollups = UsageRollup.objects.filter(hour__gte=_hour_floor(start), hour__lt=end)
    by_metric = []
    for row in rollups.values("metric_id").annotate(q=Sum("quantity"), e=Sum("events"), c=Sum("credits")):
        metric = metrics.get(row["metric_id"])
        if metric is None:
            continue
        quantity = Decimal(row["e"]) if metric.aggregation == Aggregation.COUNT else row["q"]
        by_metric.append(
            {"metric": metric.code, "quantity": quantity, "events": row["e"], "credits": row["c"]}
        )
    by_metric.sort(key=lambda r: r["metric"])
    day_start = start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    platforms = (
        UsageDimensionRollup.objects.filter(key="platform", day__gte=day_start, day__lt=end)
        .values("value")
        .annotate(q=Sum("quantity"), e=Sum("events"))
        .order_by("-e", "value")
    )
    by_platform = [{"platform": r["value"], "quantity": r["q"], "events": r["e"]} for r in platforms]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT extract(hour FROM hour AT TIME ZONE 'UTC')::int AS h, sum(quantity), sum(events) "  # noqa: S608
            f"FROM {UsageRollup._meta.db_table} WHERE hour >= %s AND hour < %s GROUP BY h ORDER BY h",
            [_hour_floor(start), end],
        )
        hours = {h: (q, int(e)) for h, q, e in cursor.fetchall()}
    by_hour = [
        {"hour": h, "quantity": hours.get(h, (ZERO, 0))[0], "events": hours.get(h, (ZERO, 0))[1]}
        for h in range(24)
    ]
    peak = max(by_hour, key=lambda r: (r["events"], -r["hour"])) if hours else None
    names = dict(Organization.objects.values_list("pk", "name"))
    top = (
        rollups.values("organization_id")
        .annotate(c=Sum("credits"), e=Sum("events"))
        .order_by("-c", "-e", "organization_id")[:leaders]
    )
    leader_rows = [
        {
            "organization_id": r["organization_id"],
            "name": names.get(r["organization_id"], ""),
            "credits": r["c"],
            "events": r["e"],
        }
        for r in top
    ]
    return UsageReport(
        start=start,
        end=end,
        events=sum(r["events"] for r in by_metric),
        credits=sum((r["credits"] for r in by_metric), ZERO),
        by_metric=by_metric,
        by_platform=by_platform,
        by_hour=by_hour,
        peak_hour=peak["hour"] if peak else None,
        leaders=leader_rows,
    )


# --------------------------------------------------------------------------- Stripe balance
def payout_list(*, start: datetime, end: datetime, currency: str | None = None) -> list[dict]:
    """Payouts of the mirror created in [start, end), newest first."""
    out = []
    for payout in _in_range(Payout.objects.only("id", "stripe_data", "created"), start, end).order_by(
        "-created", "-djstripe_id"
    ):
        data = payout.stripe_data or {}
        if currency and _currency(payout) != currency:
            continue
        out.append(
            {
                "id": payout.id,
                "amount": int(data.get("amount") or 0),
                "currency": _currency(payout),
                "status": data.get("status") or "",
                "created": payout.created,
                "arrival_date": stripe_data.timestamp(data.get("arrival_date")),
                "balance_transaction": stripe_data.object_id(data.get("balance_transaction")),
            }
        )
    return out


def balance_transaction_list(
    *, start: datetime, end: datetime, type: str | None = None, currency: str | None = None
):
    """Balance transactions of the mirror created in [start, end), newest first (a queryset, for
    paging)."""
    qs = _in_range(BalanceTransaction.objects.all(), start, end).order_by("-created", "-djstripe_id")
    if type:
        qs = qs.filter(stripe_data__type=type)
    if currency:
        qs = qs.filter(stripe_data__currency=currency)
    return qs


def balance_transaction_row(txn: BalanceTransaction, now: datetime | None = None) -> dict:
    """One balance transaction. Its status is worked out from `available_on` (Stripe sends no
    event when a transaction becomes available, so the mirrored status stays `pending`)."""
    data = txn.stripe_data or {}
    available_on = data.get("available_on")
    status = data.get("status") or ""
    if status == "pending" and available_on and available_on <= ts(now or timezone.now()):
        status = "available"
    return {
        "id": txn.id,
        "type": data.get("type") or "",
        "reporting_category": data.get("reporting_category") or "",
        "amount": int(data.get("amount") or 0),
        "fee": int(data.get("fee") or 0),
        "net": int(data.get("net") or 0),
        "currency": (data.get("currency") or "").lower(),
        "status": status,
        "created": txn.created,
        "available_on": stripe_data.timestamp(data.get("available_on")),
        "source": stripe_data.object_id(data.get("source")),
    }


def balance_totals(*, start: datetime, end: datetime, currency: str) -> dict[str, int]:
    """Sums of the balance transactions in [start, end) by reporting category, and payouts."""
    totals: dict[str, int] = defaultdict(int)
    for txn in balance_transaction_list(start=start, end=end, currency=currency).only("stripe_data"):
        row = balance_transaction_row(txn)
        totals[row["reporting_category"] or row["type"]] += row["net"]
        totals["fees"] += row["fee"]
    return dict(sorted(totals.items()))


# --------------------------------------------------------------------------- dashboard lists
def failed_payments_needing_attention() -> list[dict]:
    """Stripe invoices still open whose subscription is past due or unpaid (a payment failed and
    Stripe is retrying, or gave up): money the business is owed and may lose."""
    at_risk = [
        s.id
        for s in Subscription.objects.only("id", "stripe_data")
        if (s.stripe_data or {}).get("status") in ("past_due", "unpaid")
    ]
    rows = Invoice.objects.filter(
        kind=InvoiceKind.STRIPE,
        status=InvoiceStatus.OPEN,
        amount_remaining__gt=0,
        stripe_subscription_id__in=at_risk,
    ).select_related("organization")
    return list(rows.order_by("-created_at"))


def open_disputes() -> list[Dispute]:
    return [
        d for d in Dispute.objects.order_by("-created") if (d.stripe_data or {}).get("status") in OPEN_DISPUTE
    ]


def failed_webhook_deliveries(*, since: datetime | None = None):
    from djstripe.models import WebhookEventTrigger

    qs = WebhookEventTrigger.objects.filter(Q(valid=False) | Q(processed=False) | ~Q(exception=""))
    if since is not None:
        qs = qs.filter(created__gte=since)
    return qs.order_by("-created")


# --------------------------------------------------------------------------- the staff dashboard
@dataclass(frozen=True)
class Dashboard:
    now: datetime
    month_start: datetime
    currency: str
    revenue: RevenueReport
    mrr_series: list[tuple[datetime, int]]
    subscriptions: list[SubscriptionCount]
    failed_payments: list
    open_disputes: list
    credits: CreditsReport
    usage: UsageReport
    failed_webhooks: int


def staff_dashboard_get(*, now: datetime | None = None, currency: str = "usd") -> Dashboard:
    """Everything on the staff dashboard, for the calendar month (UTC) holding `now`."""
    now = now or timezone.now()
    month_start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = now + timedelta(microseconds=1)
    return Dashboard(
        now=now,
        month_start=month_start,
        currency=currency,
        revenue=revenue_report(start=month_start, end=end, currency=currency),
        mrr_series=mrr_series(end=end, currency=currency),
        subscriptions=subscriptions_by_plan_and_status(),
        failed_payments=failed_payments_needing_attention(),
        open_disputes=open_disputes(),
        credits=credits_report(start=month_start, end=end, currency=currency),
        usage=usage_report(start=month_start, end=end),
        failed_webhooks=failed_webhook_deliveries().count(),
    )
