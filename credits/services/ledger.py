"""The credit ledger: consume, grant, adjust, expire, reverse.

Every mutation runs in `transaction.atomic`, locks the organization's `CreditAccount` first
(`credits.locks`), appends ledger rows and changes grants and the cached balance together, so
the invariants of `credits.models` hold after every commit.

Consumption order: `credits.consumption_order` decides it. Past the grants, a consumption may
run into the account's overdraft (default 0); a later grant pays the overdraft back before it
adds to what can be consumed.

Grants whose `expires_at` has passed are expired (an `expire` row) by the next mutation of the
account, and by `credit_grants_expire_task` on beat for accounts nobody touches.

Idempotency: the first ledger row of an operation carries its `idempotency_key` (unique per
organization in the database) and a fingerprint of the normalized request. The same key with
the same request answers the first result again; with another request, `IdempotencyConflict`.
The hot path does not look the key up first: a replay fails the INSERT on the unique index,
the transaction rolls back whole, and the stored result is answered instead.

This module never calls Stripe, and must not: it holds the account lock. `make lint` checks that
it imports neither `billing.services` nor `billing.stripe_api` (payments live in `purchases` and
`auto_refill`, which call this module, never the other way round).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from billing.models import Organization
from config.alerts import ops_alert
from config.exceptions import IdempotencyConflict, ValidationFailed
from config.inputs import InputInvalid, parse_decimal, parse_metadata

from .. import hot_path
from ..consumption_order import grant_ordering, source_order
from ..exceptions import (
    CreditTransactionNotFound,
    InsufficientCredits,
    TransactionNotReversible,
    UnknownCreditPrice,
)
from ..formatting import (
    CREDITS_INTEGER_DIGITS,
    CREDITS_PLACES,
    MAX_CHARGE_MINOR_UNITS,
    MAX_CREDITS,
    credits_str,
    quantize,
)
from ..locks import account_lock, accounts_lock
from ..models import (
    IN_FLIGHT_STATUSES,
    ZERO,
    AutoRefill,
    CreditAccount,
    CreditGrant,
    CreditPurchase,
    CreditSource,
    CreditTransaction,
    PurchaseKind,
    PurchaseStatus,
    TransactionKind,
)
from ..selectors import credit_amount_price
from ..tasks import auto_refill_task, low_balance_alert_task

logger = logging.getLogger(__name__)

IDEMPOTENCY_CONSTRAINT = "credit_transaction_unique_idempotency_key"


SYSTEM_EXPIRY = "system:expiry"


@dataclass(frozen=True)
class ConsumeResult:
    transaction: CreditTransaction
    consumed: Decimal
    balance: Decimal
    replayed: bool = False


@dataclass(frozen=True)
class GrantResult:
    transaction: CreditTransaction
    grant: CreditGrant | None
    balance: Decimal
    created: bool = True


@dataclass(frozen=True)
class AdjustResult:
    transaction: CreditTransaction | None
    balance: Decimal
    replayed: bool = False


def actor_label(*, user_id=None, api_key_id=None, is_staff: bool = False, system: str | None = None) -> str:
    """Who acted, as the plain label the ledger stores (see `credits.models`)."""
    if system:
        return f"system:{system}"
    if api_key_id:
        return f"api_key:{api_key_id}"
    if user_id is not None:
        return f"{'staff' if is_staff else 'user'}:{user_id}"
    return ""


def request_fingerprint(operation: str, **fields: Any) -> str:
    """A hash of the normalized request: Decimals as normalized strings, keys sorted."""

    def norm(value):
        if isinstance(value, Decimal):
            return credits_str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {str(k): norm(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [norm(v) for v in value]
        return value

    body = json.dumps({"op": operation, **norm(fields)}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode()).hexdigest()


_json_str = json.encoder.encode_basestring_ascii  # how json.dumps writes a string (ensure_ascii)


def consume_fingerprint(
    *, amount: Decimal | None, event_name: str, quantity: Decimal | None, reason: str, metadata: dict
) -> str:
    """`request_fingerprint("consume", amount=..., event_name=..., quantity=..., reason=...,
    metadata=...)`, the same text hashed, written directly when there is no metadata (every
    consumption pays for it)."""
    if (
        metadata
        or type(event_name) is not str
        or type(reason) is not str
        or (amount is not None and type(amount) is not Decimal)
        or (quantity is not None and type(quantity) is not Decimal)
    ):
        return request_fingerprint(
            "consume",
            amount=amount,
            event_name=event_name,
            quantity=quantity,
            reason=reason,
            metadata=metadata,
        )
    body = (
        f'{{"amount":{"null" if amount is None else _json_str(credits_str(amount))},'
        f'"event_name":{_json_str(event_name)},"metadata":{{}},"op":"consume",'
        f'"quantity":{"null" if quantity is None else _json_str(credits_str(quantity))},'
        f'"reason":{_json_str(reason)}}}'
    )
    return hashlib.sha256(body.encode()).hexdigest()


def positive_credits(value, field: str, *, allow_zero: bool = False) -> Decimal:
    """A number of credits through the one strict parser (`config.inputs`), bounded by the
    ledger's columns (16 digits before the point, 4 after)."""
    try:
        amount = parse_decimal(
            value, name=field, integer_digits=CREDITS_INTEGER_DIGITS, places=CREDITS_PLACES
        )
    except InputInvalid as exc:
        raise ValidationFailed(fields={field: [exc.message]}) from None
    if amount < 0 or (amount == 0 and not allow_zero):
        raise ValidationFailed(fields={field: ["Must be greater than zero."]})
    return amount


