"""Organizations driven through the Stripe emulator on one test clock, with Django's time kept in
step with it (the ledger and usage rows carry the same instants as Stripe's objects)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import stripe
from django.conf import settings
from djstripe.models import Customer

from billing.models import Membership, Organization, Role
from tests.billing.factories import UserFactory
from tests.stripe_helpers import STRIPE_KEY


def at(text: str) -> datetime:
    """`"2026-03-01 12:00"` as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@dataclass
class Month:
    """One test clock shared by every organization of the story; `to(moment)` moves Stripe's
    clock and Django's time there together and delivers the webhooks that fell due."""

    traveller: object
    webhooks: object
    clock: object = None
    now: datetime | None = None
    organizations: dict[str, Organization] = field(default_factory=dict)

    def start(self, moment: datetime) -> None:
        self.traveller.move_to(moment)
        self.now = moment
        self.clock = stripe.test_helpers.TestClock.create(
            frozen_time=int(moment.timestamp()), name="analytics month", **STRIPE_KEY
        )

    def to(self, moment: datetime) -> None:
        assert moment >= self.now
        self.traveller.move_to(moment)
        stripe.test_helpers.TestClock.advance(
            self.clock.id, frozen_time=int(moment.timestamp()), **STRIPE_KEY
        )
        self.now = moment
        self.webhooks.deliver()
        self.webhooks.deliver(retry_now=True)

    def organization(self, name: str) -> Organization:
        """A new organization whose Stripe customer lives on the story's clock."""
        owner = UserFactory()
        org = Organization.objects.create(name=name, billing_email=f"billing@{name.lower()}.test")
        Membership.objects.create(user=owner, organization=org, role=Role.OWNER)
        customer = stripe.Customer.create(
            email=org.billing_email,
            name=name,
            test_clock=self.clock.id,
            metadata={"djstripe_subscriber": str(org.id), "organization_id": str(org.id)},
            **STRIPE_KEY,
        )
        Customer.sync_from_stripe_data(customer, api_key=settings.STRIPE_SECRET_KEY)
        self.organizations[name] = org
        return org
