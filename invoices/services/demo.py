"""Demo invoices for `make run`: the demo organization's Stripe invoices stored whole, an open
payment-link invoice to pay on the emulator's hosted page, some credit activity, and a statement
of this month to download; once the usage app's demo usage is there (`make run` runs
`seed_demo_invoices` again after `usage_seed_demo`), a statement of the last 30 days with its usage
lines priced by the plan. Idempotent: a second run adds nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone

from billing.models import Organization
from config.exceptions import ApplicationError
from credits.services import credit_consume, credit_grant
from usage.models import UsageRollup

from ..models import Invoice, InvoiceKind
from .payment_links import payment_link_create
from .statements import statement_generate
from .stripe_sync import stripe_invoices_backfill

DEMO_USAGE = [("SMS_SENT", 120), ("AI_MESSAGE_GENERATED", 14), ("CALL_DURATION_SECONDS", 600)]


@dataclass(frozen=True)
class DemoInvoices:
    stripe_invoices: int
    statement: Invoice


def demo_invoices_seed(*, organization: Organization, with_stripe: bool = True) -> DemoInvoices:
    if with_stripe:
        stripe_invoices_backfill(organizations=Organization.objects.filter(pk=organization.pk))
        payment_link_create(
            organization=organization,
            description="Onboarding workshop (demo)",
            amount=45000,
            currency="usd",
            days_until_due=14,
            idempotency_key="demo:payment-link",
            actor="system:demo",
        )
    credit_grant(
        organization=organization,
        amount=2000,
        source="promo",
        reason="Demo welcome credits",
        reference="demo:welcome",
        actor="system:demo",
    )
    for event, quantity in DEMO_USAGE:
        try:
            credit_consume(
                organization=organization,
                event_name=event,
                quantity=quantity,
                reason="Demo usage",
                idempotency_key=f"demo:usage:{event}",
                actor="system:demo",
            )
        except ApplicationError:  # no credits left, or the event has no price here: demo usage is optional
            continue
    statement = (
        Invoice.objects.filter(organization=organization, kind=InvoiceKind.STATEMENT)
        .order_by("sequence")
        .first()
    )
    if statement is None:
        now = timezone.now()
        month_start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        statement = statement_generate(
            organization=organization, period_start=month_start, period_end=now, actor="system:demo"
        )
    statements = Invoice.objects.filter(organization=organization, kind=InvoiceKind.STATEMENT)
    with_usage = statements.filter(lines__kind="usage").order_by("sequence").first()
    if with_usage is None and UsageRollup.objects.filter(organization_id=organization.pk).exists():
        now = timezone.now()
        with_usage = statement_generate(
            organization=organization,
            period_start=(now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0),
            period_end=now,
            actor="system:demo",
        )
    statement = with_usage or statement
    stripe_count = Invoice.objects.filter(organization=organization, kind=InvoiceKind.STRIPE).count()
    return DemoInvoices(stripe_invoices=stripe_count, statement=statement)
