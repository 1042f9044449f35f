"""Reads of the credit ledger, and the invariant checks behind `manage.py reconcile`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, F, Max, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from billing.models import Organization
from config.exceptions import ValidationFailed

from . import hot_path
from .formatting import credits_str
from .models import (
    IN_FLIGHT_STATUSES,
    ZERO,
    AutoRefill,
    CreditAccount,
    CreditGrant,
    CreditHold,
    CreditPack,
    CreditPrice,
    CreditPurchase,
    CreditSource,
    CreditTransaction,
    HoldStatus,
    PurchaseStatus,
    ReconcileRun,
    TransactionKind,
)

# The API's names for the grant sources in `by_source`.
SOURCE_KEYS = {
    CreditSource.PURCHASE: "purchased",
    CreditSource.SUBSCRIPTION: "subscription",
    CreditSource.PROMO: "promo",
    CreditSource.MANUAL: "manual",
    CreditSource.REFUND: "refund",
}


def credit_account_get(*, organization: Organization) -> CreditAccount | None:
    return CreditAccount.objects.filter(organization=organization).select_related("auto_refill__pack").first()


def credit_balance_by_source(*, organization: Organization) -> dict[str, Decimal]:
    """What is left to consume, per source (`purchased`, `subscription`, `promo`, `manual`, `refund`)."""
    totals = {key: ZERO for key in SOURCE_KEYS.values()}
    rows = (
        CreditGrant.objects.filter(organization=organization, remaining__gt=0)
        .values("source")
        .annotate(total=Sum("remaining"))
    )
    for row in rows:
        totals[SOURCE_KEYS[row["source"]]] = row["total"]
    return totals


@dataclass(frozen=True)
class Expiring:
    amount: Decimal
    expires_at: datetime


def credit_grants_expiring(*, organization: Organization, within: timedelta | None = None) -> list[Expiring]:
    """Credits that will expire, grouped by expiry time, soonest first."""
    now = timezone.now()
    qs = CreditGrant.objects.filter(organization=organization, remaining__gt=0, expires_at__isnull=False)
    qs = qs.filter(expires_at__gt=now)
    if within is not None:
        qs = qs.filter(expires_at__lte=now + within)
    rows = qs.values("expires_at").annotate(total=Sum("remaining")).order_by("expires_at")
    return [Expiring(amount=row["total"], expires_at=row["expires_at"]) for row in rows]


@dataclass(frozen=True)
class CreditSummary:
    balance: Decimal
    held: Decimal  # active holds (reservations)
    available: Decimal  # balance - held: what can be spent (the overdraft aside)
    by_source: dict[str, Decimal]
    expiring: list[Expiring]
    auto_refill: AutoRefill | None
    low_balance_threshold: Decimal | None
    low_balance: bool
    overdraft_limit: Decimal


def credit_summary_get(*, organization: Organization) -> CreditSummary:
    """The balance and what it is made of. Reads by the organization's id only: the account and
    its grants' totals per source and expiry in one prepared statement (`credits.hot_path`), the
    auto-refill with its pack only when the account has one; fresh on every call: never a cached
    balance."""
    row = hot_path.account_summary(organization.pk)
    if row is None:  # no account yet, so no grants either
        return CreditSummary(
            balance=ZERO, held=ZERO, available=ZERO, by_source={key: ZERO for key in SOURCE_KEYS.values()},
            expiring=[],
            auto_refill=None, low_balance_threshold=None, low_balance=False, overdraft_limit=ZERO,
        )  # fmt: skip
    balance, held, threshold, overdraft_limit, has_refill, sources, expiries, totals = row
    now = timezone.now()
    by_source = {key: ZERO for key in SOURCE_KEYS.values()}
    by_expiry: dict[datetime, Decimal] = {}
    for source, expires_at, total in zip(sources or (), expiries or (), totals or (), strict=True):
        by_source[SOURCE_KEYS[source]] += total
        if expires_at is not None and expires_at > now:
            by_expiry[expires_at] = by_expiry.get(expires_at, ZERO) + total
    refill = (
        AutoRefill.objects.select_related("pack").filter(account__organization_id=organization.pk).first()
        if has_refill
        else None
    )
    return CreditSummary(
        balance=balance,
        held=held,
        available=balance - held,
        by_source=by_source,
        expiring=[Expiring(amount=by_expiry[at], expires_at=at) for at in sorted(by_expiry)],
        auto_refill=refill,
        low_balance_threshold=threshold,
        # As the low-balance alert and auto-refill decide it: on the available balance.
        low_balance=threshold is not None and balance - held < threshold,
        overdraft_limit=overdraft_limit,
    )


def credit_transaction_list(
    *,
    organization: Organization,
    kind: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> QuerySet[CreditTransaction]:
    """The organization's ledger, newest first; `start` inclusive, `end` exclusive."""
    qs = CreditTransaction.objects.filter(organization=organization)
    if kind:
        qs = qs.filter(kind=kind)
    if start:
        qs = qs.filter(created_at__gte=start)
    if end:
        qs = qs.filter(created_at__lt=end)
    return qs.order_by("-created_at", "-sequence")