def signed_credits(value, field: str) -> Decimal:
    """Like `positive_credits`, any sign (adjustments, a balance to set)."""
    try:
        return parse_decimal(value, name=field, integer_digits=CREDITS_INTEGER_DIGITS, places=CREDITS_PLACES)
    except InputInvalid as exc:
        raise ValidationFailed(fields={field: [exc.message]}) from None


def clean_metadata(metadata) -> dict:
    """`metadata` by Stripe's rules (`config.inputs.parse_metadata`), for every caller."""
    try:
        return parse_metadata(metadata)
    except InputInvalid as exc:
        raise ValidationFailed(fields={"metadata": [exc.message]}) from None


BALANCE_OVERFLOW = (
    f"The balance would exceed the largest an account can hold ({MAX_CREDITS.normalize():f} credits)."
)


def live_grants(account: CreditAccount) -> list[CreditGrant]:
    """The account's grants with credits left, in consumption order. The caller holds the lock."""
    return list(
        CreditGrant.objects.filter(account_id=account.pk, remaining__gt=0)
        .only("id", "source", "amount", "remaining", "expires_at", "expired_at", "created_at")
        .order_by(*grant_ordering())
    )


def _idempotency_conflict(exc: IntegrityError) -> bool:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == IDEMPOTENCY_CONSTRAINT


def _stored(organization_id, idempotency_key: str | None) -> CreditTransaction | None:
    if not idempotency_key:
        return None
    return (
        CreditTransaction.objects.select_related("grant")
        .filter(organization_id=organization_id, idempotency_key=idempotency_key)
        .first()
    )


def _check_replay(stored: CreditTransaction, fingerprint: str) -> CreditTransaction:
    if stored.request_fingerprint != fingerprint:
        raise IdempotencyConflict()
    return stored


