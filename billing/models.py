"""Tenancy: organizations, their members and their API keys."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator
from django.db import models
from django.db.models import Q


class Organization(models.Model):
    """A tenant. dj-stripe's subscriber model: one Stripe customer per organization."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    billing_email = models.EmailField()
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="organizations"
    )
    # The billing state, derived from the Stripe subscription by `organization_billing_refresh`
    # (webhooks keep it in step). No subscription: the free plan, always active.
    plan = models.ForeignKey(
        "Plan", null=True, blank=True, on_delete=models.PROTECT, related_name="organizations"
    )
    plan_interval = models.CharField(max_length=8, blank=True)
    subscription_status = models.CharField(max_length=32, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    # An organization gets one trial: the day it started one (from this product or Stripe).
    trial_used_at = models.DateTimeField(null=True, blank=True)
    trial_days_override = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(730)],
        help_text="Staff only: trial days for this organization instead of the plan's (0: no trial).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self) -> str:
        return self.name

    @property
    def email(self) -> str:
        """dj-stripe reads `email` from the subscriber to create the Stripe customer."""
        return self.billing_email


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    BILLING = "billing", "Billing"
    MEMBER = "member", "Member"


# Higher rank can do everything a lower rank can.
ROLE_RANK = {Role.MEMBER: 0, Role.BILLING: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "organization"], name="membership_unique_user_org"),
        ]
        indexes = [models.Index(fields=["organization", "role"])]

    def __str__(self) -> str:
        return f"{self.user} @ {self.organization} ({self.role})"


