"""The notice outbox: every e-mail the billing system sends is first a `BillingNotice` row.

A row is keyed on what it is about (`payment_failed:in_123:1`, `low_balance:7:<crossing>`), so
a webhook delivered five times, or a task run twice, queues one e-mail. It is sent after commit
by `billing_notice_send_task`; rows whose task was lost (Redis down, a worker killed before it
ran) are sent by the `billing_notices_dispatch_due_task` beat task. Sending is at least once: a
worker that dies after the mail left and before `sent_at` was committed sends it again.

Who gets what (`notice_recipients`):
- organization notices (payment failed, trial ending, subscription canceled, low balance,
  auto-refill turned off or waiting for authentication, quota warnings): the organization's
  billing e-mail, its owners and its members with the billing role, each address once;
- staff notices (failed payments, cancellations, disputes, unusual consumption, reconcile
  drift): the addresses in the `BILLING_ADMIN_EMAILS` setting.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from ..models import BillingNotice, Membership, Organization, Role
from ..tasks import billing_notice_send_task

# A queued notice whose task has not sent it after this long is dispatched again by beat.
DISPATCH_GRACE = timedelta(minutes=2)


def billing_notice_queue(
    *,
    organization: Organization | None,
    kind: str,
    key: str,
    context: dict,
    audience: str = BillingNotice.Audience.ORGANIZATION,
) -> bool:
    """Record a notice once per key and send it after commit. False when it was already queued.
    `context` is stored as JSON: plain strings and numbers only."""
    notice, created = BillingNotice.objects.get_or_create(
        key=key,
        defaults={"organization": organization, "kind": kind, "context": context, "audience": audience},
    )
    if created:
        notice_id = notice.pk
        transaction.on_commit(lambda: billing_notice_send_task.delay(notice_id))
    return created


def organization_notice_recipients(*, organization: Organization) -> list[str]:
    """The billing e-mail, then the owners and billing members, each address once."""
    emails = [organization.billing_email] if organization.billing_email else []
    emails += list(
        Membership.objects.filter(organization=organization, role__in=[Role.OWNER, Role.BILLING])
        .exclude(user__email="")
        .order_by("created_at", "id")
        .values_list("user__email", flat=True)
    )
    return sorted(set(emails), key=emails.index)


def notice_recipients(*, notice: BillingNotice) -> list[str]:
    if notice.audience == BillingNotice.Audience.STAFF:
        return list(settings.BILLING_ADMIN_EMAILS)
    return organization_notice_recipients(organization=notice.organization)


def billing_notice_send(*, notice_id: int) -> bool:
    """Send a queued notice (HTML and text). Safe to run twice: a sent notice is not resent."""
    with transaction.atomic():
        notice = (
            BillingNotice.objects.select_for_update(of=("self",))
            .select_related("organization")
            .get(pk=notice_id)
        )
        if notice.sent_at is not None:
            return False
        recipients = notice_recipients(notice=notice)
        if recipients:
            organization = notice.organization
            context = {
                "organization": organization,
                "site_url": settings.SITE_URL,
                "billing_url": f"{settings.SITE_URL}/billing/{organization.pk}/" if organization else "",
                **notice.context,
            }
            # Staff alerts share one template: a title, lines and a link to the admin.
            staff = notice.audience == BillingNotice.Audience.STAFF
            template = "emails/notices/staff_alert" if staff else f"emails/notices/{notice.kind}"
            message = EmailMultiAlternatives(
                subject=render_to_string(f"{template}_subject.txt", context).strip(),
                body=render_to_string(f"{template}.txt", context),
                to=recipients,
            )
            message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
            message.send()
        notice.sent_at = timezone.now()
        notice.recipients = recipients
        notice.save(update_fields=["sent_at", "recipients"])
    return True


def billing_notices_dispatch_due() -> int:
    """Send the notices whose after-commit task never ran (or failed). Answers how many."""
    due = BillingNotice.objects.filter(sent_at__isnull=True, created_at__lte=timezone.now() - DISPATCH_GRACE)
    sent = 0
    for notice_id in due.order_by("created_at").values_list("pk", flat=True)[:500]:
        sent += int(billing_notice_send(notice_id=notice_id))
    return sent
