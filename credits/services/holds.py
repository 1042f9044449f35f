"""Credit holds (reservations for long work): hold, settle, release, expire.

A hold takes credits out of what can be spent without consuming them: `CreditAccount.held` is
the sum of the account's active holds, changed with them under the account lock, so every
consumption (the hot path and the general path) sees available = balance - held. A settle
consumes the actual amount through the ledger (one `consume` row, keyed `hold:<id>`) and
releases the rest; a release or an expiry gives everything back and writes no ledger row
(nothing was consumed). `reconcile` checks that `held` equals the sum of the active holds.

Like the rest of the ledger this module never calls Stripe (it holds the account lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing.models import Organization
from config.exceptions import IdempotencyConflict

from ..exceptions import CreditHoldClosed, CreditHoldNotFound, InsufficientCredits
from ..locks import account_lock, accounts_lock
from ..models import CreditAccount, CreditHold, HoldStatus, TransactionKind
from .ledger import (
    Ledger,
    _auto_refill_maybe_start,
    clean_metadata,
    live_grants,
    positive_credits,
    request_fingerprint,
)

HOLD_CONSTRAINT = "credit_hold_unique_idempotency_key"


@dataclass(frozen=True)
class HoldResult:
    hold: CreditHold
    balance: Decimal
    available: Decimal
    replayed: bool = False


def _save_held(account: CreditAccount) -> None:
    """Save `held` and the low-balance crossing the ledger's flush decided on the new available
    balance (a hold can arm the alert; a release or an expiry re-arms it)."""
    CreditAccount.objects.filter(pk=account.pk).update(
        held=account.held, low_balance_alerted_at=account.low_balance_alerted_at
    )


def credit_hold_create(
    *,
    organization: Organization,
    amount,
    idempotency_key: str,
    expires_in: timedelta,
    event_name: str = "",
    quantity=None,
    metadata: dict | None = None,
    actor: str = "",
    before_commit=None,
) -> HoldResult:
    """Hold `amount` credits until `expires_in` from now. Refused with `InsufficientCredits`
    (nothing held) when the available balance does not cover it. The same key with the same
    request answers the first hold again; with another request, `IdempotencyConflict`.

    `before_commit(hold, replayed)`, when given, runs under the account lock in the same
    transaction (the usage app records the quota hold there)."""
    amount = positive_credits(amount, "amount", allow_zero=True)
    metadata = clean_metadata(metadata)
    fingerprint = request_fingerprint(
        "hold",
        amount=amount,
        event_name=event_name,
        quantity=quantity,
        metadata=metadata,
        expires_in=int(expires_in.total_seconds()),
    )
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            stored = CreditHold.objects.filter(
                organization=organization, idempotency_key=idempotency_key
            ).first()
            if stored is not None:
                if stored.request_fingerprint != fingerprint:
                    raise IdempotencyConflict()
                return HoldResult(stored, account.balance, account.balance - account.held, replayed=True)
            ledger = Ledger(account, timezone.now())
            ledger.expire_due(live_grants(account))
            if amount > ledger.available():
                raise InsufficientCredits(
                    balance=account.balance, required=amount, available=ledger.available()
                )
            hold = CreditHold.objects.create(
                organization=organization,
                account_id=account.pk,
                amount=amount,
                event_name=event_name,
                quantity=quantity,
                expires_at=ledger.now + expires_in,
                idempotency_key=idempotency_key,
                request_fingerprint=fingerprint,
                metadata=metadata,
                actor=actor,
                created_at=ledger.now,
            )
            account.held += amount
            _auto_refill_maybe_start(ledger)  # held credits are spoken for: refill before they run out
            ledger.flush()
            _save_held(account)
            if before_commit is not None:
                before_commit(hold, False)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)
        if constraint != HOLD_CONSTRAINT:
            raise
        stored = CreditHold.objects.get(organization=organization, idempotency_key=idempotency_key)
        if stored.request_fingerprint != fingerprint:
            raise IdempotencyConflict() from None
        account = CreditAccount.objects.get(organization=organization)
        return HoldResult(stored, account.balance, account.balance - account.held, replayed=True)
    return HoldResult(hold, account.balance, account.balance - account.held)


def _locked_hold(organization: Organization, hold_id) -> tuple[CreditAccount, CreditHold]:
    account = account_lock(organization_id=organization.pk)
    hold = CreditHold.objects.select_for_update().filter(organization=organization, pk=hold_id).first()
    if hold is None:
        raise CreditHoldNotFound()
    return account, hold


def _close(account: CreditAccount, hold: CreditHold, status: str, now: datetime) -> None:
    hold.status = status
    hold.closed_at = now
    account.held -= hold.amount


def credit_hold_settle(
    *,
    organization: Organization,
    hold_id,
    amount,
    quantity=None,
    reason: str = "",
    actor: str = "",
    before_commit=None,
) -> HoldResult:
    """Consume the actual `amount` of a held reservation and release the rest.

    Above the held amount the extra is consumed too when the available balance covers it;
    otherwise `InsufficientCredits`, and the hold stays as it was. A settled hold answers the
    same result again for the same actual amount (`IdempotencyConflict` for another one); a
    released or expired hold cannot be settled (`CreditHoldClosed`).
    `before_commit(hold, replayed)` runs under the lock in the same transaction."""
    amount = positive_credits(amount, "actual_amount", allow_zero=True)
    with transaction.atomic():
        account, hold = _locked_hold(organization, hold_id)
        ledger = Ledger(account, timezone.now())
        if hold.status == HoldStatus.SETTLED:
            if hold.consumed != amount or (quantity is not None and hold.actual_quantity != quantity):
                raise IdempotencyConflict("This reservation was already settled with another quantity.")
            return HoldResult(hold, account.balance, account.balance - account.held, replayed=True)
        if hold.status != HoldStatus.HELD:
            raise CreditHoldClosed(hold.status)
        if hold.expires_at > ledger.now:
            grants = ledger.expire_due(live_grants(account))
            if amount > ledger.available() + hold.amount:
                raise InsufficientCredits(
                    balance=account.balance,
                    required=amount,
                    available=ledger.available() + hold.amount,
                )
            row = None
            if amount > 0:
                row = ledger.append(
                    kind=TransactionKind.CONSUME,
                    amount=-amount,
                    allocations=ledger.draw(grants, amount),
                    reason=(reason or f"Reservation {hold.pk} settled")[:500],
                    event_name=hold.event_name,
                    quantity=quantity,
                    metadata={"hold_id": str(hold.pk)},
                    actor=actor,
                    idempotency_key=f"hold:{hold.pk}",
                    request_fingerprint=request_fingerprint("hold_settle", hold=str(hold.pk), amount=amount),
                )
            _close(account, hold, HoldStatus.SETTLED, ledger.now)
            hold.consumed = amount
            hold.actual_quantity = quantity
            _auto_refill_maybe_start(ledger)
            ledger.flush()
            hold.transaction = row
            hold.save(update_fields=["status", "closed_at", "consumed", "actual_quantity", "transaction"])
            _save_held(account)
            if before_commit is not None:
                before_commit(hold, False)
            return HoldResult(hold, account.balance, account.balance - account.held)
        # Past its time and not yet expired by the beat task: expire it now (committed), then refuse.
        _close(account, hold, HoldStatus.EXPIRED, ledger.now)
        hold.save(update_fields=["status", "closed_at"])
        ledger.flush()
        _save_held(account)
        if before_commit is not None:
            before_commit(hold, False)
    raise CreditHoldClosed(HoldStatus.EXPIRED)


def credit_hold_release(*, organization: Organization, hold_id, before_commit=None) -> HoldResult:
    """Give a held reservation back whole. Releasing a released or expired hold answers it as it
    is; a settled one cannot be released (`CreditHoldClosed`)."""
    with transaction.atomic():
        account, hold = _locked_hold(organization, hold_id)
        if hold.status == HoldStatus.SETTLED:
            raise CreditHoldClosed(hold.status)
        if hold.status != HoldStatus.HELD:
            return HoldResult(hold, account.balance, account.balance - account.held, replayed=True)
        ledger = Ledger(account, timezone.now())
        _close(account, hold, HoldStatus.RELEASED, ledger.now)
        hold.save(update_fields=["status", "closed_at"])
        ledger.flush()
        _save_held(account)
        if before_commit is not None:
            before_commit(hold, False)
    return HoldResult(hold, account.balance, account.balance - account.held)


def credit_holds_expire(*, now: datetime | None = None, on_expired=None, limit: int = 1000) -> int:
    """Expire the held reservations past `expires_at`, one account per transaction. Answers how
    many. `on_expired(hold)` runs under the account lock for each one (usage gives the quota
    back there)."""
    now = now or timezone.now()
    due = CreditHold.objects.filter(status=HoldStatus.HELD, expires_at__lte=now)
    count = 0
    for account_id in sorted(set(due.values_list("account_id", flat=True)[:limit])):
        with transaction.atomic():
            (account,) = accounts_lock(account_ids=[account_id])
            ledger = Ledger(account, now)
            for hold in due.filter(account_id=account_id).select_for_update().order_by("pk"):
                _close(account, hold, HoldStatus.EXPIRED, now)
                hold.save(update_fields=["status", "closed_at"])
                if on_expired is not None:
                    on_expired(hold)
                count += 1
            ledger.flush()
            _save_held(account)
    return count
