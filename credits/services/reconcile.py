"""The reconcile: drift between the credit purchases recorded here and their PaymentIntents on
Stripe, the stored reconcile run (every check, its result, a staff e-mail on drift), and the
unusual-consumption staff alert."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from billing.models import BillingNotice, Organization
from billing.services import (
    admin_url,
    billing_stripe_drift_list,
    billing_stripe_state_restore,
    checkout_session_payment_get,
    payment_intent_status_get,
    staff_alert_queue,
)
from config import reconcile
from config.exceptions import ApplicationError

from ..models import (
    IN_FLIGHT_STATUSES,
    CreditPurchase,
    CreditTransaction,
    PurchaseStatus,
    ReconcileRun,
    TransactionKind,
)
from ..selectors import credit_purchases_stuck_list, ledger_drift_list
from .purchases import credit_purchase_fulfil
from .subscription_credits import subscription_credits_catch_up

logger = logging.getLogger(__name__)
UNSETTLED = (*IN_FLIGHT_STATUSES, PurchaseStatus.REQUIRES_ACTION)


def credit_purchases_stripe_drift_list(*, organization_ids: list | None = None) -> list[str]:
    """Purchases whose state here disagrees with their PaymentIntent on Stripe: paid there but not
    granted here (a lost webhook), or granted here but not paid there."""
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
    for purchase, intent_id in _paid_checkouts_without_intent(organization_ids):
        drifts.append(
            f"purchase {purchase.pk}: Checkout {purchase.checkout_session_id} paid by {intent_id}, "
            "not granted"
        )
    return drifts


def _paid_checkouts_without_intent(organization_ids):
    """Checkout purchases whose session was paid on Stripe while no webhook told us (the
    PaymentIntent id only arrives with the webhook)."""
    purchases = CreditPurchase.objects.filter(
        payment_intent_id=None, grant=None, status__in=UNSETTLED
    ).exclude(checkout_session_id=None)
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    for purchase in purchases.order_by("created_at"):
        intent_id, payment_status = checkout_session_payment_get(session_id=purchase.checkout_session_id)
        if intent_id and payment_status == "paid":
            yield purchase, intent_id


def stripe_state_restore(*, organization_ids: list | None = None) -> list[str]:
    """Do what lost webhooks would have done, from Stripe's current state (`manage.py reconcile
    --repair`, and the hourly beat task): subscription statuses re-read, paid purchases granted
    (keyed on the PaymentIntent: never twice), the included credits of paid periods granted.
    Answers one line per repair."""
    repaired = billing_stripe_state_restore(organization_ids=organization_ids)
    purchases = CreditPurchase.objects.exclude(payment_intent_id=None).filter(grant=None)
    purchases = purchases.exclude(status__in=[PurchaseStatus.REFUNDED, PurchaseStatus.FAILED])
    if organization_ids:
        purchases = purchases.filter(organization_id__in=organization_ids)
    paid = [
        (purchase, purchase.payment_intent_id)
        for purchase in purchases.order_by("created_at")
        if payment_intent_status_get(payment_intent_id=purchase.payment_intent_id) == "succeeded"
    ]
    paid += list(_paid_checkouts_without_intent(organization_ids))
    for purchase, intent_id in paid:
        result = credit_purchase_fulfil(
            payment_intent_id=intent_id,
            purchase_id=purchase.pk,
            checkout_session_id=purchase.checkout_session_id,
        )
        if result.granted:
            repaired.append(
                f"purchase {purchase.pk}: {intent_id} paid on Stripe, {purchase.credits} credits granted"
            )
    periods = subscription_credits_catch_up()
    if periods:
        repaired.append(f"subscription credits: {periods} paid period(s) granted")
    for line in repaired:
        logger.warning("reconcile repaired: %s", line)
    return repaired


def reconcile_run(
    *,
    trigger: str,
    requested_by: str = "",
    organization_ids: list | None = None,
    with_stripe: bool = True,
    progress: Callable[[int, int], None] | None = None,
    run: ReconcileRun | None = None,
    repair: bool = False,
) -> ReconcileRun:
    """Run every reconcile check (the ledger's invariants, then Stripe drift and the checks other
    apps register in `config.reconcile`) and store the result. Drift e-mails staff once per run.
    `progress(done, total)` is told after each check (the admin's job page shows it).
    `repair` (with Stripe; the daily beat run, `manage.py reconcile --repair`): first do what lost
    webhooks would have done (`stripe_state_restore`); the repairs are listed in the summary, and a
    Stripe outage during the repair is a drift line, the checks still run."""
    run = run or ReconcileRun.objects.create(
        trigger=trigger, requested_by=requested_by[:255], with_stripe=with_stripe
    )
    checks = reconcile.registered(stripe=with_stripe)
    total = 1 + (2 if with_stripe else 0) + len(checks)
    done = 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    repaired: list[str] = []
    repair_drifts: list[str] = []
    if repair and with_stripe:
        try:
            repaired = stripe_state_restore(organization_ids=organization_ids)
        except ApplicationError as exc:
            repair_drifts.append(f"the repair from Stripe's state could not run: {exc.message}")
    try:
        report = ledger_drift_list(organization_ids=organization_ids)
        drifts = repair_drifts + [str(d) for d in report.drifts]
        drifts += credit_purchases_stuck_list(organization_ids=organization_ids)
        summary = f"credits: {report.accounts} accounts, {report.transactions} ledger rows"
        step()
        if with_stripe:
            for name, check in (
                ("subscriptions", billing_stripe_drift_list),
                ("purchases", credit_purchases_stripe_drift_list),
            ):
                try:
                    drifts += check(organization_ids=organization_ids)
                except ApplicationError as exc:
                    drifts.append(f"Stripe {name} could not be checked: {exc.message}")
                step()
            summary += "; Stripe: subscriptions and purchases compared"
        for check in checks:
            try:
                drifts += check.run(organization_ids=organization_ids)
            except ApplicationError as exc:
                drifts.append(f"{check.name} could not be checked: {exc.message}")
            summary += f"; {check.name}"
            step()
    except Exception as exc:
        ReconcileRun.objects.filter(pk=run.pk).update(
            status=ReconcileRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000],
            finished_at=timezone.now(),
        )  # fmt: skip
        raise
    with transaction.atomic():
        run.status = ReconcileRun.Status.DRIFT if drifts else ReconcileRun.Status.OK
        if repaired:
            summary += f"; repaired first ({len(repaired)}): " + "; ".join(repaired[:20])
        run.summary = summary
        run.drifts = drifts
        run.drift_count = len(drifts)
        run.finished_at = timezone.now()
        run.save()
        if drifts:
            staff_alert_queue(
                kind=BillingNotice.Kind.STAFF_RECONCILE_DRIFT,
                key=f"reconcile_drift:{run.pk}",
                organization=None,
                title=f"Reconcile found {len(drifts)} drift(s)",
                lines=[*drifts[:50], *([f"... and {len(drifts) - 50} more"] if len(drifts) > 50 else [])],
                link=admin_url(f"credits/reconcilerun/{run.pk}/change/"),
            )
    return run


def unusual_consumption_alerts(*, now: datetime | None = None) -> int:
    """Staff alerts for organizations consuming far above their own recent average: credits
    consumed in the last 24 hours at least `min_credits` and more than `factor` times their
    average day over the `baseline_days` before (the `BILLING_UNUSUAL_CONSUMPTION` setting).
    One alert per organization per day; answers how many were queued."""
    rule = settings.BILLING_UNUSUAL_CONSUMPTION
    factor, days, floor = (
        Decimal(str(rule["factor"])),
        int(rule["baseline_days"]),
        Decimal(str(rule["min_credits"])),
    )
    now = now or timezone.now()
    recent_from = now - timedelta(days=1)
    baseline_from = recent_from - timedelta(days=days)
    # One grouped query over the window's consumptions only (the partial covering index
    # credit_txn_consume_window_idx: an index-only range scan, whatever the ledger's age), and
    # only the organizations at or above the floor come back (consumptions are negative).
    rows = (
        CreditTransaction.objects.filter(
            kind=TransactionKind.CONSUME, created_at__gte=baseline_from, created_at__lt=now
        )
        .values("organization_id")
        .annotate(
            recent=Sum("amount", filter=Q(created_at__gte=recent_from)),
            baseline=Sum("amount", filter=Q(created_at__lt=recent_from)),
        )
        .filter(recent__lte=-floor)
        .order_by("organization_id")
    )
    flagged = []
    for row in rows:
        recent = -(row["recent"] or Decimal(0))
        average = -(row["baseline"] or Decimal(0)) / days
        if recent < floor or recent <= factor * average:
            continue
        flagged.append((row["organization_id"], recent, average))
    organizations = Organization.objects.in_bulk([pk for pk, _, _ in flagged])
    queued = 0
    for pk, recent, average in flagged:
        organization = organizations[pk]
        queued += staff_alert_queue(
            kind=BillingNotice.Kind.STAFF_UNUSUAL_CONSUMPTION,
            key=f"unusual_consumption:{organization.pk}:{now:%Y-%m-%d}",
            organization=organization,
            title=f"Unusual consumption: {organization.name}",
            lines=[
                f"{recent.normalize():f} credits consumed in the 24 hours to {now:%Y-%m-%d %H:%M} UTC.",
                f"Its average day over the {days} days before: {average.quantize(Decimal('0.01'))} credits "
                f"(alert above {factor.normalize():f} times that, from {floor.normalize():f} credits).",
            ],
            link=admin_url(f"billing/organizationpage/{organization.pk}/overview/"),
        )
    return queued
