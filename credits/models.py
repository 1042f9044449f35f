"""The credit ledger.

`CreditAccount` holds the cached balance and is the row every mutation locks
(`credits.locks`). `CreditGrant` rows are the buckets credits are drawn from;
`CreditTransaction` is the append-only ledger (a database trigger refuses UPDATE and DELETE).

Invariants (checked by `manage.py reconcile` and by the tests after every scenario):
balance == sum(transactions) == sum(remaining of grants) minus the overdraft in use;
0 <= remaining <= amount; balance >= -overdraft_limit; one idempotency key, one effect.

Rows that the ledger points at are protected (`on_delete=PROTECT`): a cascade would have to
update or delete ledger rows, which the trigger refuses anyway. The actor of a transaction is a
plain label (`"user:12"`, `"staff:3"`, `"api_key:<uuid>"`, `"system:auto_refill"`) for the same
reason: deleting a user must not touch the ledger.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from billing.models import Organization

ZERO = Decimal("0")


def CreditsField(**kwargs) -> models.DecimalField:
    """Every credit amount: a Decimal with 4 places, never a float."""
    return models.DecimalField(max_digits=20, decimal_places=4, **kwargs)


class CreditSource(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    SUBSCRIPTION = "subscription", "Subscription"
    PROMO = "promo", "Promo"
    MANUAL = "manual", "Manual"
    REFUND = "refund", "Refund"


class TransactionKind(models.TextChoices):
    GRANT = "grant", "Grant"
    CONSUME = "consume", "Consume"
    EXPIRE = "expire", "Expire"
    ADJUST = "adjust", "Adjust"
    REFUND = "refund", "Refund"


class CreditAccount(models.Model):
    """One per organization. `balance` is a cache of the ledger's sum; only services change it,
    holding this row's lock."""

    organization = models.OneToOneField(Organization, on_delete=models.PROTECT, related_name="credit_account")
    balance = CreditsField(default=ZERO)
    overdraft_limit = CreditsField(default=ZERO, help_text="How far below zero consumption may go.")
    # The number of ledger rows; each row's `sequence` is the next value, so the chain has no gaps.
    sequence = models.BigIntegerField(default=0)
    low_balance_threshold = CreditsField(
        null=True, blank=True, help_text="E-mail the owners when the balance falls below this."
    )
    # When the balance fell below the threshold (the crossing its notice is keyed on); cleared
    # when the balance recovers.
    low_balance_alerted_at = models.DateTimeField(null=True, blank=True)
    # The sum of the account's active holds (`CreditHold`), kept with them under this row's lock:
    # what can be spent is balance - held (plus the overdraft).
    held = CreditsField(default=ZERO)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(overdraft_limit__gte=0), name="credit_account_overdraft_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(balance__gte=-F("overdraft_limit")),
                name="credit_account_balance_within_overdraft",
            ),
            models.CheckConstraint(condition=Q(held__gte=0), name="credit_account_held_gte_0"),
        ]

    def __str__(self) -> str:
        return f"Credits of {self.organization_id}: {self.balance}"


