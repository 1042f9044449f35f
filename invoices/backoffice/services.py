"""Staff actions of the back office. Each goes through the owning app's service and writes one
audit row (`billing.services.audit_record`) with who, what, why, before and after.

The rule for every action: validate first, then act, then record, so a refused action changes
nothing and writes no audit row. Actions on our own tables run in one transaction with their
audit row; actions on Stripe call Stripe first (no transaction held across the call) and record
the audit row with Stripe's answer right after. Actions that move money or credits require a
reason."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.models import AuditEntry, BackofficeJob, Organization
from billing.selectors import subscription_live_get
from billing.services import (
    audit_reason_clean,
    audit_record,
    backoffice_job_create,
    payment_refund_stripe,
    subscription_cancel,
    subscription_resume,
    webhook_delivery_replay,
)
from config.exceptions import ValidationFailed
from credits.models import CreditPurchase
from credits.selectors import credit_summary_get
from credits.services import credit_adjust, credit_grant, credit_purchase_reverse

from ..models import Invoice
from ..services import invoice_resend

Action = AuditEntry.Action


def _credits(organization: Organization) -> dict:
    summary = credit_summary_get(organization=organization)
    return {"balance": summary.balance, "held": summary.held, "available": summary.available}


def _before(after: dict, delta: Decimal) -> dict:
    """The figures just before a ledger row of `delta`, from those just after it (exact, and
    right under concurrency: both come from the row's own locked transaction)."""
    return {
        "balance": after["balance"] - delta,
        "held": after["held"],
        "available": after["available"] - delta,
    }


def _positive_credits(amount) -> Decimal:
    try:
        value = Decimal(str(amount))
    except ArithmeticError:
        raise ValidationFailed(fields={"amount": ["A number of credits is required."]}) from None
    if not value.is_finite() or value <= 0:
        raise ValidationFailed(fields={"amount": ["Must be more than zero."]})
    return value


# --------------------------------------------------------------------------- credits
def backoffice_credits_grant(
    *,
    actor,
    organization: Organization,
    amount,
    reason: str,
    idempotency_key: str,
    expires_at: datetime | None = None,
) -> AuditEntry | None:
    """Grant credits (source `manual`). The form's idempotency key makes a double submit grant
    once and log once (the replay answers None)."""
    reason = audit_reason_clean(reason, required=True)
    amount = _positive_credits(amount)
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationFailed(fields={"expires_at": ["Must be in the future."]})
    with transaction.atomic():
        result = credit_grant(
            organization=organization,
            amount=amount,
            source="manual",
            reason=reason,
            expires_at=expires_at,
            idempotency_key=f"backoffice:{idempotency_key}",
            actor=f"staff:{actor.pk}",
        )
        if not result.created:
            return None
        after = _credits(organization)  # read under the account lock the grant took
        return audit_record(
            actor=actor,
            action=Action.CREDITS_GRANT,
            reason=reason,
            organization=organization,
            target=f"grant {result.grant.pk}",
            before=_before(after, result.transaction.amount),
            after={**after, "granted": amount, "expires_at": expires_at},
        )


def backoffice_credits_adjust(
    *, actor, organization: Organization, amount, reason: str, idempotency_key: str
) -> AuditEntry | None:
    """Add (positive) or take away (negative) credits through an `adjust` ledger row."""
    reason = audit_reason_clean(reason, required=True)
    with transaction.atomic():
        result = credit_adjust(
            organization=organization,
            amount=amount,
            reason=reason,
            actor=f"staff:{actor.pk}",
            idempotency_key=f"backoffice:{idempotency_key}",
        )
        if result.replayed:
            return None
        after = _credits(organization)  # read under the account lock the adjustment took
        return audit_record(
            actor=actor,
            action=Action.CREDITS_ADJUST,
            reason=reason,
            organization=organization,
            target=f"transaction {result.transaction.pk}",
            before=_before(after, result.transaction.amount),
            after={**after, "adjusted_by": result.transaction.amount},
        )


# --------------------------------------------------------------------------- subscriptions
def _subscription_state(organization: Organization) -> dict:
    organization.refresh_from_db()
    live = subscription_live_get(organization=organization)
    data = live.stripe_data if live is not None else {}
    return {
        "subscription": data.get("id") or organization.stripe_subscription_id,
        "status": data.get("status") or organization.subscription_status or "none",
        "cancel_at_period_end": bool(data.get("cancel_at_period_end")),
        "plan": organization.plan.code if organization.plan_id else "free",
    }


def backoffice_subscription_cancel(
    *, actor, organization: Organization, immediately: bool, reason: str
) -> AuditEntry:
    """Cancel at period end (the default) or at once. At once stops the service being paid for:
    a reason is required either way."""
    reason = audit_reason_clean(reason, required=True)
    before = _subscription_state(organization)
    subscription = subscription_cancel(organization=organization, immediately=immediately)
    return audit_record(
        actor=actor,
        action=Action.SUBSCRIPTION_CANCEL,
        reason=reason,
        organization=organization,
        target=f"subscription {subscription.id}",
        before=before,
        after={**_subscription_state(organization), "immediately": immediately},
    )


def backoffice_subscription_resume(*, actor, organization: Organization, reason: str = "") -> AuditEntry:
    """Undo a cancellation at period end. Refused when none is scheduled (nothing would change)."""
    reason = audit_reason_clean(reason, required=False)
    before = _subscription_state(organization)
    if not before["cancel_at_period_end"]:
        raise ValidationFailed(fields={"subscription": ["No cancellation is scheduled: nothing to resume."]})
    subscription = subscription_resume(organization=organization)
    return audit_record(
        actor=actor,
        action=Action.SUBSCRIPTION_RESUME,
        reason=reason,
        organization=organization,
        target=f"subscription {subscription.id}",
        before=before,
        after=_subscription_state(organization),
    )


# --------------------------------------------------------------------------- refunds
@dataclass(frozen=True)
class RefundOutcome:
    entry: AuditEntry
    refund_id: str
    amount: int
    credits_taken_back: Decimal


def backoffice_payment_refund(
    *,
    actor,
    organization: Organization,
    payment_intent_id: str,
    amount: int | None,
    reason: str,
    idempotency_key: str,
) -> RefundOutcome:
    """Refund a payment on Stripe, all of what is left or `amount` minor units. When the payment
    bought credits, the unspent part of them proportional to the refund is taken back at once,
    the way the `charge.refunded` webhook does (the same service, cumulative, so the webhook
    arriving later changes nothing)."""
    reason = audit_reason_clean(reason, required=True)
    payment_intent_id = (payment_intent_id or "").strip()
    if not payment_intent_id.startswith("pi_") or len(payment_intent_id) > 255:
        raise ValidationFailed(fields={"payment_intent": ["A PaymentIntent id (pi_...) is required."]})
    before_credits = _credits(organization)
    refund = payment_refund_stripe(
        organization=organization,
        payment_intent_id=payment_intent_id,
        amount=amount,
        idempotency_key=idempotency_key,
    )
    with transaction.atomic():
        taken_back = Decimal(0)
        purchase = CreditPurchase.objects.filter(
            payment_intent_id=payment_intent_id, organization=organization
        ).first()
        if purchase is not None:
            reversed_before = purchase.credits_reversed
            purchase = credit_purchase_reverse(
                payment_intent_id=payment_intent_id,
                refunded_amount=refund.amount_refunded,
                reason=f"Refund by staff: {reason}",
            )
            taken_back = purchase.credits_reversed - reversed_before
        entry = audit_record(
            actor=actor,
            action=Action.PAYMENT_REFUND,
            reason=reason,
            organization=organization,
            target=f"payment {payment_intent_id} (refund {refund.refund_id})",
            key=f"refund:{refund.refund_id}",
            before={"amount_refunded": refund.amount_refunded_before, **before_credits},
            after={
                "amount_refunded": refund.amount_refunded,
                "refunded_now": refund.amount,
                "currency": refund.currency,
                "credits_taken_back": taken_back,
                **_credits(organization),
            },
        )
    return RefundOutcome(
        entry=entry, refund_id=refund.refund_id, amount=refund.amount, credits_taken_back=taken_back
    )


# --------------------------------------------------------------------------- invoices, webhooks
def backoffice_invoice_resend(*, actor, invoice: Invoice, reason: str = "", email: str | None = None):
    """Send the invoice again; `invoices.services.invoice_action_log` writes the audit row."""
    reason = audit_reason_clean(reason, required=False)
    return invoice_resend(invoice=invoice, actor=f"staff:{actor.pk}", email=email, reason=reason)


def backoffice_webhook_replay(*, actor, trigger_id: int, reason: str = "") -> AuditEntry:
    """Process a failed webhook delivery again (`billing.services.webhook_delivery_replay`). A
    replay that fails again is refused (its error is kept on the delivery) and logs nothing."""
    return webhook_delivery_replay(actor=actor, trigger_id=trigger_id, reason=reason)


# --------------------------------------------------------------------------- long jobs
JOB_ACTIONS = {
    BackofficeJob.Kind.CATALOGUE_SYNC: Action.CATALOGUE_SYNC,
    BackofficeJob.Kind.METER_SYNC: Action.METER_SYNC,
    BackofficeJob.Kind.RECONCILE: Action.RECONCILE,
}


def backoffice_job_run(*, actor, kind: str, reason: str = "") -> BackofficeJob:
    """Queue a long action (catalogue sync, meter sync, reconcile) as a Celery task after commit;
    its page shows the progress. The audit row records the request."""
    from .tasks import backoffice_job_task

    if kind not in JOB_ACTIONS:
        raise ValidationFailed(fields={"kind": [f"Unknown job {kind!r}."]})
    reason = audit_reason_clean(reason, required=False)
    with transaction.atomic():
        job = backoffice_job_create(kind=kind, requested_by=f"{actor.get_username()} (staff #{actor.pk})")
        audit_record(
            actor=actor,
            action=JOB_ACTIONS[kind],
            reason=reason,
            target=f"job {job.pk}",
            after={"job": job.pk, "status": job.status},
        )
        job_id = job.pk
        transaction.on_commit(lambda: backoffice_job_task.delay(job_id))
    return job
