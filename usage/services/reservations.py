"""Reservations for long work: hold the credits (a `CreditHold`) and the quota an estimate needs,
then settle with the actual quantity (the event is recorded, the actual credits consumed, the
rest released), release, or let it expire (beat).

Everything runs under the organization's account lock, in one transaction with the credit
hold's own change, so the quota counters and `CreditAccount.held` move together. A reservation
holds quota only for `sum` and `count` metrics (a `max` or `unique` metric's usage is not a
quantity that can be set aside).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.models import Organization
from config.exceptions import ValidationFailed
from credits.exceptions import CreditHoldClosed, InsufficientCredits
from credits.formatting import quantize
from credits.models import CreditHold, HoldStatus
from credits.services import (
    credit_account_lock,
    credit_hold_create,
    credit_hold_release,
    credit_hold_settle,
    credit_holds_expire,
)

from ..exceptions import ReservationNotFound, UnknownMetric
from ..models import Aggregation, UsageEvent
from ..selectors import MetricInfo, metric_catalog, quota_context
from ..validation import EventInput, EventInvalid, parse_quantity
from .quotas import QuotaBook, counter_delta
from .recording import Prepared, insert_events

DEFAULT_EXPIRY = timedelta(hours=1)
HOLDS_QUOTA = (Aggregation.SUM, Aggregation.COUNT)  # what a reservation can set aside
MAX_EXPIRY = timedelta(days=7)


@dataclass(frozen=True)
class ReservationResult:
    hold: CreditHold
    balance: Decimal
    available: Decimal
    event_id: uuid.UUID | None = None
    released: Decimal = Decimal(0)
    replayed: bool = False


def _quantity(value, name: str, *, allow_zero: bool = False) -> Decimal:
    try:
        return parse_quantity(value, name=name, allow_zero=allow_zero)
    except EventInvalid as exc:
        raise ValidationFailed(fields={name: [exc.message]}) from None


def _held_quota(metric: MetricInfo, hold: CreditHold) -> Decimal:
    return counter_delta(metric, hold.quantity or Decimal(0))


def event_key(hold_id) -> str:
    return f"reservation:{hold_id}"


def usage_reservation_create(
    *,
    organization: Organization,
    metric: str,
    estimated_quantity,
    idempotency_key: str,
    expires_in: timedelta | None = None,
    actor: str = "",
    metadata: dict | None = None,
) -> ReservationResult:
    """Hold the credits and the quota `estimated_quantity` needs. Refused with
    `QuotaExceeded` or `InsufficientCredits` (nothing held)."""
    info = metric_catalog().get(metric) if isinstance(metric, str) else None
    if info is None:
        raise UnknownMetric(str(metric)[:64])
    quantity = _quantity(estimated_quantity, "estimated_quantity")
    expires_in = expires_in or DEFAULT_EXPIRY
    if not timedelta(seconds=60) <= expires_in <= MAX_EXPIRY:
        raise ValidationFailed(fields={"expires_in": ["Between 60 seconds and 7 days."]})
    credits = quantize((info.credits_per_unit or 0) * quantity)
    now = timezone.now()
    book = QuotaBook(quota_context(organization=organization, now=now))
    try:
        with transaction.atomic():
            credit_account_lock(organization=organization)
            replay = CreditHold.objects.filter(
                organization=organization, idempotency_key=idempotency_key
            ).exists()
            if not replay and info.aggregation in HOLDS_QUOTA:
                book.enforce(info, quantity)
            try:
                result = credit_hold_create(
                    organization=organization,
                    amount=credits,
                    idempotency_key=idempotency_key,
                    expires_in=expires_in,
                    event_name=info.code,
                    quantity=quantity,
                    metadata=metadata,
                    actor=actor,
                )
            except InsufficientCredits:
                book.abort(locked=True)
                raise
            book.finish(organization)
    except BaseException:
        book.abort()
        raise
    return ReservationResult(result.hold, result.balance, result.available, replayed=result.replayed)


def _hold(organization: Organization, reservation_id) -> CreditHold:
    hold = CreditHold.objects.filter(organization=organization, pk=reservation_id).first()
    if hold is None:
        raise ReservationNotFound()
    return hold


def usage_reservation_settle(
    *, organization: Organization, reservation_id, actual_quantity, actor: str = ""
) -> ReservationResult:
    """Record the event with the actual quantity, consume its credits and release the rest.
    Above the estimate the extra credits (and quota) are taken when available; otherwise 402 and
    the reservation stays held. A second settle with the same quantity answers the first."""
    actual = _quantity(actual_quantity, "actual_quantity", allow_zero=True)
    hold = _hold(organization, reservation_id)
    info = metric_catalog(include_inactive=True).get(hold.event_name)
    if info is None:  # pragma: no cover - metrics are never deleted while holds name them
        raise UnknownMetric(hold.event_name)
    credits = quantize((info.credits_per_unit or 0) * actual)
    now = timezone.now()
    ctx = quota_context(organization=organization, now=now)
    book = QuotaBook(ctx)
    try:
        with transaction.atomic():
            credit_account_lock(organization=organization)
            hold = _hold(organization, reservation_id)
            if hold.status == HoldStatus.HELD and hold.expires_at <= now:
                raise CreditHoldClosed(HoldStatus.EXPIRED)
            fresh = hold.status == HoldStatus.HELD
            if fresh:
                if info.aggregation in HOLDS_QUOTA:
                    used = counter_delta(info, actual) if actual > 0 else Decimal(0)  # no event at 0
                    change = used - _held_quota(info, hold)
                    if change > 0:
                        book.enforce(info, change)
                    elif change < 0:
                        book.release(info, -change)
                elif actual > 0:  # max and unique metrics: checked like a track of the actual
                    book.enforce(info, actual, unique_value=str(hold.pk))
            result = credit_hold_settle(
                organization=organization, hold_id=hold.pk, amount=credits, quantity=actual, actor=actor
            )
            event_id = None
            if fresh and actual > 0:
                row = Prepared(
                    0,
                    uuid.uuid4(),
                    EventInput(
                        metric=info.code,
                        quantity=actual,
                        idempotency_key=event_key(hold.pk),
                        occurred_at=now,
                        resource_type="reservation",
                        resource_id=str(hold.pk),
                    ),
                    info,
                    credits,
                    "",
                )
                row = Prepared(row.index, row.id, row.event, row.metric, row.credits, row.event.fingerprint())
                insert_events(organization.pk, [row], now)
                event_id = row.id
            book.finish(organization)
    except BaseException:
        book.abort()
        raise
    if event_id is None and actual > 0:
        event_id = (
            UsageEvent.objects.filter(organization_id=organization.pk, idempotency_key=event_key(hold.pk))
            .values_list("id", flat=True)
            .first()
        )
    released = (
        result.hold.amount - (result.hold.consumed or 0)
        if result.hold.amount > (result.hold.consumed or 0)
        else 0
    )
    return ReservationResult(
        result.hold,
        result.balance,
        result.available,
        event_id=event_id,
        released=Decimal(released),
        replayed=result.replayed,
    )


def usage_reservation_release(*, organization: Organization, reservation_id) -> ReservationResult:
    """Give the whole reservation back (credits and quota)."""
    hold = _hold(organization, reservation_id)
    info = metric_catalog(include_inactive=True).get(hold.event_name)
    book = QuotaBook(quota_context(organization=organization, now=timezone.now()))

    def give_back(closed: CreditHold, _replayed: bool) -> None:
        if info is not None:
            book.release(info, _held_quota(info, closed))

    try:
        with transaction.atomic():
            credit_account_lock(organization=organization)
            result = credit_hold_release(organization=organization, hold_id=hold.pk, before_commit=give_back)
    except BaseException:
        book.abort()
        raise
    return ReservationResult(
        result.hold, result.balance, result.available, released=result.hold.amount, replayed=result.replayed
    )


def usage_reservations_expire() -> int:
    """Beat: expire the reservations past their time, giving their credits and quota back."""
    catalog = metric_catalog(include_inactive=True)
    books: list[QuotaBook] = []
    organizations: dict = {}

    def give_back(hold: CreditHold) -> None:
        info = catalog.get(hold.event_name)
        if info is None:
            return
        organization = organizations.get(hold.organization_id) or Organization.objects.get(
            pk=hold.organization_id
        )
        organizations[hold.organization_id] = organization
        book = QuotaBook(quota_context(organization=organization, now=timezone.now()))
        books.append(book)
        book.release(info, _held_quota(info, hold))

    try:
        return credit_holds_expire(on_expired=give_back)
    except BaseException:
        for book in books:
            book.abort()
        raise