class CreditGrant(models.Model):
    """Credits added to an account, drawn down by consumptions in the configured order."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="grants")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(max_length=16, choices=CreditSource.choices)
    amount = CreditsField()
    remaining = CreditsField()
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    expired_at = models.DateTimeField(null=True, blank=True)
    # What the grant is for, so it is never made twice: `pi_...`, `invoice:in_...`, ...
    reference = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 - unique when set
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_amount_gt_0"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("amount")),
                name="credit_grant_remaining_within_amount",
            ),
            models.UniqueConstraint(
                fields=["account", "reference"],
                condition=Q(reference__isnull=False),
                name="credit_grant_unique_reference",
            ),
        ]
        # No index mentions `remaining`: a consumption changes only that column, so PostgreSQL
        # can update the grant in place (a HOT update) without touching any index.
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(expired_at__isnull=True, expires_at__isnull=False),
                name="credit_grant_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.remaining}/{self.amount}"


class CreditTransaction(models.Model):
    """One ledger row: a signed amount and the balance after it. Never updated or deleted."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="transactions")
    sequence = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=TransactionKind.choices)
    amount = CreditsField()
    balance_after = CreditsField()
    grant = models.ForeignKey(
        CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="transactions"
    )
    # Which grants a consumption drew from: [[grant_id, "amount"], ...]; the rest was overdraft.
    allocations = models.JSONField(default=list, blank=True)
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    reason = models.CharField(max_length=500, blank=True)
    event_name = models.CharField(max_length=64, blank=True)
    quantity = CreditsField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 - unique when set
    request_fingerprint = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-sequence"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="credit_transaction_unique_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["account", "sequence"], name="credit_transaction_unique_sequence"
            ),
        ]
        indexes = [
            models.Index(fields=["account", "created_at"], name="credit_txn_account_created_idx"),
            models.Index(fields=["organization", "kind", "created_at"], name="credit_txn_org_kind_idx"),
            # The unusual-consumption check: every organization's consumptions in a time window,
            # read from the index alone.
            models.Index(
                fields=["created_at"],
                include=["organization", "amount"],
                condition=Q(kind="consume"),
                name="credit_txn_consume_window_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} -> {self.balance_after}"


class CreditPrice(models.Model):
    """What one unit of an event costs in credits."""

    event_name = models.CharField(max_length=64, unique=True)
    credits_per_unit = CreditsField()
    category = models.CharField(max_length=32)
    description = models.CharField(max_length=200, blank=True)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "event_name"]
        constraints = [
            models.CheckConstraint(condition=Q(credits_per_unit__gte=0), name="credit_price_gte_0"),
        ]

    def __str__(self) -> str:
        return f"{self.event_name}: {self.credits_per_unit}"


class CreditPack(models.Model):
    """Credits sold for a price (minor units)."""

    code = models.SlugField(max_length=32, unique=True)
    name = models.CharField(max_length=100)
    credits = CreditsField()
    amount = models.PositiveIntegerField(help_text="Price in minor units (cents).")
    currency = models.CharField(max_length=3, default="usd")
    active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["sort_order", "credits"]
        constraints = [
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_pack_credits_gt_0"),
        ]

    def __str__(self) -> str:
        return self.name


class AutoRefill(models.Model):
    """Buy credits automatically when the balance falls below `threshold`."""

    account = models.OneToOneField(CreditAccount, on_delete=models.CASCADE, related_name="auto_refill")
    enabled = models.BooleanField(default=False)
    threshold = CreditsField(default=ZERO)
    pack = models.ForeignKey(CreditPack, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    amount = CreditsField(null=True, blank=True, help_text="Credits per refill, when no pack is chosen.")
    payment_method = models.CharField(max_length=255, blank=True)
    max_refills_per_day = models.PositiveSmallIntegerField(default=3)
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    disabled_reason = models.CharField(max_length=255, blank=True)
    last_failure_code = models.CharField(max_length=64, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(enabled=False) | (Q(pack__isnull=False) ^ Q(amount__isnull=False)),
                name="auto_refill_pack_xor_amount",
            ),
            models.CheckConstraint(condition=Q(threshold__gte=0), name="auto_refill_threshold_gte_0"),
        ]

    def __str__(self) -> str:
        return f"Auto-refill of {self.account_id} ({'on' if self.enabled else 'off'})"


class PurchaseKind(models.TextChoices):
    PACK = "pack", "Pack (off-session)"
    CHECKOUT = "checkout", "Checkout"
    AUTO_REFILL = "auto_refill", "Auto-refill"


class PurchaseStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSING = "processing", "Processing"
    REQUIRES_ACTION = "requires_action", "Requires action"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    REFUNDED = "refunded", "Refunded"


IN_FLIGHT_STATUSES = (PurchaseStatus.PENDING, PurchaseStatus.PROCESSING)


class CreditPurchase(models.Model):
    """A purchase of credits. Saved before Stripe is called: its id is the Stripe idempotency
    key (`purchase:<id>`), so a retried request or task can never charge twice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="purchases")
    kind = models.CharField(max_length=16, choices=PurchaseKind.choices)
    status = models.CharField(max_length=16, choices=PurchaseStatus.choices, default=PurchaseStatus.PENDING)
    pack = models.ForeignKey(CreditPack, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    credits = CreditsField()
    amount = models.PositiveIntegerField(help_text="Price in minor units.")
    currency = models.CharField(max_length=3, default="usd")
    payment_method = models.CharField(max_length=255, blank=True)
    payment_intent_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    checkout_session_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001 - unique when set
    request_fingerprint = models.CharField(max_length=64, blank=True)
    grant = models.OneToOneField(
        CreditGrant, null=True, blank=True, on_delete=models.PROTECT, related_name="purchase"
    )
    # Cumulative minor units refunded or disputed, as Stripe last reported it.
    refunded_amount = models.PositiveIntegerField(default=0)
    credits_reversed = CreditsField(default=ZERO)
    failure_code = models.CharField(max_length=64, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # One auto-refill in flight per account, whatever races.
            models.UniqueConstraint(
                fields=["account"],
                condition=Q(kind="auto_refill", status__in=["pending", "processing"]),
                name="credit_purchase_one_refill_in_flight",
            ),
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="credit_purchase_unique_idempotency_key",
            ),
            models.CheckConstraint(condition=Q(credits__gt=0), name="credit_purchase_credits_gt_0"),
        ]
        indexes = [models.Index(fields=["account", "kind", "created_at"], name="credit_purchase_kind_idx")]

    def __str__(self) -> str:
        return f"Purchase {self.pk} ({self.status})"

    @property
    def stripe_idempotency_key(self) -> str:
        return f"purchase:{self.pk}"


class HoldStatus(models.TextChoices):
    HELD = "held", "Held"
    SETTLED = "settled", "Settled"
    RELEASED = "released", "Released"
    EXPIRED = "expired", "Expired"


class CreditHold(models.Model):
    """Credits reserved for work that has started and not finished (long AI work): they cannot
    be spent by anything else while held. `CreditAccount.held` is the sum of the account's
    active holds, changed under the account lock with them; available = balance - held.

    A settle consumes the actual amount through the ledger (one `consume` row) and releases the
    rest; a release or an expiry gives it all back (no ledger row: nothing was consumed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    account = models.ForeignKey(CreditAccount, on_delete=models.PROTECT, related_name="holds")
    status = models.CharField(max_length=16, choices=HoldStatus.choices, default=HoldStatus.HELD)
    amount = CreditsField(help_text="Credits held.")
    event_name = models.CharField(max_length=64, blank=True)
    quantity = CreditsField(null=True, blank=True, help_text="The estimated quantity the hold is for.")
    actual_quantity = CreditsField(null=True, blank=True)
    consumed = CreditsField(null=True, blank=True)
    transaction = models.OneToOneField(
        CreditTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="hold"
    )
    expires_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="credit_hold_unique_idempotency_key"
            ),
            models.CheckConstraint(condition=Q(amount__gte=0), name="credit_hold_amount_gte_0"),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"], condition=Q(status="held"), name="credit_hold_active_expiry_idx"
            ),
            models.Index(
                fields=["organization", "event_name"],
                condition=Q(status="held"),
                name="credit_hold_active_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"Hold {self.amount} ({self.status})"


class ReconcileRun(models.Model):
    """One run of the reconcile (`manage.py reconcile`, the daily beat task, or staff from the
    admin): what it checked and every drift it found. Kept, so the dashboard shows the last one
    and staff see the history."""

    class Trigger(models.TextChoices):
        BEAT = "beat", "Daily schedule"
        STAFF = "staff", "Staff, from the admin"
        COMMAND = "command", "manage.py reconcile"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        OK = "ok", "No drift"
        DRIFT = "drift", "Drift found"
        FAILED = "failed", "Failed"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    with_stripe = models.BooleanField(default=True)
    summary = models.TextField(blank=True)
    drift_count = models.PositiveIntegerField(default=0)
    drifts = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=255, blank=True)
    started_at = models.DateTimeField(auto_now_add=True, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "reconcile run"

    def __str__(self) -> str:
        return f"Reconcile #{self.pk} {self.started_at:%Y-%m-%d %H:%M}: {self.get_status_display()}"
