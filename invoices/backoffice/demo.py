"""The back office's part of `manage.py seed_demo`, through the services: a staff grant (an
audit row), a spike of consumption that the unusual-consumption rule turns into a staff alert,
and a reconcile run. Safe to run at every start: the grant and the spike are keyed, the alert
is once a day, and each start adds one reconcile run (as a daily schedule would)."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.dispatch import receiver

from billing.signals import demo_seeded
from config.exceptions import ApplicationError
from credits.services import credit_consume, reconcile_run, unusual_consumption_alerts

from .services import backoffice_credits_grant

DEMO_STAFF = "staff@demo.example"
SPIKE = Decimal(800)


@receiver(demo_seeded, dispatch_uid="invoices.backoffice.demo_seeded")
def on_demo_seeded(sender, organization, stripe: bool, **kwargs) -> str | None:
    staff = get_user_model().objects.filter(username=DEMO_STAFF).first()
    if staff is None:
        return None
    backoffice_credits_grant(
        actor=staff,
        organization=organization,
        amount=Decimal(1000),
        reason="Demo: goodwill credits after the March outage",
        idempotency_key="demo-goodwill-grant",
    )
    # Not enough credits (another app spent them): no spike, no alert.
    with contextlib.suppress(ApplicationError):
        credit_consume(
            organization=organization,
            amount=SPIKE,
            reason="Demo: a burst of AI messages",
            idempotency_key="demo-consumption-spike",
        )
    alerts = unusual_consumption_alerts()
    run = reconcile_run(trigger="command", requested_by="seed_demo", with_stripe=stripe)
    return (
        f"back office:  /admin/billing/organizationpage/{organization.pk}/overview/ (audit log, "
        f"{alerts} new staff alert(s), reconcile run #{run.pk}: {run.get_status_display()})"
    )
