"""E-mails of the credits app (HTML and text templates under `templates/emails/credits/`).

Sending is at least once: the "sent" mark is committed after the mail leaves, so a worker
that dies in between sends it again rather than never."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from .formatting import credits_str
from .models import AutoRefill, CreditAccount, CreditPurchase
from .selectors import organization_owner_emails


def _send(template: str, subject: str, to: list[str], context: dict) -> None:
    context = {**context, "site_url": settings.SITE_URL}
    text = render_to_string(f"emails/credits/{template}.txt", context)
    html = render_to_string(f"emails/credits/{template}.html", context)
    message = EmailMultiAlternatives(subject=subject, body=text, to=to)
    message.attach_alternative(html, "text/html")
    message.send()


def low_balance_alert_send(*, account_id: int) -> bool:
    """Send the alert of the current crossing once; answers whether a mail went out."""
    with transaction.atomic():
        account = (
            CreditAccount.objects.select_for_update()
            .select_related("organization")
            .filter(pk=account_id)
            .first()
        )
        if account is None or account.low_balance_alerted_at is None or account.low_balance_threshold is None:
            return False
        sent = account.low_balance_email_sent_at
        if sent is not None and sent >= account.low_balance_alerted_at:
            return False
        organization = account.organization
        _send(
            "low_balance",
            f"{organization.name}: credit balance is low",
            organization_owner_emails(organization=organization),
            {
                "organization": organization,
                "balance": credits_str(account.balance),
                "threshold": credits_str(account.low_balance_threshold),
            },
        )
        account.low_balance_email_sent_at = timezone.now()
        account.save(update_fields=["low_balance_email_sent_at"])
    return True


def low_balance_alerts_due() -> int:
    """Arm and send alerts for accounts under their threshold with no alert for this crossing,
    and resend alerts whose e-mail never left (older than five minutes)."""
    from .tasks import low_balance_alert_task

    now = timezone.now()
    below = CreditAccount.objects.filter(
        low_balance_threshold__isnull=False, balance__lt=F("low_balance_threshold")
    )
    newly = list(below.filter(low_balance_alerted_at__isnull=True).values_list("pk", flat=True))
    if newly:
        CreditAccount.objects.filter(pk__in=newly, low_balance_alerted_at__isnull=True).update(
            low_balance_alerted_at=now
        )
    stuck = list(
        below.filter(low_balance_alerted_at__lt=now - timedelta(minutes=5))
        .exclude(low_balance_email_sent_at__gte=F("low_balance_alerted_at"))
        .values_list("pk", flat=True)
    )
    for account_id in {*newly, *stuck}:
        low_balance_alert_task.delay(account_id)
    return len({*newly, *stuck})


NOTICES = {
    "disabled": ("auto_refill_disabled", "auto-refill is turned off after failed payments"),
    "action_required": (
        "auto_refill_action_required",
        "a credit refill needs the card holder's authentication",
    ),
}


def auto_refill_notice_send(*, purchase_id, notice: str) -> bool:
    if notice not in NOTICES:
        return False
    purchase = CreditPurchase.objects.select_related("organization", "pack").filter(pk=purchase_id).first()
    if purchase is None:
        return False
    refill = AutoRefill.objects.filter(account_id=purchase.account_id).first()
    template, subject = NOTICES[notice]
    organization = purchase.organization
    _send(
        template,
        f"{organization.name}: {subject}",
        organization_owner_emails(organization=organization),
        {
            "organization": organization,
            "purchase": purchase,
            "credits": credits_str(purchase.credits),
            "amount": f"{purchase.amount / 100:.2f} {purchase.currency.upper()}",
            "failure_code": purchase.failure_code,
            "refill": refill,
        },
    )
    return True
