"""The invoices' part of `manage.py seed_demo`: billing sends `billing.signals.demo_seeded` once
the demo organization is ready (billing may not import this app), and this adds its invoices."""

from __future__ import annotations

from django.dispatch import receiver

from billing.signals import demo_seeded

from .services import demo_invoices_seed
from .services.analytics_demo import analytics_demo_seed


@receiver(demo_seeded, dispatch_uid="invoices.demo_seeded")
def on_demo_seeded(sender, organization, stripe: bool, **kwargs) -> str:
    seeded = demo_invoices_seed(organization=organization, with_stripe=stripe)
    return (
        f"invoices:     {seeded.stripe_invoices} Stripe invoice(s) and statement {seeded.statement.number}"
        f" at /billing/{organization.pk}/invoices/"
    )


@receiver(demo_seeded, dispatch_uid="invoices.analytics_demo_seeded")
def on_demo_seeded_history(sender, organization, stripe: bool, **kwargs) -> str | None:
    """A few months of history on a Stripe test clock for the staff dashboard (Stripe needed)."""
    if not stripe:
        return None
    from django.conf import settings

    if not settings.STRIPE_SECRET_KEY.startswith("sk_test_"):
        return None  # test clocks exist only in test mode
    seeded = analytics_demo_seed()
    if not seeded.created:
        return "history:      already seeded (staff dashboard at /admin/dashboard/)"
    return (
        f"history:      {seeded.organizations} organizations over four months on a Stripe test clock,"
        f" {seeded.events} events processed (staff dashboard at /admin/dashboard/)"
    )
