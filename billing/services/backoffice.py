"""The back office's building blocks that sit in billing, the lowest app, so every app can use
them: the staff audit log, the long-job record with its progress, the Stripe half of a refund,
replaying a webhook delivery that failed, and the staff alerts of the notice outbox.

The actions themselves (which compose services of several apps) live in the top app,
`invoices.backoffice.services`."""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from djstripe.models import WebhookEventTrigger

from config.exceptions import ApplicationError, NotFound, ValidationFailed

from .. import stripe_api
from ..models import AuditEntry, BackofficeJob, BillingNotice, Organization
from ..selectors import organization_customer_get
from ..stripe_data import object_id
from .notices import billing_notice_queue

REASON_MAX = 1000


def _json_safe(value: dict | None) -> dict:
    """Decimals and datetimes become strings, as the admin shows them."""
    import json

    return json.loads(json.dumps(value or {}, cls=DjangoJSONEncoder))


def actor_describe(user) -> tuple[int | None, str]:
    if user is None:
        return None, "system"
    return user.pk, f"{user.get_username()} (staff #{user.pk})"


def audit_reason_clean(reason: str | None, *, required: bool) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ValidationFailed(fields={"reason": ["Say why: money or credits move with this action."]})
    if len(reason) > REASON_MAX:
        raise ValidationFailed(fields={"reason": [f"At most {REASON_MAX} characters."]})
    return reason


def audit_record(
    *,
    actor,
    action: str,
    reason: str = "",
    organization: Organization | None = None,
    target: str = "",
    before: dict | None = None,
    after: dict | None = None,
    key: str | None = None,
) -> AuditEntry:
    """Append one row to the audit log. Call it inside the action's own transaction (when there
    is one), so the row exists exactly when the action took effect. With a `key` (what was done,
    e.g. `refund:re_123`) a second call answers the first row instead of writing another."""
    if action not in AuditEntry.Action.values:
        raise ValueError(f"unknown audit action {action!r}")
    if key:
        existing = AuditEntry.objects.filter(key=key).first()
        if existing is not None:
            return existing
    actor_id, label = actor_describe(actor)
    fields = dict(
        key=key or None,
        actor_id=actor_id,
        actor=label[:255],
        action=action,
        organization_id=organization.pk if organization is not None else None,
        organization_name=organization.name[:200] if organization is not None else "",
        target=target[:255],
        reason=reason,
        before=_json_safe(before),
        after=_json_safe(after),
    )
    if not key:
        return AuditEntry.objects.create(**fields)
    try:
        with transaction.atomic():  # a savepoint: the same action logged at once by a double submit
            return AuditEntry.objects.create(**fields)
    except IntegrityError:
        return AuditEntry.objects.get(key=key)


# --------------------------------------------------------------------------- long jobs
def backoffice_job_create(*, kind: str, requested_by: str) -> BackofficeJob:
    return BackofficeJob.objects.create(kind=kind, requested_by=requested_by[:255])


def backoffice_job_progress(*, job_id: int, done: int, total: int) -> None:
    """Record progress (outside any transaction of the work, so the page sees it at once)."""
    BackofficeJob.objects.filter(pk=job_id).update(
        status=BackofficeJob.Status.RUNNING, done=done, total=total
    )


def backoffice_job_start(*, job_id: int) -> BackofficeJob | None:
    """Mark a queued job running; None when it already ran (a task delivered twice)."""
    updated = BackofficeJob.objects.filter(pk=job_id, status=BackofficeJob.Status.QUEUED).update(
        status=BackofficeJob.Status.RUNNING, started_at=timezone.now()
    )
    return BackofficeJob.objects.get(pk=job_id) if updated else None


def backoffice_job_finish(*, job_id: int, result: dict | None = None, error: str = "") -> None:
    BackofficeJob.objects.filter(pk=job_id).update(
        status=BackofficeJob.Status.FAILED if error else BackofficeJob.Status.SUCCEEDED,
        result=_json_safe(result),
        error=error[:5000],
        finished_at=timezone.now(),
    )


# --------------------------------------------------------------------------- refunds
@dataclass(frozen=True)
class StripeRefund:
    refund_id: str
    amount: int
    currency: str
    charge_id: str
    charge_amount: int
    amount_refunded_before: int
    amount_refunded: int  # cumulative, after this refund


def payment_refundable_get(*, organization: Organization, payment_intent_id: str) -> dict:
    """The PaymentIntent's charge as Stripe has it now, after checking it is this organization's
    and succeeded: `{"charge_id", "amount", "amount_refunded", "currency"}`."""
    customer = organization_customer_get(organization=organization)
    try:
        intent = stripe_api.payment_intent_retrieve(payment_intent_id=payment_intent_id)
    except stripe_api.StripeRequestError:
        raise NotFound("No such payment.") from None
    intent_customer = intent.get("customer")
    intent_customer = intent_customer.get("id") if hasattr(intent_customer, "get") else intent_customer
    if customer is None or intent_customer != customer.id:
        raise NotFound("No such payment for this organization.")
    charge_id = intent.get("latest_charge")
    charge_id = charge_id.get("id") if hasattr(charge_id, "get") else charge_id
    if intent.get("status") != "succeeded" or not charge_id:
        raise ValidationFailed(fields={"payment": ["Only a payment that succeeded can be refunded."]})
    charge = stripe_api.charge_retrieve(charge_id=charge_id)
    return {
        "charge_id": charge_id,
        "amount": int(charge.get("amount_captured") or charge.get("amount") or 0),
        "amount_refunded": int(charge.get("amount_refunded") or 0),
        "currency": charge.get("currency") or "usd",
    }