class Ledger:
    """The changes of one operation on one locked account, written together by `flush`."""

    def __init__(self, account: CreditAccount, now: datetime):
        self.account = account
        self.now = now
        self.start_balance = account.balance
        self.rows: list[CreditTransaction] = []
        self.new_grants: list[CreditGrant] = []
        self.changed_grants: dict[Any, CreditGrant] = {}
        self.after_commit: list = []

    def append(self, *, kind: str, amount: Decimal, **fields) -> CreditTransaction:
        account = self.account
        if abs(account.balance + amount) > MAX_CREDITS:  # the column would refuse it: a 400, not a 500
            raise ValidationFailed(fields={"amount": [BALANCE_OVERFLOW]})
        account.balance += amount
        account.sequence += 1
        row = CreditTransaction(
            organization_id=account.organization_id,
            account_id=account.pk,
            sequence=account.sequence,
            kind=kind,
            amount=amount,
            balance_after=account.balance,
            created_at=self.now,
            **fields,
        )
        self.rows.append(row)
        return row

    def expire_due(self, grants: list[CreditGrant]) -> list[CreditGrant]:
        """Expire the grants whose time has come; answer the others."""
        live = []
        for grant in grants:
            if grant.expires_at is not None and grant.expires_at <= self.now and grant.remaining > 0:
                left = grant.remaining
                grant.remaining = ZERO
                grant.expired_at = self.now
                self.changed_grants[grant.pk] = grant
                self.append(
                    kind=TransactionKind.EXPIRE,
                    amount=-left,
                    grant=grant,
                    reason=f"{grant.get_source_display()} credits expired",
                    actor=SYSTEM_EXPIRY,
                )
            elif grant.remaining > 0:
                live.append(grant)
        return live

    def draw(self, grants: list[CreditGrant], amount: Decimal) -> list[list[str]]:
        """Take `amount` from the grants in order; what they cannot cover is overdraft."""
        allocations = []
        left = amount
        for grant in grants:
            if left <= 0:
                break
            take = min(grant.remaining, left)
            if take <= 0:
                continue
            grant.remaining -= take
            left -= take
            self.changed_grants[grant.pk] = grant
            allocations.append([str(grant.pk), credits_str(take)])
        return allocations

    def available(self) -> Decimal:
        """What a consumption may take: the balance, minus the active holds, plus the overdraft."""
        return self.account.balance - self.account.held + self.account.overdraft_limit

    def spendable(self) -> Decimal:
        """The available balance the thresholds compare (low-balance alert, auto-refill): balance
        minus active holds, without the overdraft (credits held for work are already spoken for)."""
        return self.account.balance - self.account.held

    def new_grant(
        self,
        *,
        source: str,
        amount: Decimal,
        expires_at: datetime | None = None,
        reference: str | None = None,
        reason: str = "",
    ) -> CreditGrant:
        """A grant of `amount`; the part that pays back an overdraft in use is not left in it.
        Call before appending the row that adds `amount` to the balance."""
        debt = max(-self.account.balance, ZERO)
        grant = CreditGrant(
            account_id=self.account.pk,
            organization_id=self.account.organization_id,
            source=source,
            amount=amount,
            remaining=amount - min(debt, amount),
            expires_at=expires_at,
            reference=reference,
            reason=reason[:500],
            created_at=self.now,
        )
        self.new_grants.append(grant)
        return grant

    def flush(self) -> None:
        account = self.account
        self._low_balance()
        inserted = {g.pk for g in self.new_grants}
        if self.new_grants:
            CreditGrant.objects.bulk_create(self.new_grants)
        changed = [g for g in self.changed_grants.values() if g.pk not in inserted]
        if len(changed) == 1:
            g = changed[0]
            CreditGrant.objects.filter(pk=g.pk).update(remaining=g.remaining, expired_at=g.expired_at)
        elif changed:
            CreditGrant.objects.bulk_update(changed, ["remaining", "expired_at"])
        if self.rows:
            CreditAccount.objects.filter(pk=account.pk).update(
                balance=account.balance,
                sequence=account.sequence,
                low_balance_alerted_at=account.low_balance_alerted_at,
                updated_at=self.now,
            )
            CreditTransaction.objects.bulk_create(self.rows)
        for callback in self.after_commit:
            transaction.on_commit(callback)

    def _low_balance(self) -> None:
        """One alert per crossing of the available balance (balance - held) below the threshold;
        the alert re-arms when it recovers."""
        account = self.account
        threshold = account.low_balance_threshold
        if threshold is None:
            return
        if self.spendable() < threshold and account.low_balance_alerted_at is None:
            account.low_balance_alerted_at = self.now
            account_id = account.pk
            self.after_commit.append(lambda: low_balance_alert_task.delay(account_id))
        elif self.spendable() >= threshold and account.low_balance_alerted_at is not None:
            account.low_balance_alerted_at = None


