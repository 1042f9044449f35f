"""Item 15: the signature's timestamp: 301 s old refused, 299 s old accepted (Stripe's 300 s
tolerance); in the future beyond `STRIPE_WEBHOOK_FUTURE_TOLERANCE` (60 s of clock skew)
refused, within it accepted. A refusal stores no event."""

import time

import pytest
import time_machine
from django.conf import settings
from djstripe.models import Event

from stripe_emulator.webhooks import signature_header
from tests.stripe_helpers import post

from .helpers import subscribe

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_at(recorder, webhooks, billing_org, stripe_emulator):
    subscribe(billing_org)
    stripe_emulator.deliver_webhooks()
    url, headers, body = recorder.of_type("customer.subscription.created")[0]
    secret = webhooks.endpoint.secret

    def sign(offset: int):
        stamp = int(time.time()) + offset
        return (url, {**headers, "Stripe-Signature": signature_header(body, secret, stamp)}, body)

    return sign


def test_the_stated_future_tolerance_is_a_minute():
    assert settings.STRIPE_WEBHOOK_FUTURE_TOLERANCE == 60


@pytest.mark.parametrize(
    ("offset", "status"),
    [(-301, 400), (-299, 200), (-3600, 400), (30, 200), (75, 400), (3600, 400), (10**9, 400)],
)
def test_signature_age(client, signed_at, offset, status):
    # The clock stands still between signing and checking: 299 s stays 299 s however slow the
    # machine (with a running clock a stamp made at x.9 s is 300.x s old a few tenths later).
    with time_machine.travel(time.time(), tick=False):
        response = post(client, signed_at(offset))
    assert response.status_code == status, response.content
    assert Event.objects.filter(type="customer.subscription.created").exists() == (status == 200)
