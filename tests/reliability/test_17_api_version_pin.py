"""Item 17: the webhook endpoint is registered at the code's API version, and an event at
another version fails loudly: 400 with `stripe_api_version_mismatch`, an alert, the failure on
its trigger row, no handler run; the same event at the pinned version is then processed."""

import json
import logging

import pytest
from django.conf import settings
from djstripe.models import Event, WebhookEndpoint, WebhookEventTrigger

from billing.models import Organization
from stripe_emulator.webhooks import signature_header
from tests.stripe_helpers import post

from .helpers import subscribe

pytestmark = pytest.mark.django_db


def test_the_endpoint_is_pinned_to_the_codes_version(webhooks, stripe_emulator):
    endpoint = stripe_emulator.get(webhooks.endpoint.id)
    assert endpoint["api_version"] == settings.STRIPE_API_VERSION
    assert WebhookEndpoint.objects.get(id=webhooks.endpoint.id).api_version == settings.STRIPE_API_VERSION


def test_an_event_at_another_version_fails_loudly(
    recorder, webhooks, client, billing_org, stripe_emulator, caplog, django_capture_on_commit_callbacks
):
    subscribe(billing_org)
    stripe_emulator.deliver_webhooks()
    Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
    url, headers, body = recorder.of_type("customer.subscription.created")[0]
    event = json.loads(body)
    assert event["api_version"] == settings.STRIPE_API_VERSION
    other = json.dumps({**event, "api_version": "2020-08-27"}).encode()
    signed = {**headers, "Stripe-Signature": signature_header(other, webhooks.endpoint.secret)}
    client.raise_request_exception = False
    with caplog.at_level(logging.ERROR, logger="alerts"):
        response = post(client, (url, signed, other))
    assert response.status_code == 400 and response.json()["error"] == "stripe_api_version_mismatch"
    assert any(getattr(r, "alert", "") == "stripe_api_version_mismatch" for r in caplog.records)
    trigger = WebhookEventTrigger.objects.order_by("-created").first()
    assert "2020-08-27" in trigger.exception and not trigger.processed
    assert not Event.objects.exists()
    assert Organization.objects.get(pk=billing_org.pk).plan_id is None  # no handler ran
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, (url, headers, body)).status_code == 200
    assert Organization.objects.get(pk=billing_org.pk).subscription_status == "active"