@dataclass(frozen=True)
class LockedAccount:
    id: int
    balance: Decimal
    held: Decimal


LOCK_SQL = (
    f"SELECT id, balance, held FROM {CreditAccount._meta.db_table} "  # noqa: S608
    "WHERE organization_id = %s FOR UPDATE"
)


def credit_account_lock(*, organization: Organization) -> LockedAccount:
    """Lock the organization's account (creating it when missing) for the rest of the caller's
    transaction: the usage app takes it first, so its quota check, the consumption and the
    usage event are decided under one lock (the consumption's own lock is then already held).
    One statement on the common path."""
    assert transaction.get_connection().in_atomic_block, "credit_account_lock needs transaction.atomic"
    with connection.cursor() as cursor:
        cursor.execute(LOCK_SQL, [organization.pk])
        row = cursor.fetchone()
    if row is None:
        account = account_lock(organization_id=organization.pk)
        return LockedAccount(account.pk, account.balance, account.held)
    return LockedAccount(*row)


def credit_consume(
    *,
    organization: Organization,
    amount=None,
    event_name: str | None = None,
    quantity=None,
    reason: str = "",
    idempotency_key: str | None = None,
    metadata: dict | None = None,
    actor: str = "",
) -> ConsumeResult:
    """Consume `amount` credits, or `quantity` (default 1) of `event_name` at its `CreditPrice`.

    Never past the overdraft limit: a refusal raises `InsufficientCredits` (with the balance and
    the requirement) and consumes nothing. A consumption that leaves the balance under the
    auto-refill threshold starts a refill after commit.
    """
    if (amount is None) == (not event_name):
        raise ValidationFailed(
            fields={"amount": ["Give either amount, or event_name (with an optional quantity)."]}
        )
    if event_name:
        quantity = positive_credits(1 if quantity is None else quantity, "quantity")
        per_unit = hot_path.price_per_unit(event_name)
        if per_unit is None:
            raise UnknownCreditPrice(event_name)
        required = quantize(per_unit * quantity)
        if required <= 0:
            # Refused rather than written as a zero row (README, "Input rules").
            raise ValidationFailed(
                fields={
                    "quantity": [f"{credits_str(quantity)} of {event_name} costs 0 credits: nothing to do."]
                }
            )
        if required > MAX_CREDITS:
            raise ValidationFailed(fields={"quantity": ["This costs more credits than an account can hold."]})
    else:
        required = positive_credits(amount, "amount")
        quantity = None
    metadata = clean_metadata(metadata)
    fingerprint = consume_fingerprint(
        amount=required if not event_name else None, event_name=event_name or "", quantity=quantity,
        reason=reason, metadata=metadata,
    )  # fmt: skip
    reason = reason[:500]
    hot = {
        "organization_id": organization.pk, "required": required, "order": source_order(), "reason": reason,
        "event_name": event_name or "", "quantity": quantity, "metadata": metadata, "actor": actor,
        "idempotency_key": idempotency_key or None, "fingerprint": fingerprint,
    }  # fmt: skip
    try:
        # The common case in one round trip (`credits.hot_path`): its own transaction when none is
        # open, else a savepoint in the caller's; None leaves the decision to the general path.
        done = hot_path.consume(now=timezone.now(), **hot)
        if done is not None:
            return ConsumeResult(transaction=done[0], consumed=required, balance=done[1])
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            ledger = Ledger(account, timezone.now())
            grants = ledger.expire_due(live_grants(account))
            if required > ledger.available():
                stored = _stored(organization.pk, idempotency_key)
                if stored is None:
                    raise InsufficientCredits(
                        balance=account.balance,
                        required=required,
                        available=ledger.available(),
                    )
                ledger.flush()
                return _consume_replay(stored, fingerprint)
            allocations = ledger.draw(grants, required)
            row = ledger.append(
                kind=TransactionKind.CONSUME,
                amount=-required,
                allocations=allocations,
                reason=reason[:500],
                event_name=event_name or "",
                quantity=quantity,
                metadata=metadata,
                actor=actor,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
            )
            _auto_refill_maybe_start(ledger)
            ledger.flush()
    except IntegrityError as exc:
        if not _idempotency_conflict(exc):
            raise
        stored = _stored(organization.pk, idempotency_key)
        if stored is None:  # pragma: no cover - the unique index said it exists
            raise
        return _consume_replay(stored, fingerprint)
    return ConsumeResult(transaction=row, consumed=required, balance=account.balance)


