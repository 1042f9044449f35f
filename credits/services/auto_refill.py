"""Auto-refill: buy credits with the saved card when a consumption leaves the balance under the
threshold. The ledger starts a refill under its lock (a pending purchase, one in flight per
account); `auto_refill_run`, in a task after commit, charges the card and grants."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from billing.exceptions import PaymentFailed, StripeUnavailable
from billing.models import BillingNotice, Organization
from billing.services import admin_url, payment_method_resolve, staff_alert_queue
from config.exceptions import ApplicationError, ValidationFailed

from ..formatting import MAX_CHARGE_MINOR_UNITS
from ..locks import account_lock
from ..models import (
    IN_FLIGHT_STATUSES,
    AutoRefill,
    CreditPack,
    CreditPurchase,
    PurchaseKind,
    PurchaseStatus,
)
from ..selectors import credit_amount_price, credit_pack_get
from ..tasks import auto_refill_notice_task, auto_refill_task
from .ledger import positive_credits
from .purchases import credit_purchase_fulfil, purchase_find, purchase_payment_intent_create

logger = logging.getLogger(__name__)


def auto_refill_set(
    *,
    organization: Organization,
    enabled: bool,
    threshold,
    pack: str | CreditPack | None = None,
    amount=None,
    payment_method: str = "",
    max_refills_per_day: int = 3,
) -> AutoRefill:
    """Settings of the automatic refill. Enabling it again clears the failure count.

    Everything is validated before Stripe is called: only then is a new card (`payment_method`)
    attached to the organization's customer, or the default card looked up, so a refused request
    leaves nothing behind."""
    errors: dict[str, list[str]] = {}
    threshold = positive_credits(threshold, "threshold", allow_zero=True)
    if isinstance(pack, str):
        code, pack = pack, credit_pack_get(code=pack)
        if pack is None:
            errors["pack"] = [f"Unknown credit pack {code!r}."]
    if pack is not None and amount is not None:
        errors["pack"] = ["Give a pack or an amount, not both."]
    if enabled and pack is None and amount is None and "pack" not in errors:
        errors["pack"] = ["Give a pack or an amount of credits to buy."]
    if amount is not None:
        amount = positive_credits(amount, "amount")
        price, _ = credit_amount_price(credits=amount)
        if price > MAX_CHARGE_MINOR_UNITS:
            errors["amount"] = ["A refill of this many credits costs more than one payment can charge."]
    if pack is not None and not pack.active:
        errors["pack"] = [f"The pack {pack.code!r} is not on sale."]
    if not 1 <= int(max_refills_per_day) <= 24:
        errors["max_refills_per_day"] = ["Between 1 and 24."]
    if errors:
        raise ValidationFailed(fields=errors)
    if enabled or payment_method:
        payment_method = (
            payment_method_resolve(organization=organization, payment_method=payment_method) or ""
        )
    if enabled and not payment_method.startswith("pm_"):
        raise ValidationFailed(
            fields={"payment_method": ["A saved card (pm_...) is required to refill automatically."]}
        )
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
        intent = purchase_payment_intent_create(purchase=purchase)
    except PaymentFailed as exc:
        return auto_refill_payment_failed(
            purchase_id=purchase.pk,
            decline_code=str(exc.extra.get("decline_code") or "card_declined"),
            message=exc.message,
        )
    except StripeUnavailable:
        raise  # the task retries with the same key
    except ApplicationError as exc:  # Stripe refused the request itself: retrying cannot help
        return auto_refill_payment_failed(purchase_id=purchase.pk, decline_code=exc.code, message=exc.message)
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
    found = purchase_find(purchase_id=purchase_id)
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
            if refill.enabled and refill.consecutive_failures >= settings.CREDITS_AUTO_REFILL_MAX_DECLINES:
                refill.enabled = False
                refill.disabled_reason = (
                    f"Turned off after {refill.consecutive_failures} failed payments in a row (last: {code})."
                )
                notice = "disabled"
                staff_alert_queue(
                    kind=BillingNotice.Kind.STAFF_PAYMENT_FAILED,
                    key=f"auto_refill_disabled:{purchase.pk}",
                    organization=purchase.organization,
                    title=f"Auto-refill turned off after failed payments: {purchase.organization.name}",
                    lines=[
                        refill.disabled_reason,
                        "The organization's owners were e-mailed to fix the card.",
                    ],
                    link=admin_url(f"billing/organizationpage/{purchase.organization_id}/overview/"),
                )
            refill.save()
        if notice in ("disabled", "action_required"):
            pid = str(purchase.pk)
            transaction.on_commit(lambda: auto_refill_notice_task.delay(pid, notice))
    return purchase


def auto_refill_payment_failed(*, purchase_id, decline_code: str, message: str = "") -> CreditPurchase:
    """A declined refill (never retried: the same card would decline again).
    `CREDITS_AUTO_REFILL_MAX_DECLINES` failures in a row (3) turn auto-refill off and e-mail the
    owners."""
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


# Stripe keeps an idempotency key 24 hours: a refill that may have reached Stripe (`processing`)
# is re-dispatched only while its key still answers the first PaymentIntent.
STRIPE_KEY_LIFETIME_MARGIN = timedelta(hours=23)


def auto_refills_stale_dispatch(*, now: datetime | None = None) -> list[str]:
    """Beat (`credits.auto_refill_sweep_task`): enqueue again the auto-refills whose task was lost
    -- the purchase row committed, the process gone before `on_commit` reached the broker, or a
    worker lost with a retry it had scheduled. `pending` ones untouched for
    `CREDITS_AUTO_REFILL_STALE_SECONDS` (Stripe was never called for them), and `processing` ones
    as long as Stripe still keeps their idempotency key. Safe to overlap with a live copy: the task
    holds a lease per purchase, re-reads the status under a row lock, and charges with the
    purchase's own key; so one PaymentIntent, one grant. Answers the purchase ids enqueued."""
    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.CREDITS_AUTO_REFILL_STALE_SECONDS)
    rows = CreditPurchase.objects.filter(kind=PurchaseKind.AUTO_REFILL, updated_at__lt=stale).filter(
        Q(status=PurchaseStatus.PENDING)
        | Q(status=PurchaseStatus.PROCESSING, updated_at__gte=now - STRIPE_KEY_LIFETIME_MARGIN)
    )
    ids = [str(pk) for pk in rows.order_by("updated_at").values_list("pk", flat=True)[:500]]
    for purchase_id in ids:
        auto_refill_task.delay(purchase_id)
    if ids:
        logger.warning("auto-refill sweep: %d refill(s) whose task was lost enqueued again", len(ids))
    return ids
