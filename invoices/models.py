"""Invoices of an organization: Stripe's, kept whole (one row per Stripe invoice, in step with the
invoice webhooks), and statements we generate (a period's usage and credits).

Money is in minor units (integers), credits are Decimals with 4 places. A statement is numbered per
organization without gaps (`StatementSequence`) and immutable once issued: a database trigger
(migration 0002) refuses to change or delete an issued statement or any of its lines.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q

from billing.models import Organization
from credits.models import CreditsField


class InvoiceKind(models.TextChoices):
    STRIPE = "stripe", "Stripe invoice"
    STATEMENT = "statement", "Statement"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    OPEN = "open", "Open"
    PAID = "paid", "Paid"
    VOID = "void", "Void"
    UNCOLLECTIBLE = "uncollectible", "Uncollectible"
    ISSUED = "issued", "Issued"  # statements


# How far along Stripe's invoice life a status is: a re-read never moves an invoice back
# (draft -> open -> uncollectible -> paid | void; paid and void are final).
STATUS_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}


class Invoice(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=16, choices=InvoiceKind.choices)
    status = models.CharField(max_length=16, choices=InvoiceStatus.choices)
    number = models.CharField(max_length=64, blank=True, db_index=True)
    # Statements: the organization's gap-free statement number (1, 2, 3, ...).
    sequence = models.PositiveIntegerField(null=True, blank=True, editable=False)
    description = models.TextField(blank=True)
    currency = models.CharField(max_length=3, default="usd")
    subtotal = models.BigIntegerField(default=0)
    tax = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    amount_due = models.BigIntegerField(default=0)
    amount_paid = models.BigIntegerField(default=0)
    amount_remaining = models.BigIntegerField(default=0)
    tax_lines = models.JSONField(default=list, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    due_date = models.DateTimeField(null=True, blank=True)
    # The billing details as they were when the invoice was made (what the document shows).
    customer_name = models.CharField(max_length=255, blank=True)
    customer_email = models.CharField(max_length=255, blank=True)
    customer_address = models.JSONField(null=True, blank=True)
    # Stripe invoices
    stripe_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_customer_id = models.CharField(max_length=255, blank=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    billing_reason = models.CharField(max_length=64, blank=True)
    collection_method = models.CharField(max_length=32, blank=True)
    hosted_url = models.URLField(max_length=1000, blank=True)
    stripe_pdf_url = models.URLField(max_length=1000, blank=True)
    finalized_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    marked_uncollectible_at = models.DateTimeField(null=True, blank=True)
    # True once the complete lines of a finalized invoice are stored (they never change after).
    lines_final = models.BooleanField(default=False)
    stripe_synced_at = models.DateTimeField(null=True, blank=True)
    # Statements
    include_usage = models.BooleanField(default=False)
    include_credits = models.BooleanField(default=False)
    opening_credits = CreditsField(null=True, blank=True)
    closing_credits = CreditsField(null=True, blank=True)
    created_by = models.CharField(max_length=200, blank=True)
    # The period close that issued this statement (one per organization and close).
    period_close = models.ForeignKey(
        "PeriodClose", null=True, blank=True, on_delete=models.PROTECT, related_name="statements"
    )
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "period_close"],
                condition=Q(period_close__isnull=False),
                name="invoice_one_statement_per_close",
            ),
            models.UniqueConstraint(
                fields=["organization", "sequence"],
                condition=Q(sequence__isnull=False),
                name="invoice_statement_unique_sequence",
            ),
            models.CheckConstraint(
                condition=Q(kind="statement") | Q(stripe_id__isnull=False),
                name="invoice_stripe_has_stripe_id",
            ),
            models.CheckConstraint(
                condition=Q(kind="stripe") | (Q(sequence__isnull=False) & Q(stripe_id__isnull=True)),
                name="invoice_statement_numbered",
            ),
            models.CheckConstraint(condition=Q(currency__regex=r"^[a-z]{3}$"), name="invoice_currency_iso"),
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="invoice_org_created_idx"),
            models.Index(fields=["organization", "kind", "status"], name="invoice_org_kind_status_idx"),
        ]

    def __str__(self) -> str:
        return self.number or self.stripe_id or str(self.pk)

    @property
    def is_statement(self) -> bool:
        return self.kind == InvoiceKind.STATEMENT


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        SUBSCRIPTION = "subscription", "Subscription"
        PRORATION = "proration", "Proration"
        INVOICE_ITEM = "invoice_item", "Invoice item"
        USAGE = "usage", "Usage"
        USAGE_ADJUSTMENT = "usage_adjustment", "Late usage (adjustment)"
        CREDIT_PURCHASE = "credit_purchase", "Credit purchase"
        CREDIT_GRANT = "credit_grant", "Credits granted"
        CREDIT_CONSUMPTION = "credit_consumption", "Credits used"
        CREDIT_EXPIRY = "credit_expiry", "Credits expired"
        CREDIT_ADJUSTMENT = "credit_adjustment", "Credit adjustment"
        CREDIT_REFUND = "credit_refund", "Credits given back"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=24, choices=Kind.choices)
    stripe_id = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    quantity = models.DecimalField(max_digits=24, decimal_places=4, null=True, blank=True)
    amount = models.BigIntegerField(default=0, help_text="Minor units.")
    currency = models.CharField(max_length=3, default="usd")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    metric = models.CharField(max_length=64, blank=True)
    credits = CreditsField(null=True, blank=True, help_text="Signed credits this line moved.")
    price_id = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["invoice", "position"]
        constraints = [
            models.UniqueConstraint(fields=["invoice", "position"], name="invoice_line_unique_position"),
        ]

    def __str__(self) -> str:
        return f"{self.description} {self.amount}"


class StatementSequence(models.Model):
    """The last statement number of an organization. Incremented in the transaction that issues
    the statement (an upsert holding the row lock until commit), so numbers have no gaps: a
    rolled-back statement gives its number back."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last_number = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.organization_id}: {self.last_number}"


