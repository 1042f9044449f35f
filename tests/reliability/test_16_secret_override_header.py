"""Item 16: dj-stripe's `x-djstripe-webhook-secret` header (which lets the sender choose the
signing secret, for the Stripe CLI) is refused whenever DEBUG is off, even with a good
signature; with DEBUG on (`make run DEV=1`) it keeps working for local forwarding."""

import pytest
from djstripe.models import Event

from stripe_emulator.webhooks import signature_header
from tests.stripe_helpers import post

from .helpers import subscribe

pytestmark = pytest.mark.django_db

CHOSEN = "whsec_" + "a" * 32


@pytest.fixture
def delivery(recorder, webhooks, billing_org, stripe_emulator):
    subscribe(billing_org)
    stripe_emulator.deliver_webhooks()
    return recorder.of_type("customer.subscription.created")[0]


def test_a_secret_of_the_senders_choice_is_refused(client, delivery, settings):
    settings.DEBUG = False
    url, headers, body = delivery
    forged = {
        **headers,
        "Stripe-Signature": signature_header(body, CHOSEN),
        "X-Djstripe-Webhook-Secret": CHOSEN,
    }
    response = post(client, (url, forged, body))
    assert response.status_code == 400 and response.json()["error"] == "invalid_signature"
    assert not Event.objects.exists()


def test_the_header_is_refused_even_beside_a_good_signature(client, delivery, settings):
    settings.DEBUG = False
    url, headers, body = delivery
    response = post(client, (url, {**headers, "X-Djstripe-Webhook-Secret": CHOSEN}, body))
    assert response.status_code == 400
    assert not Event.objects.exists()
    assert post(client, delivery).status_code == 200  # the same delivery without it is fine


def test_with_debug_on_the_cli_override_still_works(client, delivery, settings):
    settings.DEBUG = True
    url, headers, body = delivery
    forged = {
        **headers,
        "Stripe-Signature": signature_header(body, CHOSEN),
        "X-Djstripe-Webhook-Secret": CHOSEN,
    }
    assert post(client, (url, forged, body)).status_code == 200
