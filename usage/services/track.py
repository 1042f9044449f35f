"""`usage_track`: the quota check, the credit consumption and the usage event in one
transaction, under the organization's account lock (the seeds' check-then-consume flow
without its race).

Order, all under the lock: count the quantity on the quota counter (refused: `QuotaExceeded`,
nothing counted), consume the credits (`credit_consume`, whose own lock is then already held;
refused: `InsufficientCredits`), write the event and its rollups. Any failure rolls everything
back and deletes the counters it changed. The same idempotency key answers the first result
again (`replayed`), also when the quota or the balance would refuse it now; with another
request, `IdempotencyConflict`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.models import Organization
from config.exceptions import IdempotencyConflict
from credits.exceptions import InsufficientCredits
from credits.formatting import quantize
from credits.models import CreditTransaction
from credits.services import credit_consume

from ..exceptions import QuotaExceeded, UnknownMetric
from ..models import Aggregation, UsageEvent
from ..selectors import metric_catalog, quota_context_for_ingestion
from ..validation import EventInput, EventInvalid, parse_event
from .quotas import QuotaBook
from .recording import Prepared, account_lock, insert_events, stored_fingerprints


@dataclass(frozen=True)
class TrackResult:
    event_id: uuid.UUID
    metric: str
    quantity: Decimal
    occurred_at: datetime
    credits: Decimal
    balance: Decimal | None
    current: Decimal | None  # the period's usage after it (None: unlimited)
    limit: Decimal | None
    replayed: bool = False


def _invalid(exc: EventInvalid):
    from config.exceptions import ValidationFailed

    field = {
        "invalid_quantity": "quantity",
        "invalid_occurred_at": "occurred_at",
        "too_old": "occurred_at",
        "in_future": "occurred_at",
        "invalid_dimensions": "dimensions",
    }.get(exc.code, "non_field_errors")
    return ValidationFailed(exc.message, fields={field: [exc.message]})


def credit_key(idempotency_key: str) -> str:
    return f"usage:{idempotency_key}"


def _replay(organization: Organization, row: Prepared) -> TrackResult | None:
    stored = stored_fingerprints(organization.pk, [row.event.idempotency_key]).get(row.event.idempotency_key)
    if stored is None:
        return None
    fingerprint, event_id = stored
    if fingerprint != row.fingerprint:
        raise IdempotencyConflict()
    event = UsageEvent.objects.filter(organization_id=organization.pk, id=event_id).values(
        "quantity", "occurred_at", "credits"
    )[:1]
    event = (
        event[0]
        if event
        else {"quantity": row.event.quantity, "occurred_at": row.event.occurred_at, "credits": row.credits}
    )
    consumed = (
        CreditTransaction.objects.filter(
            organization_id=organization.pk, idempotency_key=credit_key(row.event.idempotency_key)
        )
        .values_list("balance_after", flat=True)
        .first()
    )
    return TrackResult(
        event_id=event_id,
        metric=row.metric.code,
        quantity=event["quantity"],
        occurred_at=event["occurred_at"],
        credits=event["credits"],
        balance=consumed,
        current=None,
        limit=None,
        replayed=True,
    )


def usage_track(
    *,
    organization: Organization,
    metric: str,
    quantity=1,
    idempotency_key: str,
    occurred_at=None,
    user_id: str = "",
    resource_type: str = "",
    resource_id: str = "",
    dimensions: dict | None = None,
    actor: str = "",
) -> TrackResult:
    """Check the quota and the credits, consume them and record the event, all or nothing."""
    now = timezone.now()
    try:
        event = parse_event(
            {
                "metric": metric,
                "quantity": quantity,
                "idempotency_key": idempotency_key,
                "occurred_at": occurred_at,
                "user_id": user_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "dimensions": dimensions,
            },
            now,
        )
    except EventInvalid as exc:
        raise _invalid(exc) from None
    info = metric_catalog().get(event.metric)
    if info is None:
        raise UnknownMetric(event.metric)
    if info.aggregation == Aggregation.UNIQUE and not event.resource_id:
        raise _invalid(EventInvalid("missing_field", "resource_id is required for a unique metric."))
    credits = quantize((info.credits_per_unit or 0) * event.quantity)
    row = Prepared(0, uuid.uuid4(), event, info, credits, event.fingerprint())
    return track_prepared(organization=organization, row=row, now=now, actor=actor)


def track_prepared(
    *, organization: Organization, row: Prepared, now: datetime, actor: str = ""
) -> TrackResult:
    event: EventInput = row.event
    ctx = quota_context_for_ingestion(organization=organization, now=now)
    book = QuotaBook(ctx)
    try:
        with transaction.atomic():
            account = account_lock(organization)
            try:
                current = (
                    book.enforce(row.metric, event.quantity, unique_value=event.resource_id)
                    if (ctx.counts_now(event.occurred_at))
                    else None
                )
                balance = account.balance
                if row.credits > 0:
                    consumed = credit_consume(
                        organization=organization,
                        amount=row.credits,
                        reason=f"{row.metric.code} x {event.quantity}",
                        idempotency_key=credit_key(event.idempotency_key),
                        metadata={"metric": row.metric.code, "usage_key": event.idempotency_key},
                        actor=actor,
                    )
                    if consumed.replayed:
                        raise _Replayed()
                    balance = consumed.balance
            except (QuotaExceeded, InsufficientCredits):
                book.abort(locked=True)
                replay = _replay(organization, row)
                if replay is not None:
                    return replay
                raise
            inserted = insert_events(organization.pk, [row], now)
            if row.id not in inserted:
                raise _Replayed()
            book.finish(organization)
    except _Replayed:
        book.abort()
        replay = _replay(organization, row)
        if replay is None:  # pragma: no cover - the key's row exists: the insert said so
            raise IdempotencyConflict() from None
        return replay
    except BaseException:
        book.abort()
        raise
    return TrackResult(
        event_id=row.id,
        metric=row.metric.code,
        quantity=event.quantity,
        occurred_at=event.occurred_at,
        credits=row.credits,
        balance=balance,
        current=current,
        limit=ctx.limit(row.metric.code),
    )


class _Replayed(Exception):
    """The key was used before: roll back and answer the first result."""
