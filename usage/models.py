"""Usage metering: metrics, events, hourly rollups, Stripe meter sync state.

Every table that holds an organization's usage has `organization_id` first in its primary key
(Django 5.2's `CompositePrimaryKey`), so the tables can be distributed by organization on Citus
with every organization's rows on one node. `UsageEvent` is partitioned by month on
`occurred_at` (PostgreSQL declarative partitioning, created by migration `0001` in raw SQL; the
partitions by `usage.partitions`). Its rows are written in bulk by one SQL statement per batch
(`usage.services.recording`), which also writes the idempotency keys and the rollups, so the
rollups are always in step with the events (same transaction).

The admin cannot register models with a composite primary key; `UsageEventRow` and
`UsageRollupRow` are unmanaged read-only views of the same tables for it.
"""

from __future__ import annotations

import uuid

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q

from billing.models import Organization
from credits.models import CreditPrice, CreditsField


class Aggregation(models.TextChoices):
    SUM = "sum", "Sum of quantities"
    COUNT = "count", "Number of events"
    MAX = "max", "Largest quantity"
    UNIQUE = "unique", "Distinct resource ids"


class Metric(models.Model):
    """A usage type. Its code is the one vocabulary: plan limits (`Plan.limits`), credit prices
    (`CreditPrice.event_name`, tied by a database check) and metered prices name metrics by it."""

    code = models.CharField(
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[A-Z][A-Z0-9_]*$", "Upper case letters, digits and underscores.")],
    )
    name = models.CharField(max_length=100)
    description = models.CharField(max_length=300, blank=True)
    unit = models.CharField(max_length=32, help_text="What one unit is: message, second, MB, token, ...")
    aggregation = models.CharField(max_length=8, choices=Aggregation.choices, default=Aggregation.SUM)
    credit_price = models.OneToOneField(
        CreditPrice,
        to_field="event_name",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="metric",
        help_text="The credit price this metric charges (the price named by the same code).",
    )
    stripe_meter_event_name = models.CharField(
        max_length=100, blank=True, help_text="The Stripe meter event name usage is sent under."
    )
    active = models.BooleanField(default=True)
    sort_order = models.PositiveSmallIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sort_order", "code"]
        constraints = [
            # The price a metric charges is the one named by its code: one vocabulary.
            models.CheckConstraint(
                condition=Q(credit_price__isnull=True) | Q(credit_price=F("code")),
                name="metric_credit_price_is_its_code",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class UsageEventFields(models.Model):
    """The columns of a usage event (see `UsageEvent`)."""

    id = models.UUIDField(default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    quantity = CreditsField()
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=255)
    user_id = models.CharField(max_length=255, blank=True, help_text="The SaaS's own user id.")
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=255, blank=True)
    dimensions = models.JSONField(default=dict, blank=True)
    credits = CreditsField(default=0, help_text="Credits charged for it (track and reservations).")

    class Meta:
        abstract = True


class UsageEvent(UsageEventFields):
    """One attributed usage event. Partitioned by month on `occurred_at`; the primary key is
    (organization_id, occurred_at, id) because a partitioned table's keys include the partition
    column. Idempotency keys live in `UsageEventKey` (a unique index on a partitioned table
    would have to include `occurred_at`, and a replay may carry another one). No foreign key
    constraints: the bulk insert checks the organization and metric itself."""

    pk = models.CompositePrimaryKey("organization_id", "occurred_at", "id")

    class Meta:
        db_table = "usage_usageevent"

    def __str__(self) -> str:
        return f"{self.metric_id} x {self.quantity} at {self.occurred_at}"


class UsageEventRow(UsageEventFields):
    """The admin's read-only view of `UsageEvent` (the admin needs a single-column key)."""

    id = models.UUIDField(primary_key=True, editable=False)

    class Meta:
        managed = False
        db_table = "usage_usageevent"
        verbose_name = "usage event"
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.metric_id} x {self.quantity} at {self.occurred_at}"


class UsageEventKey(models.Model):
    """One idempotency key per organization, for ever: the same key never records twice."""

    pk = models.CompositePrimaryKey("organization_id", "idempotency_key")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    idempotency_key = models.CharField(max_length=255)
    event_id = models.UUIDField()
    occurred_at = models.DateTimeField()
    # A hash of the normalized event, so a replay with another body is told apart.
    fingerprint = models.CharField(max_length=32)
    created_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.idempotency_key


class UsageRollupFields(models.Model):
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    hour = models.DateTimeField(help_text="The hour (UTC) the events occurred in.")
    quantity = models.DecimalField(max_digits=24, decimal_places=4, default=0)
    events = models.BigIntegerField(default=0)
    quantity_max = CreditsField(default=0)
    credits = models.DecimalField(max_digits=24, decimal_places=4, default=0)

    class Meta:
        abstract = True