@dataclass(frozen=True)
class DailyCredits:
    day: date
    consumed: Decimal
    granted: Decimal


def credit_daily_totals(*, organization: Organization, days: int = 30) -> list[DailyCredits]:
    """Credits consumed and granted per day (in the current time zone) over the last `days` days,
    today included, every day listed (zeros too): what the credits page charts."""
    zone = timezone.get_current_timezone()
    first = timezone.localdate() - timedelta(days=days - 1)
    rows = (
        CreditTransaction.objects.filter(
            organization=organization, created_at__gte=datetime.combine(first, time.min, tzinfo=zone)
        )
        .annotate(day=TruncDate("created_at", tzinfo=zone))
        .values("day")
        .annotate(
            consumed=Sum("amount", filter=Q(kind=TransactionKind.CONSUME)),
            granted=Sum("amount", filter=Q(kind=TransactionKind.GRANT)),
        )
    )
    by_day = {row["day"]: row for row in rows}
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = by_day.get(day, {})
        out.append(
            DailyCredits(day=day, consumed=-(row.get("consumed") or ZERO), granted=row.get("granted") or ZERO)
        )
    return out


def credit_pack_list() -> QuerySet[CreditPack]:
    return CreditPack.objects.filter(active=True).order_by("sort_order", "credits")


def credit_pack_get(*, code: str) -> CreditPack | None:
    return CreditPack.objects.filter(code=code, active=True).first()


def credit_price_list() -> QuerySet[CreditPrice]:
    return CreditPrice.objects.filter(active=True).order_by("category", "event_name")


def auto_refill_get(*, organization: Organization) -> AutoRefill | None:
    return AutoRefill.objects.filter(account__organization=organization).select_related("pack").first()


def credit_amount_price(*, credits: Decimal) -> tuple[int, str]:
    """The price (minor units, currency) of a custom amount of credits: the unit price of the
    smallest active pack, rounded up to the next minor unit."""
    base = CreditPack.objects.filter(active=True).order_by("credits").first()
    if base is None:
        raise ValidationFailed(fields={"amount": ["No credit pack is on sale to price a custom amount."]})
    return math.ceil(credits * base.amount / base.credits), base.currency


# --------------------------------------------------------------------------- invariants
@dataclass
class Drift:
    check: str
    detail: str
    organization_id: str | None = None

    def __str__(self) -> str:
        where = f"organization {self.organization_id}: " if self.organization_id else ""
        return f"[{self.check}] {where}{self.detail}"


@dataclass
class LedgerReport:
    accounts: int = 0
    transactions: int = 0
    drifts: list[Drift] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.drifts


TRIGGER_NAME = "credits_transaction_append_only"


def ledger_trigger_installed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgtype FROM pg_trigger WHERE tgname = %s AND tgrelid = %s::regclass AND tgenabled <> 'D'",
            [TRIGGER_NAME, CreditTransaction._meta.db_table],
        )
        row = cursor.fetchone()
    # tgtype bits: 1 row-level, 2 before, 8 delete, 16 update.
    return row is not None and row[0] & 1 and row[0] & 2 and row[0] & 8 and row[0] & 16


PURCHASE_STUCK_AFTER = timedelta(minutes=30)


