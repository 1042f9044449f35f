"""The credits app's notices, queued in billing's notice outbox (`billing.services.notices`),
which sends them and decides who receives them.

A low-balance notice is keyed on the crossing (the account and the moment the balance fell
below the threshold), so one crossing sends one e-mail however often the task runs; it says the
balance at the time it is queued, after commit."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from billing.models import BillingNotice
from billing.services import billing_notice_queue

from .formatting import credits_str
from .models import AutoRefill, CreditAccount, CreditPurchase


def low_balance_notice_queue(*, account_id: int) -> bool:
    """Queue the notice of the account's current crossing once; answers whether it was new."""
    with transaction.atomic():
        account = (
            CreditAccount.objects.select_for_update()
            .select_related("organization")
            .filter(pk=account_id)
            .first()
        )
        if account is None or account.low_balance_alerted_at is None or account.low_balance_threshold is None:
            return False
        return billing_notice_queue(
            organization=account.organization,
            kind=BillingNotice.Kind.LOW_BALANCE,
            key=f"low_balance:{account.pk}:{account.low_balance_alerted_at.isoformat()}",
            context={
                # What can be spent (the thresholds compare it): the balance minus active holds.
                "balance": credits_str(account.balance - account.held),
                "held": credits_str(account.held) if account.held else "",
                "threshold": credits_str(account.low_balance_threshold),
            },
        )


def low_balance_notices_due() -> int:
    """Queue the notice of every account under its threshold that has none for its crossing:
    crossings no consumption armed (a threshold just raised, an expiry) and alerts whose task was
    lost. Answers how many notices were queued."""
    below = (
        CreditAccount.objects.filter(low_balance_threshold__isnull=False)
        .alias(spendable=F("balance") - F("held"))
        .filter(spendable__lt=F("low_balance_threshold"))
    )
    below.filter(low_balance_alerted_at__isnull=True).update(low_balance_alerted_at=timezone.now())
    return sum(
        int(low_balance_notice_queue(account_id=account_id))
        for account_id in below.values_list("pk", flat=True).order_by("pk")
    )


AUTO_REFILL_NOTICES = {
    "disabled": BillingNotice.Kind.AUTO_REFILL_DISABLED,
    "action_required": BillingNotice.Kind.AUTO_REFILL_ACTION_REQUIRED,
}


def auto_refill_notice_queue(*, purchase_id, notice: str) -> bool:
    kind = AUTO_REFILL_NOTICES.get(notice)
    purchase = CreditPurchase.objects.select_related("organization").filter(pk=purchase_id).first()
    if kind is None or purchase is None:
        return False
    refill = AutoRefill.objects.filter(account_id=purchase.account_id).first()
    return billing_notice_queue(
        organization=purchase.organization,
        kind=kind,
        key=f"{kind}:{purchase.pk}",
        context={
            "credits": credits_str(purchase.credits),
            "amount": f"{purchase.amount / 100:.2f} {purchase.currency.upper()}",
            "failure_code": purchase.failure_code,
            "consecutive_failures": refill.consecutive_failures if refill is not None else 0,
        },
    )