class InvoiceSend(models.Model):
    """One e-mail of an invoice (HTML body, PDF attached): logged before it is sent, sent after
    commit by a task, and by a beat task when that task was lost (at least once, like the notice
    outbox). A resend is a new row, asked for explicitly."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="sends")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    recipients = models.JSONField(default=list)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    resend = models.BooleanField(default=False)
    requested_by = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="invoice_send_queued_idx")
        ]

    def __str__(self) -> str:
        return f"{self.invoice} to {', '.join(self.recipients)} ({self.status})"


class PaymentLink(models.Model):
    """A one-off amount billed through a Stripe-hosted invoice (`POST /payment-links`). Saved
    before Stripe is called: its id names the Stripe idempotency keys, so a retry never makes a
    second invoice."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=500)
    amount = models.PositiveBigIntegerField(help_text="Minor units.")
    currency = models.CharField(max_length=3)
    days_until_due = models.PositiveSmallIntegerField()
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    request_fingerprint = models.CharField(max_length=64, blank=True)
    invoice = models.OneToOneField(
        Invoice, null=True, blank=True, on_delete=models.PROTECT, related_name="payment_link"
    )
    created_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="payment_link_unique_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description} {self.amount} {self.currency}"

    @property
    def stripe_key(self) -> str:
        return f"payment_link:{self.pk}"


class InvoiceAction(models.Model):
    """What staff did to an invoice (resend, download, void, mark uncollectible): the invoices'
    own audit trail, written by `invoices.services.invoice_action_log`."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="actions")
    action = models.CharField(max_length=32)
    actor = models.CharField(max_length=200)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} of {self.invoice} by {self.actor}"


class PeriodClose(models.Model):
    """The close of a period for every organization: one statement each, issued by independent
    tasks (one per organization, safe to run twice). Progress is the number of statements that
    point at it; the beat task dispatches the organizations still missing one until none is."""

    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    organizations = models.PositiveIntegerField(default=0, help_text="Organizations to close.")
    dispatched_at = models.DateTimeField(null=True, blank=True)
    dispatches = models.PositiveIntegerField(default=0)
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-period_start"]
        constraints = [
            models.UniqueConstraint(fields=["period_start", "period_end"], name="period_close_unique_period"),
        ]

    def __str__(self) -> str:
        return f"Close of {self.period_start:%Y-%m-%d} to {self.period_end:%Y-%m-%d}"


class StatementUsage(models.Model):
    """The usage watermark: what a billing statement (one issued by a period close) billed of one
    metric's usage in one period. A usage line writes one row for its own period; a late-usage
    adjustment writes one row for the earlier period it bills, with only what it adds. The sum
    of the rows of an (organization, metric, period) is what has been billed of it, so the next
    billing statement bills exactly the difference between the rollups now and that sum: late
    usage lands once, whatever replays or repeats the close."""

    statement = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="usage_billed")
    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="+")
    metric = models.ForeignKey("usage.Metric", on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    quantity = models.DecimalField(max_digits=24, decimal_places=4, help_text="The metric's value it adds.")
    events = models.BigIntegerField()
    credits = models.DecimalField(max_digits=24, decimal_places=4)
    overage = models.BigIntegerField(default=0, help_text="Whole units above the plan's limit it adds.")
    amount = models.BigIntegerField(default=0, help_text="Minor units.")
    currency = models.CharField(max_length=3, default="usd")
    late = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["statement", "metric", "period_start"], name="statement_usage_unique_line"
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "period_end"], name="statement_usage_org_end_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.metric_id} {self.period_start:%Y-%m-%d}: {self.quantity}"