def _consume_replay(stored: CreditTransaction, fingerprint: str) -> ConsumeResult:
    _check_replay(stored, fingerprint)
    if stored.kind != TransactionKind.CONSUME:
        raise IdempotencyConflict()
    return ConsumeResult(
        transaction=stored, consumed=-stored.amount, balance=stored.balance_after, replayed=True
    )


def credit_grant(
    *,
    organization: Organization,
    amount,
    source: str = CreditSource.MANUAL,
    reason: str = "",
    expires_at: datetime | None = None,
    reference: str | None = None,
    idempotency_key: str | None = None,
    metadata: dict | None = None,
    actor: str = "",
) -> GrantResult:
    """Add credits. A `reference` (PaymentIntent id, invoice, ...) makes the grant happen once:
    a second call with it answers the first grant (`created=False`)."""
    amount = positive_credits(amount, "amount")
    if source not in CreditSource.values:
        raise ValidationFailed(fields={"source": [f"Unknown source {source!r}."]})
    metadata = clean_metadata(metadata)
    fingerprint = request_fingerprint(
        "grant", amount=amount, source=source, reason=reason, expires_at=expires_at,
        reference=reference, metadata=metadata,
    )  # fmt: skip
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            ledger = Ledger(account, timezone.now())
            if reference:
                existing = CreditGrant.objects.filter(account_id=account.pk, reference=reference).first()
                if existing is not None:
                    row = existing.transactions.order_by("sequence").first()
                    return GrantResult(
                        transaction=row, grant=existing, balance=account.balance, created=False
                    )
            ledger.expire_due(live_grants(account))
            grant = ledger.new_grant(
                source=source, amount=amount, expires_at=expires_at, reference=reference, reason=reason
            )
            row = ledger.append(
                kind=TransactionKind.GRANT,
                amount=amount,
                grant=grant,
                reason=reason[:500],
                metadata=metadata,
                actor=actor,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
            )
            if expires_at is not None and expires_at <= ledger.now:
                ledger.expire_due([grant])
            ledger.flush()
    except IntegrityError as exc:
        if not _idempotency_conflict(exc):
            raise
        stored = _stored(organization.pk, idempotency_key)
        if stored is None:  # pragma: no cover
            raise
        _check_replay(stored, fingerprint)
        return GrantResult(
            transaction=stored, grant=stored.grant, balance=stored.balance_after, created=False
        )
    return GrantResult(transaction=row, grant=grant, balance=account.balance)


def _adjust_locked(
    ledger: Ledger,
    grants: list[CreditGrant],
    *,
    delta: Decimal,
    reason: str,
    actor: str,
    idempotency_key,
    fingerprint,
):
    if delta > 0:
        grant = ledger.new_grant(source=CreditSource.MANUAL, amount=delta, reason=reason)
        return ledger.append(
            kind=TransactionKind.ADJUST,
            amount=delta,
            grant=grant,
            reason=reason[:500],
            actor=actor,
            idempotency_key=idempotency_key or None,
            request_fingerprint=fingerprint,
        )
    taken = -delta
    if taken > ledger.available():
        message = (
            f"This would take the balance to {credits_str(ledger.account.balance - taken)}, "
            f"below the overdraft limit of {credits_str(ledger.account.overdraft_limit)}."
        )
        raise ValidationFailed(fields={"amount": [message]})
    allocations = ledger.draw(grants, taken)
    return ledger.append(
        kind=TransactionKind.ADJUST,
        amount=-taken,
        allocations=allocations,
        reason=reason[:500],
        actor=actor,
        idempotency_key=idempotency_key or None,
        request_fingerprint=fingerprint,
    )


