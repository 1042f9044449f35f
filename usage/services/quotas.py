"""Quota checks against the plan's limits, on the Redis counters (`usage.counters`).

Every method runs under the organization's account lock (`credits.services.credit_account_lock`),
inside the caller's transaction. `QuotaBook` remembers the counters it changed so the caller
can `abort()` them (delete: the next caller rebuilds) when the transaction fails, and the
soft-limit notices to queue (`finish()`): one e-mail per metric and period at 80 % and one at
100 %, through the notice outbox (keyed, so never twice).
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from billing.models import BillingNotice, Organization
from billing.services import billing_notice_queue
from credits.formatting import credits_str

from .. import counters
from ..exceptions import QuotaExceeded, percentage, upgrade_url
from ..models import Aggregation
from ..selectors import MetricInfo, QuotaContext, unique_value_seen, usage_current

NOTICE_THRESHOLDS = ((100, BillingNotice.Kind.USAGE_LIMIT_REACHED), (80, BillingNotice.Kind.USAGE_WARNING))


def counter_delta(metric: MetricInfo, quantity: Decimal, events: int = 1) -> Decimal:
    """What one change adds to the metric's counter: events for `count`, the quantity otherwise."""
    return Decimal(events) if metric.aggregation == Aggregation.COUNT else quantity


def _mode(metric: MetricInfo) -> str:
    return "max" if metric.aggregation == Aggregation.MAX else "sum"


def _combine(metric: MetricInfo, current: Decimal, delta: Decimal) -> Decimal:
    return max(current, delta) if metric.aggregation == Aggregation.MAX else current + delta