def payment_refund_stripe(
    *, organization: Organization, payment_intent_id: str, amount: int | None, idempotency_key: str
) -> StripeRefund:
    """Refund on Stripe (all that is left, or `amount` minor units). Validated first, so a refusal
    reaches Stripe never. `idempotency_key` is the staff form's (made when the page was shown):
    the form submitted twice gets Stripe's first refund back instead of a second one."""
    charge = payment_refundable_get(organization=organization, payment_intent_id=payment_intent_id)
    left = charge["amount"] - charge["amount_refunded"]
    if left <= 0:
        raise ValidationFailed(fields={"amount": ["This payment is already refunded in full."]})
    if amount is not None and not 0 < amount <= left:
        raise ValidationFailed(fields={"amount": [f"Between 1 and {left} (minor units) can be refunded."]})
    refund_amount = left if amount is None else amount
    refund = stripe_api.refund_create(
        payment_intent_id=payment_intent_id,
        amount=refund_amount,
        idempotency_key=f"backoffice-refund:{payment_intent_id}:{idempotency_key}"[:255],
        metadata={"source": "back office"},
    )
    after = stripe_api.charge_retrieve(charge_id=charge["charge_id"])
    return StripeRefund(
        refund_id=refund["id"],
        amount=int(refund["amount"]),
        currency=charge["currency"],
        charge_id=charge["charge_id"],
        charge_amount=charge["amount"],
        amount_refunded_before=charge["amount_refunded"],
        amount_refunded=int(after.get("amount_refunded") or 0),
    )


# --------------------------------------------------------------------------- webhook replay
def webhook_delivery_replay(*, actor, trigger_id: int, reason: str = "") -> AuditEntry:
    """Process a stored webhook delivery that failed again, as Stripe's redelivery would: the
    handlers run in one transaction with the audit row; on failure the delivery keeps the new
    error, `ApplicationError` is raised, and nothing of the handlers' work (nor an audit row) is
    kept."""
    reason = audit_reason_clean(reason, required=False)
    trigger = WebhookEventTrigger.objects.filter(pk=trigger_id).first()
    if trigger is None:
        raise NotFound("No such webhook delivery.")
    if not trigger.valid:
        raise ValidationFailed(fields={"delivery": ["Its signature did not verify: it is never processed."]})
    if trigger.processed:
        raise ValidationFailed(fields={"delivery": ["It was processed already."]})
    before = {"processed": trigger.processed, "exception": trigger.exception}
    try:
        with transaction.atomic():
            trigger.process(save=True, api_key=settings.STRIPE_SECRET_KEY)
            obj = (trigger.json_body.get("data") or {}).get("object") or {}
            customer_id = obj.get("id") if obj.get("object") == "customer" else object_id(obj.get("customer"))
            organization = (
                Organization.objects.filter(djstripe_customers__id=customer_id).first()
                if customer_id
                else None
            )
            return audit_record(
                actor=actor,
                action=AuditEntry.Action.WEBHOOK_REPLAY,
                reason=reason,
                organization=organization,
                target=f"webhook delivery {trigger.pk} ({trigger.event_id or 'no event'})",
                before=before,
                after={"processed": trigger.processed, "event": trigger.event_id},
            )
    except Exception as exc:  # the handler's own error, whatever it is, is the answer
        WebhookEventTrigger.objects.filter(pk=trigger.pk).update(
            exception=f"{type(exc).__name__}: {exc}"[:128], traceback=traceback.format_exc()
        )
        raise ApplicationError(
            f"The delivery failed again: {type(exc).__name__}", code="webhook_replay_failed", status=409
        ) from exc


# --------------------------------------------------------------------------- staff alerts
def staff_alert_queue(
    *, kind: str, key: str, organization: Organization | None, title: str, lines: list[str], link: str = ""
) -> bool:
    """One staff e-mail (to BILLING_ADMIN_EMAILS) per key, through the notice outbox."""
    context: dict[str, Any] = {
        "title": title[:200],
        "lines": [str(line)[:500] for line in lines],
        "link": link,
    }
    return billing_notice_queue(
        organization=organization,
        kind=kind,
        key=f"staff:{key}"[:255],
        context=context,
        audience=BillingNotice.Audience.STAFF,
    )


def admin_url(path: str) -> str:
    return f"{settings.SITE_URL.rstrip('/')}/admin/{path.lstrip('/')}"