def _require_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed(fields={"reason": ["A reason is required."]})
    return reason


def credit_adjust(
    *, organization: Organization, amount, reason: str, actor: str = "", idempotency_key: str | None = None
) -> AdjustResult:
    """Add (positive) or take away (negative) credits with a required reason: an `adjust` row."""
    reason = _require_reason(reason)
    delta = signed_credits(amount, "amount")
    if delta == 0:
        raise ValidationFailed(fields={"amount": ["Must not be zero."]})
    fingerprint = request_fingerprint("adjust", amount=delta, reason=reason)
    return _run_adjust(organization, lambda ledger: delta, reason, actor, idempotency_key, fingerprint)


def credit_balance_set(
    *, organization: Organization, balance, reason: str, actor: str = "", idempotency_key: str | None = None
) -> AdjustResult:
    """Set the balance to a figure with a required reason, through one `adjust` row (none when
    the balance is already that figure)."""
    reason = _require_reason(reason)
    target = signed_credits(balance, "balance")
    fingerprint = request_fingerprint("balance_set", balance=target, reason=reason)
    return _run_adjust(
        organization,
        lambda ledger: target - ledger.account.balance,
        reason,
        actor,
        idempotency_key,
        fingerprint,
    )


def _run_adjust(organization, delta_of, reason, actor, idempotency_key, fingerprint) -> AdjustResult:
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            ledger = Ledger(account, timezone.now())
            grants = ledger.expire_due(live_grants(account))
            delta = delta_of(ledger)
            row = None
            if delta != 0:
                row = _adjust_locked(
                    ledger,
                    grants,
                    delta=delta,
                    reason=reason,
                    actor=actor,
                    idempotency_key=idempotency_key,
                    fingerprint=fingerprint,
                )
            ledger.flush()
    except IntegrityError as exc:
        if not _idempotency_conflict(exc):
            raise
        stored = _check_replay(_stored(organization.pk, idempotency_key), fingerprint)
        return AdjustResult(transaction=stored, balance=stored.balance_after, replayed=True)
    return AdjustResult(transaction=row, balance=account.balance)


def credit_grants_expire(*, organization: Organization | None = None) -> int:
    """Expire every grant whose time has come, one account per transaction. Answers how many."""
    now = timezone.now()
    due = CreditGrant.objects.filter(remaining__gt=0, expires_at__lte=now)
    if organization is not None:
        due = due.filter(organization=organization)
    # Grants used up before their time are closed too (no ledger row: nothing is left in them),
    # which keeps the index of grants still to expire small.
    spent = CreditGrant.objects.filter(remaining=0, expired_at__isnull=True, expires_at__lte=now)
    if organization is not None:
        spent = spent.filter(organization=organization)
    spent.update(expired_at=F("expires_at"))
    count = 0
    for account_id in sorted(set(due.values_list("account_id", flat=True))):
        with transaction.atomic():
            (account,) = accounts_lock(account_ids=[account_id])
            ledger = Ledger(account, timezone.now())
            ledger.expire_due(live_grants(account))
            count += len(ledger.rows)
            ledger.flush()
    return count


def credit_grant_expire_now(*, organization: Organization, reference: str, reason: str) -> bool:
    """Expire what is left of the grant made for `reference` now (an `expire` row). True when
    something was taken; False when nothing was left (or no such grant): safe to run again."""
    with transaction.atomic():
        account = account_lock(organization_id=organization.pk)
        grant = CreditGrant.objects.filter(
            account_id=account.pk, reference=reference, remaining__gt=0
        ).first()
        if grant is None:
            return False
        ledger = Ledger(account, timezone.now())
        ledger.expire_due(live_grants(account))
        grant = ledger.changed_grants.get(grant.pk, grant)
        if grant.remaining <= 0:
            ledger.flush()
            return False
        left = grant.remaining
        grant.remaining = ZERO
        grant.expired_at = ledger.now
        ledger.changed_grants[grant.pk] = grant
        ledger.append(
            kind=TransactionKind.EXPIRE, amount=-left, grant=grant, reason=reason[:500], actor=SYSTEM_EXPIRY
        )
        ledger.flush()
    return True


