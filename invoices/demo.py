"""The invoices' part of `manage.py seed_demo`: billing sends `billing.signals.demo_seeded` once
the demo organization is ready (billing may not import this app), and this adds its invoices."""

from __future__ import annotations

from django.dispatch import receiver

from billing.signals import demo_seeded

from .services import demo_invoices_seed


@receiver(demo_seeded, dispatch_uid="invoices.demo_seeded")
def on_demo_seeded(sender, organization, stripe: bool, **kwargs) -> str:
    seeded = demo_invoices_seed(organization=organization, with_stripe=stripe)
    return (
        f"invoices:     {seeded.stripe_invoices} Stripe invoice(s) and statement {seeded.statement.number}"
        f" at /billing/{organization.pk}/invoices/"
    )
