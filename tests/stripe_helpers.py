"""Webhooks from the emulator, delivered for real through dj-stripe's endpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.db import connection

from billing.services import webhook_endpoint_register
from stripe_emulator.testing import django_client_transport


@dataclass
class Webhooks:
    """Delivers the emulator's queued events to `/stripe/webhook/<uuid>/` through the Django
    test client, signed with the endpoint's secret, and runs what the handlers put on commit
    (Celery tasks run eagerly in these tests)."""

    emulator: object
    client: object
    endpoint: object

    def deliver(self, *, retry_now: bool = False) -> list:
        from django.test import TestCase

        in_atomic = connection.in_atomic_block
        if in_atomic:
            with TestCase.captureOnCommitCallbacks(execute=True):
                return self.emulator.deliver_webhooks(retry_now=retry_now)
        return self.emulator.deliver_webhooks(retry_now=retry_now)


def webhooks_install(emulator, client) -> Webhooks:
    endpoint = webhook_endpoint_register(base_url="http://testserver")
    emulator.set_webhook_transport(django_client_transport(client))
    return Webhooks(emulator=emulator, client=client, endpoint=endpoint)


class Recorder:
    """A webhook transport that keeps what the emulator sends, for replaying it by hand:
    several times, in another order, or tampered with."""

    def __init__(self):
        self.sent: list[tuple[str, dict, bytes]] = []

    def __call__(self, url, headers, body):
        self.sent.append((url, dict(headers), body))
        return 200

    def of_type(self, event_type: str):
        return [s for s in self.sent if json.loads(s[2])["type"] == event_type]


def post(client, delivery, body: bytes | None = None):
    from urllib.parse import urlsplit

    url, headers, original = delivery
    extra = {
        "HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items() if k.lower() != "content-type"
    }
    return client.post(
        urlsplit(url).path,
        data=body if body is not None else original,
        content_type="application/json",
        **extra,
    )


STRIPE_KEY = {"api_key": "sk_test_" + "x" * 24}


def organization_on_test_clock(*, owner, name: str = "Clockwork Ltd", start: int | None = None):
    """An organization whose Stripe customer lives on a Stripe test clock (as a customer created
    in test mode with `test_clock` would), so tests can move its time with
    `stripe.test_helpers.TestClock.advance`. Returns (organization, clock id)."""
    import time

    import stripe
    from django.conf import settings
    from djstripe.models import Customer

    from billing.models import Membership, Organization, Role

    clock = stripe.test_helpers.TestClock.create(
        frozen_time=start or int(time.time()), name=name, **STRIPE_KEY
    )
    organization = Organization.objects.create(
        name=name, billing_email=f"billing@{name.split()[0].lower()}.test"
    )
    Membership.objects.create(user=owner, organization=organization, role=Role.OWNER)
    customer = stripe.Customer.create(
        email=organization.billing_email,
        name=name,
        test_clock=clock.id,
        metadata={"djstripe_subscriber": str(organization.id), "organization_id": str(organization.id)},
        **STRIPE_KEY,
    )
    Customer.sync_from_stripe_data(customer, api_key=settings.STRIPE_SECRET_KEY)
    return organization, clock


def advance(clock, *, days: float = 0, to: int | None = None):
    """Move a test clock forward and return its new frozen time."""
    import stripe

    current = stripe.test_helpers.TestClock.retrieve(clock.id, **STRIPE_KEY).frozen_time
    target = to if to is not None else current + int(days * 86400)
    stripe.test_helpers.TestClock.advance(clock.id, frozen_time=target, **STRIPE_KEY)
    return target