def credit_consumption_reverse(
    *,
    organization: Organization,
    transaction_id,
    reason: str,
    actor: str = "",
    idempotency_key: str | None = None,
) -> GrantResult:
    """Give back what one consumption took: a `refund` row, once per consumption.

    Credits go back to the grants they came from (and expire again at once when those have
    expired meanwhile); the part that cannot go back there (it was overdraft since paid back)
    becomes a `refund` grant that never expires."""
    reason = _require_reason(reason)
    with transaction.atomic():
        account = account_lock(organization_id=organization.pk)
        original = CreditTransaction.objects.filter(organization=organization, pk=transaction_id).first()
        if original is None:
            raise CreditTransactionNotFound()
        if original.kind != TransactionKind.CONSUME:
            raise TransactionNotReversible()
        done = CreditTransaction.objects.filter(reverses=original).select_related("grant").first()
        if done is not None:
            return GrantResult(transaction=done, grant=done.grant, balance=account.balance, created=False)
        ledger = Ledger(account, timezone.now())
        ledger.expire_due(live_grants(account))
        give_back = -original.amount
        old, new = account.balance, account.balance + give_back
        to_restore = max(new, ZERO) - max(old, ZERO)
        ids = [grant_id for grant_id, _ in original.allocations]
        grants = {str(g.pk): g for g in CreditGrant.objects.filter(pk__in=ids)}
        restored = []
        for grant_id, taken in original.allocations:
            grant = ledger.changed_grants.get(grants[grant_id].pk, grants[grant_id])
            back = min(Decimal(taken), to_restore, grant.amount - grant.remaining)
            if back <= 0:
                continue
            grant.remaining += back
            to_restore -= back
            ledger.changed_grants[grant.pk] = grant
            restored.append(grant)
        refund_grant = None
        if to_restore > 0:
            refund_grant = ledger.new_grant(source=CreditSource.REFUND, amount=to_restore, reason=reason)
            refund_grant.remaining = to_restore
        row = ledger.append(
            kind=TransactionKind.REFUND,
            amount=give_back,
            grant=refund_grant,
            reverses=original,
            reason=reason[:500],
            event_name=original.event_name,
            quantity=original.quantity,
            actor=actor,
            idempotency_key=idempotency_key or None,
            request_fingerprint=request_fingerprint(
                "reverse", transaction_id=str(original.pk), reason=reason
            ),
        )
        ledger.expire_due(restored)
        ledger.flush()
    return GrantResult(transaction=row, grant=refund_grant, balance=account.balance)


def credit_account_settings_update(
    *,
    organization: Organization,
    low_balance_threshold=...,
    overdraft_limit=...,
) -> CreditAccount:
    """Change the low-balance threshold (None turns alerts off) or the overdraft limit."""
    with transaction.atomic():
        account = account_lock(organization_id=organization.pk)
        fields = ["updated_at"]
        if low_balance_threshold is not ...:
            account.low_balance_threshold = (
                None
                if low_balance_threshold is None
                else positive_credits(low_balance_threshold, "low_balance_threshold", allow_zero=True)
            )
            # A new threshold starts a new crossing: the beat task alerts when already below it.
            account.low_balance_alerted_at = None
            fields += ["low_balance_threshold", "low_balance_alerted_at"]
        if overdraft_limit is not ...:
            limit = positive_credits(overdraft_limit, "overdraft_limit", allow_zero=True)
            if account.balance < -limit:
                raise ValidationFailed(
                    fields={"overdraft_limit": ["The balance is already below this; pay it back first."]}
                )
            account.overdraft_limit = limit
            fields.append("overdraft_limit")
        account.save(update_fields=fields)
    return account


def _auto_refill_of(account: CreditAccount) -> AutoRefill | None:
    try:
        return account.auto_refill
    except AutoRefill.DoesNotExist:
        return None