def credit_purchases_stuck_list(
    *, organization_ids: list | None = None, older_than: timedelta = PURCHASE_STUCK_AFTER
) -> list[str]:
    """Purchases still `pending` or `processing` long after they were last touched: a charge that
    never reached Stripe, or whose answer was lost. One line each, for `manage.py reconcile`."""
    cutoff = timezone.now() - older_than
    stuck = CreditPurchase.objects.filter(status__in=IN_FLIGHT_STATUSES, updated_at__lt=cutoff)
    if organization_ids is not None:
        stuck = stuck.filter(organization_id__in=organization_ids)
    return [
        f"[stuck_purchase] organization {p.organization_id}: purchase {p.pk} ({p.kind}) has been "
        f"{p.status} since {p.updated_at:%Y-%m-%d %H:%M:%S}Z"
        f"{'' if p.payment_intent_id else ' with no PaymentIntent'}"
        for p in stuck.order_by("updated_at")[:1000]
    ]


def ledger_drift_list(*, organization_ids: list | None = None) -> LedgerReport:
    """Every invariant of the ledger, checked in SQL aggregates (a handful of queries for all
    accounts). An empty `drifts` list means the ledger is consistent."""
    report = LedgerReport()
    accounts = CreditAccount.objects.all()
    txns = CreditTransaction.objects.all()
    grants = CreditGrant.objects.all()
    if organization_ids is not None:
        accounts = accounts.filter(organization_id__in=organization_ids)
        txns = txns.filter(organization_id__in=organization_ids)
        grants = grants.filter(organization_id__in=organization_ids)

    if not ledger_trigger_installed():
        report.drifts.append(
            Drift("append_only", "the trigger refusing UPDATE/DELETE of the ledger is missing")
        )

    ledger = {
        row["account_id"]: row
        for row in txns.values("account_id").annotate(
            total=Sum("amount"), rows=Count("id"), last=Max("sequence")
        )
    }
    last_balance = _last_balances(txns)
    remaining = dict(grants.values("account_id").annotate(t=Sum("remaining")).values_list("account_id", "t"))

    holds = CreditHold.objects.filter(status=HoldStatus.HELD)
    if organization_ids is not None:
        holds = holds.filter(organization_id__in=organization_ids)
    held = dict(holds.values("account_id").annotate(t=Sum("amount")).values_list("account_id", "t"))

    for account in accounts.values("id", "organization_id", "balance", "overdraft_limit", "sequence", "held"):
        report.accounts += 1
        org = str(account["organization_id"])
        balance = account["balance"]
        row = ledger.get(account["id"], {"total": ZERO, "rows": 0, "last": 0})
        report.transactions += row["rows"]
        total = row["total"] or ZERO
        if balance != total:
            report.drifts.append(
                Drift(
                    "balance_is_ledger_sum",
                    f"balance {credits_str(balance)} != sum of ledger {credits_str(total)}",
                    org,
                )
            )
        if row["rows"] != account["sequence"] or (row["last"] or 0) != account["sequence"]:
            report.drifts.append(
                Drift(
                    "ledger_sequence",
                    f"{row['rows']} rows, last sequence {row['last']}, account says {account['sequence']}",
                    org,
                )
            )
        if row["rows"] and last_balance.get(account["id"]) != balance:
            report.drifts.append(
                Drift(
                    "balance_after",
                    f"last row's balance_after {credits_str(last_balance.get(account['id']))} "
                    f"!= balance {credits_str(balance)}",
                    org,
                )
            )
        live = remaining.get(account["id"]) or ZERO
        if live != max(balance, ZERO):
            debt = max(-balance, ZERO)
            report.drifts.append(
                Drift(
                    "balance_is_grants_minus_overdraft",
                    f"grants hold {credits_str(live)}, balance {credits_str(balance)} "
                    f"(overdraft in use {credits_str(debt)})",
                    org,
                )
            )
        active = held.get(account["id"]) or ZERO
        if account["held"] != active:
            report.drifts.append(
                Drift(
                    "held_is_active_holds",
                    f"account says {credits_str(account['held'])} held, active holds sum to "
                    f"{credits_str(active)}",
                    org,
                )
            )
        if balance < -account["overdraft_limit"]:
            report.drifts.append(
                Drift(
                    "overdraft_limit",
                    f"balance {credits_str(balance)} is below the overdraft limit "
                    f"{credits_str(account['overdraft_limit'])}",
                    org,
                )
            )

    for grant in grants.filter(Q(remaining__lt=0) | Q(remaining__gt=F("amount"))).values(
        "id", "organization_id", "remaining", "amount"
    ):
        report.drifts.append(
            Drift(
                "grant_remaining_within_amount",
                f"grant {grant['id']} has {credits_str(grant['remaining'])} "
                f"of {credits_str(grant['amount'])}",
                str(grant["organization_id"]),
            )
        )

    report.drifts.extend(_running_balance_drifts(txns))

    for dup in (
        txns.exclude(idempotency_key=None)
        .values("organization_id", "idempotency_key")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    ):
        report.drifts.append(
            Drift(
                "one_key_one_effect",
                f"idempotency key {dup['idempotency_key']!r} used {dup['n']} times",
                str(dup["organization_id"]),
            )
        )

    purchases = CreditPurchase.objects.all()
    if organization_ids is not None:
        purchases = purchases.filter(organization_id__in=organization_ids)
    for purchase in purchases.filter(status=PurchaseStatus.SUCCEEDED, grant__isnull=True).values(
        "id", "organization_id"
    ):
        report.drifts.append(
            Drift(
                "purchase_granted",
                f"purchase {purchase['id']} succeeded without a grant",
                str(purchase["organization_id"]),
            )
        )
    for hold in holds.filter(transaction__isnull=False).values("id", "organization_id"):
        report.drifts.append(
            Drift(
                "hold_state", f"hold {hold['id']} is held but has a consumption", str(hold["organization_id"])
            )
        )
    settled = CreditHold.objects.filter(status=HoldStatus.SETTLED, consumed__gt=0, transaction__isnull=True)
    if organization_ids is not None:
        settled = settled.filter(organization_id__in=organization_ids)
    for hold in settled.values("id", "organization_id"):
        report.drifts.append(
            Drift(
                "hold_state",
                f"hold {hold['id']} was settled without its consumption in the ledger",
                str(hold["organization_id"]),
            )
        )
    for dup in (
        grants.exclude(reference=None)
        .values("account_id", "reference")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
    ):
        report.drifts.append(
            Drift("one_grant_per_reference", f"reference {dup['reference']!r} granted {dup['n']} times")
        )
    return report