class QuotaBook:
    """The quota changes of one operation under the account lock."""

    def __init__(self, ctx: QuotaContext):
        self.ctx = ctx
        self.touched: list[str] = []
        self.applied: list[tuple[str, Decimal]] = []  # (counter, delta) of additive changes
        self.crossings: dict[str, tuple[MetricInfo, Decimal, Decimal]] = {}

    def _key(self, metric: MetricInfo) -> str:
        return counters.key(self.ctx.organization_id, metric.id, self.ctx.hour_from)

    def _db_current(self, metric: MetricInfo) -> Decimal:
        return usage_current(
            organization_id=self.ctx.organization_id,
            metric=metric,
            hour_from=self.ctx.hour_from,
            hour_to=self.ctx.hour_to,
        )

    def _refuse(self, metric: MetricInfo, current: Decimal, limit: Decimal, requested: Decimal):
        return QuotaExceeded(
            organization_id=self.ctx.organization_id,
            metric=metric.code,
            current=current,
            limit=limit,
            requested=requested,
        )

    def enforce(self, metric: MetricInfo, quantity: Decimal, *, unique_value: str = "") -> Decimal | None:
        """Count `quantity` more of the metric (not yet in the database), or raise
        `QuotaExceeded` and count nothing. Answers the usage after it (None: unlimited)."""
        limit = self.ctx.limit(metric.code)
        if limit is None:
            return None
        hard = None if metric.code in self.ctx.overage else limit
        if metric.aggregation == Aggregation.UNIQUE:
            current = self._db_current(metric)
            seen = unique_value_seen(
                organization_id=self.ctx.organization_id,
                metric=metric,
                hour_from=self.ctx.hour_from,
                hour_to=self.ctx.hour_to,
                value=unique_value,
            )
            after = current if seen else current + 1
            if hard is not None and after > hard:
                raise self._refuse(metric, current, limit, Decimal(1))
            self._crossed(metric, limit, after)
            return after
        delta = counter_delta(metric, quantity)
        key = self._key(metric)
        try:
            out = counters.check_add(key, delta, limit=hard, mode=_mode(metric))
            if out.status == "missing":
                counters.put(key, self._db_current(metric))
                out = counters.check_add(key, delta, limit=hard, mode=_mode(metric))
            if out.status == "missing":
                raise counters.CountersUnavailable()
        except counters.CountersUnavailable:
            current = self._db_current(metric)
            after = _combine(metric, current, delta)
            if hard is not None and after > hard:
                raise self._refuse(metric, current, limit, quantity) from None
            counters.missed_write()
            self._crossed(metric, limit, after)
            return after
        if out.status == "refused":
            raise self._refuse(metric, out.value, limit, quantity)
        self.touched.append(key)
        if metric.aggregation != Aggregation.MAX:
            self.applied.append((key, delta))
        self._crossed(metric, limit, out.value)
        return out.value

    def record(self, metric: MetricInfo, delta: Decimal) -> None:
        """Count usage already written in this transaction (never refused: it happened)."""
        limit = self.ctx.limit(metric.code)
        if limit is None:
            return
        if metric.aggregation == Aggregation.UNIQUE:
            self._crossed(metric, limit, self._db_current(metric))
            return
        key = self._key(metric)
        try:
            out = counters.check_add(key, delta, limit=None, mode=_mode(metric), force=True)
            if out.status == "missing":
                after = self._db_current(metric)  # includes this transaction's rows
                counters.put(key, after)
            else:
                after = out.value
            self.touched.append(key)
        except counters.CountersUnavailable:
            counters.missed_write()
            after = self._db_current(metric)
        self._crossed(metric, limit, after)

    def record_many(self, changes: list[tuple[MetricInfo, Decimal]]) -> None:
        """`record` of several metrics (one batch of events), the counters moved in one Redis
        call."""
        limited = [(m, d) for m, d in changes if self.ctx.limit(m.code) is not None]
        for metric, _delta in limited:
            if metric.aggregation == Aggregation.UNIQUE:
                self.record(metric, _delta)
        counted = [(m, d) for m, d in limited if m.aggregation != Aggregation.UNIQUE]
        if not counted:
            return
        keys = [self._key(m) for m, _d in counted]
        try:
            values = counters.add_many([(k, d, _mode(m)) for k, (m, d) in zip(keys, counted, strict=True)])
        except counters.CountersUnavailable:
            counters.missed_write()
            for metric, _delta in counted:
                self._crossed(metric, self.ctx.limit(metric.code), self._db_current(metric))
            return
        for key, (metric, _delta), after in zip(keys, counted, values, strict=True):
            if after is None:
                after = self._db_current(metric)  # includes this transaction's rows
                try:
                    counters.put(key, after)
                except counters.CountersUnavailable:
                    counters.missed_write()
                    self._crossed(metric, self.ctx.limit(metric.code), after)
                    continue
            self.touched.append(key)
            self._crossed(metric, self.ctx.limit(metric.code), after)

    def release(self, metric: MetricInfo, delta: Decimal) -> None:
        """Give back `delta` of a sum or count metric (a reservation released or settled lower)."""
        if self.ctx.limit(metric.code) is None or metric.aggregation not in (
            Aggregation.SUM,
            Aggregation.COUNT,
        ):
            return
        key = self._key(metric)
        try:
            out = counters.check_add(key, -delta, limit=None, force=True)
            if out.status == "applied":
                self.touched.append(key)
        except counters.CountersUnavailable:
            counters.missed_write()

    def _crossed(self, metric: MetricInfo, limit: Decimal, after: Decimal) -> None:
        if limit > 0 and after * 100 >= limit * 80:
            self.crossings[metric.code] = (metric, limit, after)

    def abort(self, *, locked: bool = False) -> None:
        """The transaction failed: undo the counter changes. Still holding the account lock
        (`locked`), the increments of `enforce` are taken back; otherwise, or for any other
        change, the counters are deleted (the next caller rebuilds them)."""
        if not self.touched:
            return
        forget = list(self.touched)
        if locked and len(self.applied) == len(self.touched):
            try:
                for key, delta in self.applied:
                    counters.check_add(key, -delta, limit=None, force=True)
                forget = []
            except counters.CountersUnavailable:
                counters.missed_write()
        if forget:
            counters.forget(forget)
        self.touched, self.applied = [], []

    def finish(self, organization: Organization) -> None:
        """Queue the soft-limit notices crossed (inside the transaction: the outbox row commits
        with the usage)."""
        for metric, limit, after in self.crossings.values():
            pct = percentage(after, limit)
            for threshold, kind in NOTICE_THRESHOLDS:
                if pct < threshold:
                    continue
                period = int(self.ctx.period_start.timestamp())
                key = f"usage:{organization.pk}:{metric.code}:{period}:{threshold}"
                if not counters.seen_once(key):
                    billing_notice_queue(
                        organization=organization,
                        kind=kind,
                        key=key,
                        context={
                            "metric": metric.code,
                            "current": credits_str(after),
                            "limit": credits_str(limit),
                            "percentage": pct,
                            "period_end": self.ctx.period_end.strftime("%Y-%m-%d %H:%M UTC"),
                            "upgrade_url": upgrade_url(organization.pk),
                            "overage": metric.code in self.ctx.overage,
                        },
                    )
                    transaction.on_commit(lambda key=key: counters.mark_once(key))
                break


def quota_check(*, organization: Organization, metric: str, quantity=1) -> Decimal | None:
    """Whether `quantity` more of `metric` is within the plan's limit now, without counting it:
    raises `QuotaExceeded` when not. Reads the counter, or the rollups when it is missing or
    Redis is away (no rebuild: only a caller holding the account lock writes counters)."""
    from django.utils import timezone

    from ..exceptions import UnknownMetric
    from ..selectors import metric_get, quota_context

    info = metric_get(code=metric)
    if info is None:
        raise UnknownMetric(metric)
    ctx = quota_context(organization=organization, now=timezone.now())
    limit = ctx.limit(info.code)
    if limit is None or info.code in ctx.overage:
        return None
    quantity = Decimal(quantity)
    book = QuotaBook(ctx)
    current = None
    if info.aggregation != Aggregation.UNIQUE:
        try:
            (current,) = counters.get_many([book._key(info)])
        except counters.CountersUnavailable:
            current = None
    if current is None:
        current = book._db_current(info)
    after = _combine(info, current, counter_delta(info, quantity))
    if after > limit:
        raise book._refuse(info, current, limit, quantity)
    return after