def _auto_refill_size(ledger: Ledger, refill: AutoRefill) -> tuple[Decimal, int, str] | None:
    """(credits, price, currency) of the refill to start: as many refill units (the pack, or the
    set amount) as bring the balance back to the threshold, in one charge -- within
    `CREDITS_AUTO_REFILL_HOURLY_CAP` (what the account's auto-refills charged in the last hour
    counts) and the largest single payment. Past the cap, the charge is cut to what fits (none
    when nothing does) and the operators are alerted."""
    if refill.pack_id:
        unit, unit_price, currency = refill.pack.credits, refill.pack.amount, refill.pack.currency
    else:
        unit = refill.amount
        unit_price, currency = credit_amount_price(credits=unit)
    if not 0 < unit_price <= MAX_CHARGE_MINOR_UNITS:
        raise ValidationFailed(f"a refill would charge {unit_price} minor units, over one payment's limit")
    shortfall = refill.threshold - ledger.spendable()
    wanted = max(1, math.ceil(shortfall / unit)) if unit > 0 else 1
    charged = (
        CreditPurchase.objects.filter(
            account_id=ledger.account.pk,
            kind=PurchaseKind.AUTO_REFILL,
            created_at__gte=ledger.now - timedelta(hours=1),
        )
        .exclude(status=PurchaseStatus.FAILED)
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )
    room = min(settings.CREDITS_AUTO_REFILL_HOURLY_CAP - charged, MAX_CHARGE_MINOR_UNITS)
    units = wanted if unit_price <= 0 else min(wanted, max(0, room // unit_price))
    if units < wanted:
        organization_id, short = str(ledger.account.organization_id), shortfall

        def alert() -> None:
            ops_alert(
                "auto_refill_hourly_cap",
                f"auto-refill of organization {organization_id} capped: {short} credits short, "
                f"{units} of {wanted} refill(s) charged ({charged} already charged this hour)",
                subject=organization_id,
            )

        ledger.after_commit.append(alert)
    if units < 1:
        return None
    if refill.pack_id:
        return unit * units, unit_price * units, currency
    price, currency = credit_amount_price(credits=unit * units)
    return unit * units, price, currency


def _auto_refill_maybe_start(ledger: Ledger) -> None:
    """Under the account lock: start a refill when the available balance (balance - held) is
    below the threshold, none is in flight (also enforced by a partial unique index) and today's
    cap is not reached."""
    account = ledger.account
    refill = _auto_refill_of(account)
    if refill is None or not refill.enabled or ledger.spendable() >= refill.threshold:
        return
    attempts = CreditPurchase.objects.filter(
        account_id=account.pk, kind=PurchaseKind.AUTO_REFILL, created_at__gte=ledger.now - timedelta(days=1)
    )
    if attempts.filter(status__in=IN_FLIGHT_STATUSES).exists():
        return
    if attempts.count() >= refill.max_refills_per_day:
        return
    try:
        sized = _auto_refill_size(ledger, refill)
    except ValidationFailed as exc:
        # A setting that cannot be charged (saved before the bounds, or a pack repriced since)
        # must not fail the consumption that crossed the threshold: turn the refill off, say
        # why on the page and the API, and alert.
        refill.enabled = False
        refill.disabled_reason = f"Turned off: this refill cannot be charged ({exc.message})."[:255]
        refill.last_failure_code = "invalid_amount"
        refill.save(update_fields=["enabled", "disabled_reason", "last_failure_code", "updated_at"])
        logger.error(
            "auto-refill of account %s turned off: it cannot be charged (%s)", account.pk, exc.message
        )
        return
    if sized is None:
        return
    credits, price, currency = sized
    purchase = CreditPurchase.objects.create(
        organization_id=account.organization_id,
        account_id=account.pk,
        kind=PurchaseKind.AUTO_REFILL,
        pack_id=refill.pack_id,
        credits=credits,
        amount=price,
        currency=currency,
        payment_method=refill.payment_method,
        created_at=ledger.now,
    )
    purchase_id = str(purchase.pk)
    ledger.after_commit.append(lambda: auto_refill_task.delay(purchase_id))