def _last_balances(txns: QuerySet[CreditTransaction]) -> dict:
    rows = (
        txns.order_by("account_id", "-sequence")
        .distinct("account_id")
        .values_list("account_id", "balance_after")
    )
    return dict(rows)


def _running_balance_drifts(txns: QuerySet[CreditTransaction]) -> list[Drift]:
    """Each row's balance_after is the previous row's plus its amount (a window sum in SQL)."""
    sql_filter, params = "", []
    ids = list(txns.values_list("account_id", flat=True).distinct()) if txns.query.where else None
    if ids is not None:
        if not ids:
            return []
        sql_filter, params = "WHERE account_id = ANY(%s)", [ids]
    table = CreditTransaction._meta.db_table
    query = f"""
        SELECT organization_id, id, sequence, balance_after, running FROM (
            SELECT organization_id, id, sequence, balance_after,
                   SUM(amount) OVER (PARTITION BY account_id ORDER BY sequence) AS running
            FROM {table} {sql_filter}
        ) t WHERE balance_after <> running LIMIT 50
    """  # noqa: S608 - the table name is ours, the filter values are parameters
    drifts = []
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for org, txn_id, seq, after, running in cursor.fetchall():
            drifts.append(
                Drift(
                    "running_balance",
                    f"row {txn_id} (#{seq}) says balance_after {credits_str(after)}, "
                    f"the ledger sums to {credits_str(running)}",
                    str(org),
                )
            )
    return drifts


def latest_reconcile_run() -> ReconcileRun | None:
    """The last reconcile that finished (ok, drift or failed), for the staff dashboard; None
    before the first. A run still going is left out: its figures are not known yet."""
    return (
        ReconcileRun.objects.exclude(status=ReconcileRun.Status.RUNNING)
        .order_by("-started_at", "-id")
        .first()
    )


def reconcile_run_list(*, limit: int = 30) -> QuerySet[ReconcileRun]:
    return ReconcileRun.objects.order_by("-started_at", "-id")[:limit]


def credit_hold_list(*, organization: Organization, active_only: bool = True) -> QuerySet[CreditHold]:
    holds = CreditHold.objects.filter(organization=organization)
    if active_only:
        holds = holds.filter(status=HoldStatus.HELD)
    return holds.order_by("-created_at", "pk")


def credit_purchase_list(*, organization: Organization, limit: int = 20) -> QuerySet[CreditPurchase]:
    return CreditPurchase.objects.filter(organization=organization).order_by("-created_at")[:limit]