class ApiKey(models.Model):
    """A secret for `Authorization: Bearer <key>`. Only a SHA-256 of the key is stored;
    the key itself is shown once, when it is created."""

    PREFIX = "bk_"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ADMIN)
    # The first characters of the key, so people can tell their keys apart.
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        constraints = [
            models.CheckConstraint(condition=~Q(role="owner"), name="apikey_role_not_owner"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class PlatformScope(models.TextChoices):
    """What a platform key may do. A key holds only the scopes it was created with."""

    CREDITS_GRANT = "credits:grant", "Grant, adjust and reverse credits"
    CREDITS_CONSUME = "credits:consume", "Consume credits"
    USAGE_WRITE = "usage:write", "Record usage"
    ORGANIZATIONS_READ = "organizations:read", "Read organizations and their billing data"
    ANALYTICS_READ = "analytics:read", "Read the staff analytics"


class PlatformKey(models.Model):
    """The operator's own credential (the SaaS back end's): it reaches every organization through
    the organization URLs, for the scopes it holds only. Stored and shown like an `ApiKey`."""

    PREFIX = "bpk_"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list, help_text="The scopes the key holds.")
    prefix = models.CharField(max_length=16, db_index=True, editable=False)
    hashed_key = models.CharField(max_length=64, unique=True, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "platform key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class Plan(models.Model):
    """A plan of the catalogue. Limits map a usage metric code to a number per period
    (null or absent: unlimited); features are flags the product checks."""

    FREE = "free"

    code = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    included_credits = models.DecimalField(
        max_digits=20,
        decimal_places=4,
        default=0,
        help_text="Credits granted each paid period; they expire at its end.",
    )
    limits = models.JSONField(
        default=dict, blank=True, help_text='Per usage metric, e.g. {"SMS_SENT": 1000}.'
    )
    features = models.JSONField(default=list, blank=True, help_text='Feature flags, e.g. ["api_access"].')
    trial_days = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(730)], help_text="Days of the trial; 0: no trial."
    )
    trial_grants_credits = models.BooleanField(
        default=False,
        help_text=(
            "Grant the included credits for the trial too (once per organization; the unspent part "
            "is taken back when the subscription is canceled before its first payment)."
        ),
    )
    active = models.BooleanField(
        default=True, help_text="Inactive plans cannot be chosen by new subscribers."
    )
    sort_order = models.PositiveIntegerField(default=0)
    stripe_product_id = models.CharField(max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "code"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_free(self) -> bool:
        return self.code == self.FREE


class PlanPrice(models.Model):
    """What a plan costs per interval, in minor units, and the Stripe price it maps to."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="prices")
    interval = models.CharField(max_length=8, choices=Interval.choices)
    amount = models.PositiveIntegerField(help_text="In minor units (cents): 2900 is 29.00.")
    currency = models.CharField(max_length=3, default="usd")
    stripe_price_id = models.CharField(max_length=255, blank=True, db_index=True, editable=False)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["plan__sort_order", "interval"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "interval", "currency"], name="planprice_unique_interval"
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="planprice_currency_iso"),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.interval} {self.amount / 100:.2f} {self.currency.upper()}"

    @property
    def lookup_key(self) -> str:
        """The Stripe lookup key that makes catalogue sync idempotent."""
        suffix = "" if self.currency == "usd" else f"_{self.currency}"
        return f"plan_{self.plan.code}_{self.interval}{suffix}"


class PlanMeteredPrice(models.Model):
    """Usage of a metric above the plan's limit (its included quantity), billed in arrears on
    each renewal invoice through a Stripe metered price on a Stripe meter. With one, the limit
    no longer refuses work: what goes past it is billed. `metric` is a usage metric code (the
    usage app's `Metric`); `manage.py sync_stripe_catalog` creates the meter and the price."""

    plan = models.ForeignKey(Plan, on_delete=models.CASCADE, related_name="metered_prices")
    metric = models.CharField(max_length=64, help_text="A usage metric code, e.g. SMS_SENT.")
    meter_event_name = models.CharField(
        max_length=100, help_text="The Stripe meter's event name (the metric's meter event name)."
    )
    unit_amount = models.PositiveIntegerField(help_text="Per unit above the limit, in minor units.")
    currency = models.CharField(max_length=3, default="usd")
    interval = models.CharField(max_length=8, choices=Interval.choices, default=Interval.MONTH)
    active = models.BooleanField(default=True)
    stripe_meter_id = models.CharField(max_length=255, blank=True, editable=False)
    stripe_price_id = models.CharField(max_length=255, blank=True, db_index=True, editable=False)

    class Meta:
        ordering = ["plan__sort_order", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "metric", "interval", "currency"], name="planmeteredprice_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan.name} {self.metric} overage"

    @property
    def lookup_key(self) -> str:
        return f"plan_{self.plan.code}_{self.interval}_overage_{self.metric.lower()}"


class BillingNotice(models.Model):
    """The notice outbox: one row per e-mail the billing system decided to send, keyed so that a
    webhook delivered five times sends one e-mail (e.g. `payment_failed:in_123:1`). Who receives
    it follows from its audience (`billing.services.notices`)."""

    class Kind(models.TextChoices):
        TRIAL_ENDING = "trial_ending", "Trial ending"
        PAYMENT_FAILED = "payment_failed", "Payment failed"
        SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription canceled"
        LOW_BALANCE = "low_balance", "Low credit balance"
        AUTO_REFILL_DISABLED = "auto_refill_disabled", "Auto-refill turned off"
        AUTO_REFILL_ACTION_REQUIRED = "auto_refill_action_required", "Auto-refill needs authentication"
        USAGE_WARNING = "usage_warning", "Usage at 80% of a limit"
        USAGE_LIMIT_REACHED = "usage_limit_reached", "Usage limit reached"
        # Staff alerts (audience staff, to BILLING_ADMIN_EMAILS)
        STAFF_PAYMENT_FAILED = "staff_payment_failed", "Staff: a payment failed"
        STAFF_SUBSCRIPTION_CANCELED = "staff_subscription_canceled", "Staff: a subscription was canceled"
        STAFF_DISPUTE = "staff_dispute", "Staff: a payment was disputed"
        STAFF_UNUSUAL_CONSUMPTION = "staff_unusual_consumption", "Staff: unusual credit consumption"
        STAFF_RECONCILE_DRIFT = "staff_reconcile_drift", "Staff: the reconcile found drift"

    class Audience(models.TextChoices):
        ORGANIZATION = "organization", "The organization's billing contacts"
        STAFF = "staff", "Staff (BILLING_ADMIN_EMAILS)"

    # Null only for staff notices about no one organization (a reconcile drift).
    organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="billing_notices"
    )
    kind = models.CharField(max_length=40, choices=Kind.choices)
    audience = models.CharField(max_length=16, choices=Audience.choices, default=Audience.ORGANIZATION)
    key = models.CharField(max_length=255, unique=True)
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    recipients = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(sent_at__isnull=True), name="billing_notice_unsent_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.organization or 'staff'}"


class PaymentMethodOwner(models.Model):
    """Which organization a Stripe PaymentMethod was first attached to. A card belongs to one
    customer for life: once detached it is never attached to another organization."""

    payment_method_id = models.CharField(max_length=255, primary_key=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    customer_id = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.payment_method_id} of {self.organization_id}"


class TaskOutbox(models.Model):
    """A Celery task that could not be sent because the broker (Redis) was away, kept until
    `config.task_outbox.task_outbox_dispatch` (beat, every minute) sends it again."""

    task = models.CharField(max_length=200)
    task_id = models.CharField(max_length=64)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="task_outbox_pending_idx", condition=Q(dispatched_at__isnull=True)
            ),
            models.Index(fields=["dispatched_at"], name="task_outbox_dispatched_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.task_id}"


class AuditEntry(models.Model):
    """The staff audit log: one row per back-office action (who, when, what, why, before and
    after). Append-only, enforced by a database trigger (migration `audit_log`) like the credit
    ledger; written only by `billing.services.audit_record`, in the action's own transaction.

    No foreign keys on purpose: deleting a user or an organization must not have to touch (and be
    refused by) the log, so the actor and the organization are kept as ids and labels."""

    class Action(models.TextChoices):
        CREDITS_GRANT = "credits_grant", "Grant credits"
        CREDITS_ADJUST = "credits_adjust", "Adjust credits"
        SUBSCRIPTION_CANCEL = "subscription_cancel", "Cancel subscription"
        SUBSCRIPTION_RESUME = "subscription_resume", "Resume subscription"
        PAYMENT_REFUND = "payment_refund", "Refund a payment"
        INVOICE_RESEND = "invoice_resend", "Resend an invoice"
        INVOICE_VOID = "invoice_void", "Void an invoice"
        INVOICE_MARK_UNCOLLECTIBLE = "invoice_mark_uncollectible", "Mark an invoice uncollectible"
        INVOICE_DOWNLOAD = "invoice_download_pdf", "Download an invoice PDF"
        WEBHOOK_REPLAY = "webhook_replay", "Replay a webhook delivery"
        CATALOGUE_SYNC = "catalogue_sync", "Run the catalogue sync"
        METER_SYNC = "meter_sync", "Run the meter sync"
        RECONCILE = "reconcile", "Run the reconcile"

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="The staff user's id.")
    actor = models.CharField(max_length=255, help_text="Who did it, as shown then (e-mail).")
    action = models.CharField(max_length=40, choices=Action.choices, db_index=True)
    organization_id = models.UUIDField(null=True, blank=True, db_index=True)
    organization_name = models.CharField(max_length=200, blank=True)
    target = models.CharField(max_length=255, blank=True, help_text="What it was done to (a Stripe id, ...).")
    reason = models.TextField(blank=True)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    # What the action did, when it can be done twice by a double submit (`refund:<Stripe refund id>`):
    # the second time writes no second row.
    key = models.CharField(max_length=255, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        permissions = [("run_backoffice_actions", "Can run back-office actions (credits, refunds, ...)")]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor} at {self.created_at:%Y-%m-%d %H:%M}"


class BackofficeJob(models.Model):
    """A long staff action run by a Celery task (catalogue sync, meter sync, reconcile), with its
    progress for the admin page that shows it."""

    class Kind(models.TextChoices):
        CATALOGUE_SYNC = "catalogue_sync", "Catalogue sync"
        METER_SYNC = "meter_sync", "Meter sync"
        RECONCILE = "reconcile", "Reconcile"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    requested_by = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "back-office job"

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        return (
            100
            if self.status == self.Status.SUCCEEDED
            else int(100 * self.done / self.total)
            if self.total
            else 0
        )


class OrganizationPage(Organization):
    """The back office's organization page (`invoices.backoffice.admin`): a proxy, so the page has
    its own list and permissions in the admin without a table of its own."""

    class Meta:
        proxy = True
        verbose_name = "organization page"
        verbose_name_plural = "organization pages (everything about one organization)"