class UsageRollup(UsageRollupFields):
    """The events of one organization, metric and hour, added up in the same statement that
    inserts them. Every read of usage (quotas, `GET /usage`, series, stats) comes from here."""

    pk = models.CompositePrimaryKey("organization_id", "metric_id", "hour")

    class Meta:
        db_table = "usage_usagerollup"

    def __str__(self) -> str:
        return f"{self.metric_id} at {self.hour}: {self.quantity}"


class UsageRollupDay(models.Model):
    """The hourly rollups of one organization, metric and day (UTC), added up in the same
    statement: a period's usage reads whole days here and only its partial first and last days
    from the hourly rows (about 80 rows per metric for a month instead of 720)."""

    pk = models.CompositePrimaryKey("organization_id", "metric_id", "day")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    day = models.DateTimeField()
    quantity = models.DecimalField(max_digits=24, decimal_places=4, default=0)
    events = models.BigIntegerField(default=0)
    quantity_max = CreditsField(default=0)
    credits = models.DecimalField(max_digits=24, decimal_places=4, default=0)

    def __str__(self) -> str:
        return f"{self.metric_id} on {self.day:%Y-%m-%d}: {self.quantity}"


class UsageRollupRow(UsageRollupFields):
    """The admin's read-only view of `UsageRollup`."""

    # Not unique on its own; the admin uses it only to order rows, never to look one up.
    hour = models.DateTimeField(primary_key=True)

    class Meta:
        managed = False
        db_table = "usage_usagerollup"
        verbose_name = "usage rollup"
        ordering = ["-hour"]

    def __str__(self) -> str:
        return f"{self.metric_id} at {self.hour}: {self.quantity}"


class UsageDistinct(models.Model):
    """The distinct resource ids of `unique` metrics per hour, for their counts."""

    pk = models.CompositePrimaryKey("organization_id", "metric_id", "hour", "value")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    hour = models.DateTimeField()
    value = models.CharField(max_length=255)

    def __str__(self) -> str:
        return self.value


class UsageDimensionRollup(models.Model):
    """Per organization, metric and day: the usage of each value of the rolled-up dimension keys
    (`USAGE_ROLLUP_DIMENSIONS`, e.g. platform), written with the events; `GET /usage/stats`
    reads its top values from here."""

    pk = models.CompositePrimaryKey("organization_id", "metric_id", "day", "key", "value")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    day = models.DateTimeField()
    key = models.CharField(max_length=64)
    value = models.CharField(max_length=100)
    quantity = models.DecimalField(max_digits=24, decimal_places=4, default=0)
    events = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.key}={self.value}"


class MeterEventStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    DUPLICATE = "duplicate", "Already at Stripe"
    FAILED = "failed", "Refused by Stripe"
    EXPIRED = "expired", "Outside Stripe's 35-day window"


class UsageMeterReport(models.Model):
    """How much of a metric's usage above the plan's limit has been reported to Stripe for one
    organization and billing period (the sync's high-water mark)."""

    pk = models.CompositePrimaryKey("organization_id", "metric_id", "period_start")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    included = models.BigIntegerField(default=0)
    reported = models.BigIntegerField(default=0, help_text="Units above the limit sent or queued.")
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.metric_id} from {self.period_start}: {self.reported} reported"


class UsageMeterEvent(models.Model):
    """A meter event to send, saved before Stripe is called (the outbox): its identifier is
    derived from organization, metric, period and the running total it brings the period to,
    so a resend after a crash is refused by Stripe as a duplicate instead of counted twice."""

    pk = models.CompositePrimaryKey("organization_id", "identifier")
    organization = models.ForeignKey(
        Organization, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    identifier = models.CharField(max_length=100)
    metric = models.ForeignKey(
        Metric, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    meter_event_name = models.CharField(max_length=100)
    customer_id = models.CharField(max_length=255)
    period_start = models.DateTimeField()
    value = models.BigIntegerField()
    timestamp = models.DateTimeField()
    status = models.CharField(
        max_length=16, choices=MeterEventStatus.choices, default=MeterEventStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="usage_meter_event_pending_idx"
            )
        ]

    def __str__(self) -> str:
        return f"{self.identifier} ({self.status})"


class SyncStatus(models.TextChoices):
    IDLE = "idle", "Idle"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FAILED = "failed", "Failed"


class UsageSyncState(models.Model):
    """Per organization: the Stripe meter sync's last run and progress (shown in the admin)."""

    organization = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.CASCADE, related_name="usage_sync_state"
    )
    status = models.CharField(max_length=16, choices=SyncStatus.choices, default=SyncStatus.IDLE)
    progress_done = models.PositiveIntegerField(default=0)
    progress_total = models.PositiveIntegerField(default=0)
    events_sent = models.PositiveBigIntegerField(default=0, help_text="Meter events sent, ever.")
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        verbose_name = "usage sync state"

    def __str__(self) -> str:
        return f"Meter sync of {self.organization_id}: {self.status}"

    @property
    def progress(self) -> str:
        return f"{self.progress_done}/{self.progress_total}" if self.progress_total else "-"
