"""Writes to the credit ledger.

Every mutation runs in `transaction.atomic`, locks the organization's `CreditAccount` first
(`credits.locks`), appends ledger rows and changes grants and the cached balance together, so
the invariants of `credits.models` hold after every commit.

Consumption order: grants are drawn in the order of `settings.CREDITS_CONSUMPTION_ORDER`
(default: purchase, refund, subscription, promo, manual) and, within a source, soonest expiry
first (never-expiring last), then oldest first. Purchased credits go first as the seeds' rule
says; refund grants hold credits given back for consumptions that were reversed, which were
paid for like purchased ones; manual grants (staff goodwill, adjustments) are kept longest.
Past the grants, a consumption may run into the account's overdraft (default 0); a later grant
pays the overdraft back before it adds to what can be consumed.

Grants whose `expires_at` has passed are expired (an `expire` row) by the next mutation of the
account, and by `credit_grants_expire_task` on beat for accounts nobody touches.

Idempotency: the first ledger row of an operation carries its `idempotency_key` (unique per
organization in the database) and a fingerprint of the normalized request. The same key with
the same request answers the first result again; with another request, `IdempotencyConflict`.
The hot path does not look the key up first: a replay fails the INSERT on the unique index,
the transaction rolls back whole, and the stored result is answered instead.
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
from django.db import IntegrityError, transaction
from django.db.models import Case, F, IntegerField, Value, When
from django.utils import timezone

from billing.exceptions import PaymentFailed
from billing.models import Organization
from config.exceptions import IdempotencyConflict, ValidationFailed

from . import hot_path
from .exceptions import (
    CreditPurchaseNotFound,
    CreditTransactionNotFound,
    InsufficientCredits,
    TransactionNotReversible,
    UnknownCreditPrice,
)
from .formatting import MAX_CREDITS, credits_str, quantize
from .locks import account_lock, accounts_lock
from .models import (
    IN_FLIGHT_STATUSES,
    ZERO,
    AutoRefill,
    CreditAccount,
    CreditGrant,
    CreditPack,
    CreditPurchase,
    CreditSource,
    CreditTransaction,
    PurchaseKind,
    PurchaseStatus,
    TransactionKind,
)

logger = logging.getLogger(__name__)

IDEMPOTENCY_CONSTRAINT = "credit_transaction_unique_idempotency_key"
SYSTEM_EXPIRY = "system:expiry"
# Stripe keeps idempotency keys for 24 hours; past (a safe margin below) that, look charges up.
STRIPE_IDEMPOTENCY_WINDOW = timedelta(hours=23)


# --------------------------------------------------------------------------- results
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


# --------------------------------------------------------------------------- helpers
def actor_label(*, user_id=None, api_key_id=None, is_staff: bool = False, system: str | None = None) -> str:
    """Who acted, as the plain label the ledger stores (see `credits.models`)."""
    if system:
        return f"system:{system}"
    if api_key_id:
        return f"api_key:{api_key_id}"
    if user_id is not None:
        return f"{'staff' if is_staff else 'user'}:{user_id}"
    return ""


def actor_for_access(access) -> str:
    """The actor label of an API caller (`billing.selectors.Access`)."""
    return actor_label(user_id=access.user_id, api_key_id=access.api_key_id, is_staff=access.is_staff)


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


def _positive(value, field: str, *, allow_zero: bool = False) -> Decimal:
    try:
        amount = quantize(value)
    except ValueError:
        raise ValidationFailed(
            f"{field}: A valid number is required.", fields={field: ["A valid number is required."]}
        ) from None
    if amount < 0 or (amount == 0 and not allow_zero) or amount > MAX_CREDITS:
        message = "Must be greater than zero." if amount <= 0 else "Too large."
        raise ValidationFailed(f"{field}: {message}", fields={field: [message]})
    return amount


def _consumption_order() -> Case:
    order = list(settings.CREDITS_CONSUMPTION_ORDER)
    return Case(
        *[When(source=source, then=Value(i)) for i, source in enumerate(order)],
        default=Value(len(order)),
        output_field=IntegerField(),
    )


def _live_grants(account: CreditAccount) -> list[CreditGrant]:
    """The account's grants with credits left, in consumption order. The caller holds the lock."""
    return list(
        CreditGrant.objects.filter(account_id=account.pk, remaining__gt=0)
        .only("id", "source", "amount", "remaining", "expires_at", "expired_at", "created_at")
        .order_by(_consumption_order(), F("expires_at").asc(nulls_last=True), "created_at", "id")
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


class _Ledger:
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
        return self.account.balance + self.account.overdraft_limit

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
        """One alert per crossing below the threshold; the alert re-arms when the balance recovers."""
        account = self.account
        threshold = account.low_balance_threshold
        if threshold is None:
            return
        if account.balance < threshold and account.low_balance_alerted_at is None:
            account.low_balance_alerted_at = self.now
            from .tasks import low_balance_alert_task

            account_id = account.pk
            self.after_commit.append(lambda: low_balance_alert_task.delay(account_id))
        elif account.balance >= threshold and account.low_balance_alerted_at is not None:
            account.low_balance_alerted_at = None


# --------------------------------------------------------------------------- consume
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
            "Give either amount, or event_name (with an optional quantity).",
            fields={"amount": ["Give either amount, or event_name (with an optional quantity)."]},
        )
    if event_name:
        quantity = _positive(1 if quantity is None else quantity, "quantity")
        per_unit = hot_path.price_per_unit(event_name)
        if per_unit is None:
            raise UnknownCreditPrice(event_name)
        required = quantize(per_unit * quantity)
    else:
        required = _positive(amount, "amount")
        quantity = None
    metadata = metadata or {}
    fingerprint = request_fingerprint(
        "consume", amount=required if not event_name else None, event_name=event_name or "",
        quantity=quantity, reason=reason, metadata=metadata,
    )  # fmt: skip
    reason = reason[:500]
    try:
        with transaction.atomic():
            done = hot_path.consume(
                organization_id=organization.pk, required=required, now=timezone.now(),
                order=tuple(settings.CREDITS_CONSUMPTION_ORDER), reason=reason, event_name=event_name or "",
                quantity=quantity, metadata=metadata, actor=actor, idempotency_key=idempotency_key or None,
                fingerprint=fingerprint,
            )  # fmt: skip
            if done is not None:
                return ConsumeResult(transaction=done[0], consumed=required, balance=done[1])
            account = account_lock(organization_id=organization.pk)
            ledger = _Ledger(account, timezone.now())
            grants = ledger.expire_due(_live_grants(account))
            if required > ledger.available():
                stored = _stored(organization.pk, idempotency_key)
                if stored is None:
                    raise InsufficientCredits(
                        balance=account.balance, required=required, available=ledger.available()
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


# --------------------------------------------------------------------------- grant
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
    amount = _positive(amount, "amount")
    if source not in CreditSource.values:
        raise ValidationFailed(fields={"source": [f"Unknown source {source!r}."]})
    metadata = metadata or {}
    fingerprint = request_fingerprint(
        "grant", amount=amount, source=source, reason=reason, expires_at=expires_at,
        reference=reference, metadata=metadata,
    )  # fmt: skip
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            ledger = _Ledger(account, timezone.now())
            if reference:
                existing = CreditGrant.objects.filter(account_id=account.pk, reference=reference).first()
                if existing is not None:
                    row = existing.transactions.order_by("sequence").first()
                    return GrantResult(
                        transaction=row, grant=existing, balance=account.balance, created=False
                    )
            ledger.expire_due(_live_grants(account))
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


def subscription_credits_grant(
    *,
    organization: Organization,
    invoice_id: str,
    period_start: datetime,
    period_end: datetime,
    amount,
) -> GrantResult | None:
    """The plan's included credits for one paid subscription invoice: once per invoice,
    expiring at the period end (what is left then expires as a ledger row)."""
    if quantize(amount) <= 0:
        return None
    return credit_grant(
        organization=organization,
        amount=amount,
        source=CreditSource.SUBSCRIPTION,
        reason=f"Subscription credits {period_start:%Y-%m-%d} to {period_end:%Y-%m-%d}",
        expires_at=period_end,
        reference=f"invoice:{invoice_id}",
        metadata={
            "invoice_id": invoice_id,
            "period_start": period_start.isoformat(),
            "period_end": period_end.isoformat(),
        },
        actor=actor_label(system="subscription"),
    )


# --------------------------------------------------------------------------- adjust
def _adjust_locked(
    ledger: _Ledger,
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
        raise ValidationFailed(message, fields={"amount": [message]})
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
        raise ValidationFailed("reason: A reason is required.", fields={"reason": ["A reason is required."]})
    return reason


def credit_adjust(
    *, organization: Organization, amount, reason: str, actor: str = "", idempotency_key: str | None = None
) -> AdjustResult:
    """Add (positive) or take away (negative) credits with a required reason: an `adjust` row."""
    reason = _require_reason(reason)
    try:
        delta = quantize(amount)
    except ValueError:
        raise ValidationFailed(fields={"amount": ["A valid number is required."]}) from None
    if delta == 0:
        raise ValidationFailed("amount: Must not be zero.", fields={"amount": ["Must not be zero."]})
    fingerprint = request_fingerprint("adjust", amount=delta, reason=reason)
    return _run_adjust(organization, lambda ledger: delta, reason, actor, idempotency_key, fingerprint)


def credit_balance_set(
    *, organization: Organization, balance, reason: str, actor: str = "", idempotency_key: str | None = None
) -> AdjustResult:
    """Set the balance to a figure with a required reason, through one `adjust` row (none when
    the balance is already that figure)."""
    reason = _require_reason(reason)
    try:
        target = quantize(balance)
    except ValueError:
        raise ValidationFailed(fields={"balance": ["A valid number is required."]}) from None
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
            ledger = _Ledger(account, timezone.now())
            grants = ledger.expire_due(_live_grants(account))
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


# --------------------------------------------------------------------------- expire
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
            ledger = _Ledger(account, timezone.now())
            ledger.expire_due(_live_grants(account))
            count += len(ledger.rows)
            ledger.flush()
    return count


# --------------------------------------------------------------------------- reverse
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
        ledger = _Ledger(account, timezone.now())
        ledger.expire_due(_live_grants(account))
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


# --------------------------------------------------------------------------- settings
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
                else _positive(low_balance_threshold, "low_balance_threshold", allow_zero=True)
            )
            # A new threshold starts a new crossing: the beat task alerts when already below it.
            account.low_balance_alerted_at = None
            fields += ["low_balance_threshold", "low_balance_alerted_at"]
        if overdraft_limit is not ...:
            limit = _positive(overdraft_limit, "overdraft_limit", allow_zero=True)
            if account.balance < -limit:
                raise ValidationFailed(
                    fields={"overdraft_limit": ["The balance is already below this; pay it back first."]}
                )
            account.overdraft_limit = limit
            fields.append("overdraft_limit")
        account.save(update_fields=fields)
    return account


# --------------------------------------------------------------------------- purchases
def _pack_price_for(credits: Decimal) -> tuple[int, str]:
    """The price of a custom amount of credits: the unit price of the smallest active pack."""
    base = CreditPack.objects.filter(active=True).order_by("credits").first()
    if base is None:
        raise ValidationFailed(fields={"amount": ["No credit pack is on sale to price a custom amount."]})
    return math.ceil(credits * base.amount / base.credits), base.currency


def credit_purchase_create(
    *,
    organization: Organization,
    pack: CreditPack,
    kind: str = PurchaseKind.PACK,
    payment_method: str = "",
    idempotency_key: str | None = None,
) -> tuple[CreditPurchase, bool]:
    """Save a pending purchase of a pack before Stripe is called (its id keys the Stripe call).
    The same idempotency key answers the same purchase (`created=False`); with another request, 409."""
    if not pack.active:
        raise ValidationFailed(fields={"pack": [f"The pack {pack.code!r} is not on sale."]})
    fingerprint = request_fingerprint("purchase", pack=pack.code, kind=kind, payment_method=payment_method)
    if idempotency_key:
        existing = CreditPurchase.objects.filter(
            organization=organization, idempotency_key=idempotency_key
        ).first()
        if existing is not None:
            if existing.request_fingerprint != fingerprint:
                raise IdempotencyConflict()
            return existing, False
    try:
        with transaction.atomic():
            account = account_lock(organization_id=organization.pk)
            purchase = CreditPurchase.objects.create(
                organization=organization,
                account=account,
                kind=kind,
                pack=pack,
                credits=pack.credits,
                amount=pack.amount,
                currency=pack.currency,
                payment_method=payment_method,
                idempotency_key=idempotency_key or None,
                request_fingerprint=fingerprint,
                created_at=timezone.now(),
            )
    except IntegrityError:
        existing = CreditPurchase.objects.filter(
            organization=organization, idempotency_key=idempotency_key
        ).first()
        if existing is None:
            raise
        if existing.request_fingerprint != fingerprint:
            raise IdempotencyConflict() from None
        return existing, False
    return purchase, True


def _purchase_find(*, purchase_id=None, payment_intent_id=None, checkout_session_id=None) -> CreditPurchase:
    qs = CreditPurchase.objects.all()
    purchase = None
    if purchase_id:
        purchase = qs.filter(pk=purchase_id).first()
    if purchase is None and payment_intent_id:
        purchase = qs.filter(payment_intent_id=payment_intent_id).first()
    if purchase is None and checkout_session_id:
        purchase = qs.filter(checkout_session_id=checkout_session_id).first()
    if purchase is None:
        raise CreditPurchaseNotFound()
    return purchase


@dataclass(frozen=True)
class FulfilResult:
    purchase: CreditPurchase
    transaction: CreditTransaction | None
    granted: bool


def credit_purchase_fulfil(
    *,
    payment_intent_id: str,
    purchase_id=None,
    checkout_session_id: str | None = None,
) -> FulfilResult:
    """Grant a paid purchase's credits exactly once, however often and in whichever order the
    API answer, `payment_intent.succeeded` and `checkout.session.completed` call this.

    Keyed on the PaymentIntent: the purchase row is locked after the account, and the grant's
    `reference` is the PaymentIntent id, unique per account in the database."""
    found = _purchase_find(
        purchase_id=purchase_id, payment_intent_id=payment_intent_id, checkout_session_id=checkout_session_id
    )
    with transaction.atomic():
        account = account_lock(organization_id=found.organization_id)
        purchase = CreditPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.payment_intent_id and purchase.payment_intent_id != payment_intent_id:
            logger.error(
                "purchase %s is paid by %s, not %s",
                purchase.pk,
                purchase.payment_intent_id,
                payment_intent_id,
            )
            raise ValidationFailed(
                fields={"payment_intent": ["This purchase belongs to another PaymentIntent."]}
            )
        purchase.payment_intent_id = payment_intent_id
        if checkout_session_id and not purchase.checkout_session_id:
            purchase.checkout_session_id = checkout_session_id
        if purchase.grant_id is not None:
            purchase.save(update_fields=["payment_intent_id", "checkout_session_id", "updated_at"])
            row = purchase.grant.transactions.order_by("sequence").first()
            return FulfilResult(purchase=purchase, transaction=row, granted=False)
        ledger = _Ledger(account, timezone.now())
        ledger.expire_due(_live_grants(account))
        label = purchase.pack.name if purchase.pack_id else f"{credits_str(purchase.credits)} credits"
        grant = ledger.new_grant(
            source=CreditSource.PURCHASE,
            amount=purchase.credits,
            reference=payment_intent_id,
            reason=f"Purchase: {label}",
        )
        row = ledger.append(
            kind=TransactionKind.GRANT,
            amount=purchase.credits,
            grant=grant,
            reason=f"Purchase: {label}",
            metadata={"purchase_id": str(purchase.pk), "payment_intent": payment_intent_id},
            actor=actor_label(system=purchase.kind),
        )
        purchase.grant = grant
        if purchase.status != PurchaseStatus.REFUNDED:
            purchase.status = PurchaseStatus.SUCCEEDED
        purchase.failure_code = purchase.failure_message = ""
        if purchase.refunded_amount:  # the refund arrived first: take back the unspent part now
            _purchase_take_back(ledger, purchase, grant, reason="Refund of the purchase")
        ledger.flush()
        purchase.save()
        if purchase.kind == PurchaseKind.AUTO_REFILL:
            AutoRefill.objects.filter(account_id=account.pk).update(
                consecutive_failures=0, last_failure_code=""
            )
    return FulfilResult(purchase=purchase, transaction=row, granted=True)


def _purchase_take_back(
    ledger: _Ledger, purchase: CreditPurchase, grant: CreditGrant, *, reason: str
) -> None:
    target = (
        quantize(purchase.credits * purchase.refunded_amount / purchase.amount) if purchase.amount else ZERO
    )
    target = min(target, purchase.credits)
    wanted = target - purchase.credits_reversed
    take = min(wanted, grant.remaining)
    if take <= 0:
        return
    grant.remaining -= take
    ledger.changed_grants[grant.pk] = grant
    ledger.append(
        kind=TransactionKind.REFUND, amount=-take, grant=grant, reason=reason[:500], actor="system:stripe"
    )
    purchase.credits_reversed += take


def credit_purchase_reverse(
    *, payment_intent_id: str, refunded_amount: int | None = None, reason: str = "Refund of the purchase"
) -> CreditPurchase:
    """A refund or dispute of a purchase takes back the unspent part of its credits.

    `refunded_amount` is Stripe's cumulative figure in minor units (None: all of it), so the
    same event delivered again changes nothing, and a later, larger refund takes back more."""
    found = _purchase_find(payment_intent_id=payment_intent_id)
    with transaction.atomic():
        account = account_lock(organization_id=found.organization_id)
        purchase = CreditPurchase.objects.select_for_update().get(pk=found.pk)
        refunded = purchase.amount if refunded_amount is None else min(int(refunded_amount), purchase.amount)
        if refunded <= purchase.refunded_amount:
            return purchase
        purchase.refunded_amount = refunded
        if refunded >= purchase.amount:
            purchase.status = PurchaseStatus.REFUNDED
        if purchase.grant_id is not None:
            ledger = _Ledger(account, timezone.now())
            ledger.expire_due(_live_grants(account))
            grant = ledger.changed_grants.get(purchase.grant_id) or CreditGrant.objects.get(
                pk=purchase.grant_id
            )
            _purchase_take_back(ledger, purchase, grant, reason=reason)
            ledger.flush()
        purchase.save()
    return purchase


# --------------------------------------------------------------------------- auto-refill
def auto_refill_set(
    *,
    organization: Organization,
    enabled: bool,
    threshold,
    pack: CreditPack | None = None,
    amount=None,
    payment_method: str = "",
    max_refills_per_day: int = 3,
) -> AutoRefill:
    """Settings of the automatic refill. Enabling it again clears the failure count."""
    errors: dict[str, list[str]] = {}
    threshold = _positive(threshold, "threshold", allow_zero=True)
    if pack is not None and amount is not None:
        errors["pack"] = ["Give a pack or an amount, not both."]
    if enabled and pack is None and amount is None:
        errors["pack"] = ["Give a pack or an amount of credits to buy."]
    if amount is not None:
        amount = _positive(amount, "amount")
    if pack is not None and not pack.active:
        errors["pack"] = [f"The pack {pack.code!r} is not on sale."]
    if enabled and not (payment_method or "").startswith("pm_"):
        errors["payment_method"] = ["A saved card (pm_...) is required to refill automatically."]
    if not 1 <= int(max_refills_per_day) <= 24:
        errors["max_refills_per_day"] = ["Between 1 and 24."]
    if errors:
        raise ValidationFailed(fields=errors)
    with transaction.atomic():
        account = account_lock(organization_id=organization.pk)
        refill, _ = AutoRefill.objects.select_for_update().get_or_create(account=account)
        if enabled and not refill.enabled:
            refill.consecutive_failures = 0
            refill.disabled_reason = ""
        refill.enabled = enabled
        refill.threshold = threshold
        refill.pack = pack
        refill.amount = amount
        refill.payment_method = payment_method or ""
        refill.max_refills_per_day = int(max_refills_per_day)
        refill.save()
    return refill


def _auto_refill_of(account: CreditAccount) -> AutoRefill | None:
    try:
        return account.auto_refill
    except AutoRefill.DoesNotExist:
        return None


def _auto_refill_maybe_start(ledger: _Ledger) -> None:
    """Under the account lock: start a refill when the balance is below the threshold, none is
    in flight (also enforced by a partial unique index) and today's cap is not reached."""
    account = ledger.account
    refill = _auto_refill_of(account)
    if refill is None or not refill.enabled or account.balance >= refill.threshold:
        return
    attempts = CreditPurchase.objects.filter(
        account_id=account.pk, kind=PurchaseKind.AUTO_REFILL, created_at__gte=ledger.now - timedelta(days=1)
    )
    if attempts.filter(status__in=IN_FLIGHT_STATUSES).exists():
        return
    if attempts.count() >= refill.max_refills_per_day:
        return
    if refill.pack_id:
        credits, price, currency = refill.pack.credits, refill.pack.amount, refill.pack.currency
    else:
        credits = refill.amount
        price, currency = _pack_price_for(credits)
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
    from .tasks import auto_refill_task

    purchase_id = str(purchase.pk)
    ledger.after_commit.append(lambda: auto_refill_task.delay(purchase_id))


def auto_refill_run(*, purchase_id) -> CreditPurchase:
    """The body of `auto_refill_task`: charge the saved card off-session, then grant.

    Safe to run again after a worker died at any point: the Stripe idempotency key is the
    purchase's own (`purchase:<id>`), so Stripe answers the first PaymentIntent instead of
    charging twice, and `credit_purchase_fulfil` grants once per PaymentIntent."""
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().filter(pk=purchase_id).first()
        if purchase is None or purchase.status not in IN_FLIGHT_STATUSES:
            return purchase
        refill = AutoRefill.objects.filter(account_id=purchase.account_id).first()
        if purchase.status == PurchaseStatus.PENDING and (refill is None or not refill.enabled):
            # Turned off before Stripe was ever called for it: nothing to charge.
            purchase.status = PurchaseStatus.FAILED
            purchase.failure_code = "auto_refill_disabled"
            purchase.save(update_fields=["status", "failure_code", "updated_at"])
            return purchase
        purchase.status = PurchaseStatus.PROCESSING
        purchase.save(update_fields=["status", "updated_at"])
    try:
        intent = stripe_refill_payment_intent_create(purchase=purchase)
    except PaymentFailed as exc:
        return auto_refill_payment_failed(
            purchase_id=purchase.pk,
            decline_code=str(exc.extra.get("decline_code") or "card_declined"),
            message=exc.message,
        )
    if intent["status"] == "succeeded":
        return credit_purchase_fulfil(payment_intent_id=intent["id"], purchase_id=purchase.pk).purchase
    if intent["status"] == "requires_action":
        return auto_refill_requires_action(purchase_id=purchase.pk, payment_intent_id=intent["id"])
    return auto_refill_payment_failed(
        purchase_id=purchase.pk, decline_code=intent["status"], message=f"PaymentIntent is {intent['status']}"
    )


def _refill_failure(
    purchase_id, *, status: str, code: str, message: str, payment_intent_id=None, notice: str
):
    from .tasks import auto_refill_notice_task

    found = _purchase_find(purchase_id=purchase_id)
    with transaction.atomic():
        account_lock(organization_id=found.organization_id)
        purchase = CreditPurchase.objects.select_for_update().get(pk=found.pk)
        if purchase.status not in IN_FLIGHT_STATUSES:
            return purchase  # already settled: a second delivery changes nothing
        purchase.status = status
        purchase.failure_code = code[:64]
        purchase.failure_message = message[:500]
        if payment_intent_id:
            purchase.payment_intent_id = payment_intent_id
        purchase.save()
        refill = AutoRefill.objects.select_for_update().filter(account_id=purchase.account_id).first()
        if refill is not None:
            refill.consecutive_failures += 1
            refill.last_failure_code = code[:64]
            if refill.enabled and refill.consecutive_failures >= AutoRefill.MAX_CONSECUTIVE_FAILURES:
                refill.enabled = False
                refill.disabled_reason = (
                    f"Turned off after {refill.consecutive_failures} failed payments in a row (last: {code})."
                )
                notice = "disabled"
            refill.save()
        if notice in ("disabled", "action_required"):
            pid = str(purchase.pk)
            transaction.on_commit(lambda: auto_refill_notice_task.delay(pid, notice))
    return purchase


def auto_refill_payment_failed(*, purchase_id, decline_code: str, message: str = "") -> CreditPurchase:
    """A declined refill. Three failures in a row turn auto-refill off and e-mail the owners."""
    return _refill_failure(
        purchase_id, status=PurchaseStatus.FAILED, code=decline_code, message=message, notice="failed"
    )


def auto_refill_requires_action(*, purchase_id, payment_intent_id: str) -> CreditPurchase:
    """The bank wants the card holder to authenticate: tell the owners. Counts as a failure, so
    a card that always asks stops auto-refill after three tries; if the holder completes the
    payment later, `payment_intent.succeeded` grants the credits."""
    return _refill_failure(
        purchase_id,
        status=PurchaseStatus.REQUIRES_ACTION,
        code="authentication_required",
        message="The card needs the holder's authentication.",
        payment_intent_id=payment_intent_id,
        notice="action_required",
    )


# --------------------------------------------------------------------------- Stripe
def stripe_refill_payment_intent_create(*, purchase: CreditPurchase) -> dict:
    """Charge the saved card off-session for a purchase: answers `{"id", "status", "client_secret"}`.
    The Stripe idempotency key is the purchase's own, so a rerun never charges twice."""
    from billing.services import payment_intent_find_by_metadata, payment_intent_off_session_create

    if timezone.now() - purchase.created_at > STRIPE_IDEMPOTENCY_WINDOW:
        # Stripe forgets idempotency keys after 24 hours: a rerun that late looks the charge up
        # by our purchase id instead of trusting the key, so it still never charges twice.
        existing = payment_intent_find_by_metadata(key="purchase_id", value=str(purchase.pk))
        if existing is not None:
            return {
                "id": existing.payment_intent_id,
                "status": existing.status,
                "client_secret": existing.client_secret,
            }
    label = purchase.pack.name if purchase.pack_id else f"{credits_str(purchase.credits)} credits"
    result = payment_intent_off_session_create(
        organization=purchase.organization,
        amount=purchase.amount,
        currency=purchase.currency,
        payment_method=purchase.payment_method or None,
        idempotency_key=purchase.stripe_idempotency_key,
        metadata={"purchase_id": str(purchase.pk), "kind": "credits", "purchase_kind": purchase.kind},
        description=f"Credits: {label}",
    )
    return {"id": result.payment_intent_id, "status": result.status, "client_secret": result.client_secret}


def credit_purchase_failed(
    *, purchase_id, code: str, message: str = "", payment_intent_id=None
) -> CreditPurchase:
    """A one-off purchase whose payment failed. Settled purchases are left as they are."""
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status in (PurchaseStatus.SUCCEEDED, PurchaseStatus.REFUNDED):
            return purchase
        purchase.status = PurchaseStatus.FAILED
        purchase.failure_code = (code or "card_declined")[:64]
        purchase.failure_message = message[:500]
        if payment_intent_id and not purchase.payment_intent_id:
            purchase.payment_intent_id = payment_intent_id
        purchase.save()
    return purchase


def _purchase_mark(purchase_id, *, status: str, payment_intent_id: str) -> CreditPurchase:
    with transaction.atomic():
        purchase = CreditPurchase.objects.select_for_update().get(pk=purchase_id)
        if purchase.status in IN_FLIGHT_STATUSES:
            purchase.status = status
            purchase.payment_intent_id = purchase.payment_intent_id or payment_intent_id
            purchase.save(update_fields=["status", "payment_intent_id", "updated_at"])
    return purchase


@dataclass(frozen=True)
class ChargeOutcome:
    purchase: CreditPurchase
    transaction: CreditTransaction | None
    payment_intent: str | None
    client_secret: str | None = None


def credit_purchase_charge(*, purchase: CreditPurchase) -> ChargeOutcome:
    """`POST /credits/purchase`: charge a pack purchase off-session and grant once paid.

    Safe to call again for the same purchase (the same idempotency key replays it): Stripe
    answers the first PaymentIntent and the grant is keyed on it. A settled purchase answers its
    result without calling Stripe; a declined one raises PaymentFailed again."""
    if purchase.status == PurchaseStatus.SUCCEEDED or purchase.grant_id:
        row = purchase.grant.transactions.order_by("sequence").first() if purchase.grant_id else None
        return ChargeOutcome(purchase, row, purchase.payment_intent_id)
    if purchase.status == PurchaseStatus.FAILED:
        raise PaymentFailed(
            purchase.failure_message or "The card was declined.",
            extra={"decline_code": purchase.failure_code, "payment_intent": purchase.payment_intent_id},
        )
    with transaction.atomic():
        locked = CreditPurchase.objects.select_for_update().get(pk=purchase.pk)
        if locked.status == PurchaseStatus.PENDING:
            locked.status = PurchaseStatus.PROCESSING
            locked.save(update_fields=["status", "updated_at"])
    try:
        intent = stripe_refill_payment_intent_create(purchase=purchase)
    except PaymentFailed as exc:
        credit_purchase_failed(
            purchase_id=purchase.pk,
            code=str(exc.extra.get("decline_code") or "card_declined"),
            message=exc.message,
            payment_intent_id=exc.extra.get("payment_intent"),
        )
        raise
    if intent["status"] == "succeeded":
        result = credit_purchase_fulfil(payment_intent_id=intent["id"], purchase_id=purchase.pk)
        return ChargeOutcome(result.purchase, result.transaction, intent["id"])
    status = (
        PurchaseStatus.REQUIRES_ACTION if intent["status"] == "requires_action" else PurchaseStatus.PROCESSING
    )
    marked = _purchase_mark(purchase.pk, status=status, payment_intent_id=intent["id"])
    return ChargeOutcome(marked, None, intent["id"], intent.get("client_secret"))


def stripe_credits_checkout_session_create(
    *, purchase: CreditPurchase, success_url: str, cancel_url: str
) -> dict:
    """A Checkout Session (mode=payment) for a pack purchase: answers `{"id", "url"}`. The pack is
    a one-time Stripe price (lookup key `credits_pack_<code>`), made on first use."""
    from billing.services import checkout_session_create, stripe_one_time_price_ensure

    pack = purchase.pack
    price_id = stripe_one_time_price_ensure(
        lookup_key=f"credits_pack_{pack.code}",
        product_id=f"credits_pack_{pack.code}",
        product_name=pack.name,
        amount=purchase.amount,
        currency=purchase.currency,
        metadata={"credit_pack": pack.code},
    )
    metadata = {"kind": "credits", "purchase_id": str(purchase.pk), "credit_pack": pack.code}
    session = checkout_session_create(
        organization=purchase.organization,
        mode="payment",
        line_items=[{"price": price_id, "quantity": 1}],
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=metadata,
        payment_intent_data={"metadata": metadata},
        idempotency_key=purchase.stripe_idempotency_key,
    )
    CreditPurchase.objects.filter(pk=purchase.pk, checkout_session_id__isnull=True).update(
        checkout_session_id=session.id
    )
    return {"id": session.id, "url": session.url}


# --------------------------------------------------------------------------- subscription credits from Stripe
def subscription_credits_for_invoice(*, invoice_id: str) -> bool:
    """Grant the included credits of the plan for the period a paid subscription invoice covers
    (re-read from Stripe). Once per invoice, however often it runs. True when credits were granted
    by this call or an earlier one."""
    from billing.services import subscription_invoice_period_get

    period = subscription_invoice_period_get(invoice_id=invoice_id)
    if period is None:
        return False
    return _grant_period(period) is not None


def _grant_period(period) -> GrantResult | None:
    return subscription_credits_grant(
        organization=period.organization,
        invoice_id=period.invoice_id,
        period_start=period.period_start,
        period_end=period.period_end,
        amount=period.plan.included_credits,
    )


def subscription_credits_catch_up() -> int:
    """For every organization on a paid plan, the latest paid invoices of its subscription; grants
    what is missing (the grants are keyed on the invoice, so nothing is granted twice)."""
    from billing.selectors import organizations_with_live_subscription
    from billing.services import subscription_paid_periods_recent

    granted = 0
    for organization in organizations_with_live_subscription():
        try:
            periods = subscription_paid_periods_recent(organization=organization)
        except Exception:
            logger.exception("subscription credits catch-up failed for %s", organization.pk)
            continue
        for period in periods:
            if period.period_end <= timezone.now():
                continue  # that period is over: its credits would expire at once
            result = _grant_period(period)
            granted += int(bool(result and result.created))
    return granted


# --------------------------------------------------------------------------- reconciliation with Stripe
def credit_purchases_stripe_drift_list(*, organization_ids: list | None = None) -> list[str]:
    """Purchases whose state here disagrees with their PaymentIntent on Stripe: paid there but not
    granted here (a lost webhook), or granted here but not paid there."""
    from billing.services import payment_intent_status_get

    drifts = []
    purchases = CreditPurchase.objects.exclude(payment_intent_id=None).exclude(status=PurchaseStatus.REFUNDED)
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    for purchase in purchases.order_by("created_at"):
        status = payment_intent_status_get(payment_intent_id=purchase.payment_intent_id)
        granted = purchase.grant_id is not None
        if status == "succeeded" and not granted:
            drifts.append(
                f"purchase {purchase.pk}: {purchase.payment_intent_id} succeeded on Stripe, not granted"
            )
        elif status != "succeeded" and granted:
            drifts.append(f"purchase {purchase.pk}: granted, but {purchase.payment_intent_id} is {status!r}")
    return drifts
