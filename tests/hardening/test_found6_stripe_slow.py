"""Issue 17, found 6: a hanging Stripe answers 503 `stripe_unavailable` well within gunicorn's
worker timeout, and the same-key retry stays safe (one PaymentIntent).

The Stripe emulator runs as a real server (`python -m stripe_emulator`) with a `hang` fault that
really holds the answer; the application's own client (`billing.stripe_api.http_client`, with
`STRIPE_TIMEOUT_SECONDS`) talks to it over HTTP. The timeout is shortened for the test; what is
checked is the outcome, not how long it took.
"""

from __future__ import annotations

import importlib
from decimal import Decimal as D

import pytest
import requests
import stripe
from rest_framework.test import APIClient

from billing import stripe_api
from billing.catalogue import catalogue_seed
from billing.models import Plan, PlanPrice
from billing.services import organization_create, stripe_catalog_sync
from credits.models import CreditPurchase
from credits.selectors import credit_summary_get
from tests.billing.factories import UserFactory
from tests.credits.factories import CreditPackFactory
from tests.processes import stripe_emulator_server

pytestmark = pytest.mark.django_db


def test_the_stripe_client_is_bounded_below_the_worker_timeout(settings, monkeypatch):
    monkeypatch.delenv("WEB_TIMEOUT", raising=False)
    gunicorn = importlib.import_module("config.gunicorn")
    gunicorn = importlib.reload(gunicorn)
    client = stripe_api.http_client()
    assert client._timeout == settings.STRIPE_TIMEOUT_SECONDS == 8.0
    assert settings.STRIPE_MAX_NETWORK_RETRIES == 2
    assert stripe_api.worst_case_seconds() == 25.5
    assert stripe_api.worst_case_seconds() < gunicorn.timeout == 60


def test_start_up_installs_the_client_and_the_retries(settings):
    saved = stripe.default_http_client, stripe.max_network_retries
    try:
        stripe_api.configure()
        assert isinstance(stripe.default_http_client, stripe.RequestsClient)
        assert stripe.default_http_client._timeout == settings.STRIPE_TIMEOUT_SECONDS
        assert stripe.max_network_retries == settings.STRIPE_MAX_NETWORK_RETRIES
    finally:
        stripe.default_http_client, stripe.max_network_retries = saved


@pytest.fixture
def slow_stripe(tmp_path, settings):
    """A real emulator server, the application's client with a 5 s timeout and one retry. Every
    Stripe call of the test goes through that client: 5 s (not less) so that a call without a fault
    answers in time on a loaded machine; the hangs (60 s) are far past it."""
    settings.STRIPE_TIMEOUT_SECONDS = 5.0
    settings.STRIPE_MAX_NETWORK_RETRIES = 1
    with stripe_emulator_server(tmp_path) as url:
        saved = stripe.default_http_client, stripe.max_network_retries
        stripe_api.configure()
        try:
            catalogue_seed(Plan, PlanPrice)
            stripe_catalog_sync()
            yield url
        finally:
            stripe.default_http_client, stripe.max_network_retries = saved


def _fault(url: str, **fields) -> None:
    requests.post(f"{url}/_emulator/faults", json=fields, timeout=5).raise_for_status()


def _intents_of(purchase: CreditPurchase) -> list:
    everything = stripe.PaymentIntent.list(limit=100, **stripe_api.request_options())
    return [i for i in everything.data if i["metadata"].get("purchase_id") == str(purchase.pk)]


def test_a_hanging_stripe_is_503_and_the_same_key_retry_makes_one_payment_intent(slow_stripe):
    owner = UserFactory()
    org = organization_create(name="Slow", billing_email="slow@example.test", owner=owner)
    CreditPackFactory(code="p1k", name="1,000 credits", credits=D(1000), amount=1000)
    client = APIClient()
    client.force_authenticate(owner)
    payload = {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "slow-1"}
    path = f"/api/v1/organizations/{org.pk}/credits/purchase"

    # Every attempt (the first and the client's one retry) hangs past the timeout.
    _fault(slow_stripe, method="POST", path="/v1/payment_intents", hang=60, times=2)
    response = client.post(path, payload, format="json")
    assert response.status_code == 503, response.content
    assert response.json()["error"] == "stripe_unavailable"
    assert credit_summary_get(organization=org).balance == D(0)

    # Stripe recovers; the caller retries with the same key: one PaymentIntent, credits once.
    requests.delete(f"{slow_stripe}/_emulator/faults", timeout=5).raise_for_status()
    retry = client.post(path, payload, format="json")
    assert retry.status_code in (200, 201), retry.content
    intents = _intents_of(CreditPurchase.objects.get(organization=org))
    assert len(intents) == 1 and intents[0]["status"] == "succeeded"
    assert credit_summary_get(organization=org).balance == D(1000)


def test_a_hang_on_the_first_attempt_is_replayed_by_the_retry(slow_stripe):
    owner = UserFactory()
    org = organization_create(name="Blip", billing_email="blip@example.test", owner=owner)
    CreditPackFactory(code="p1k", name="1,000 credits", credits=D(1000), amount=1000)
    client = APIClient()
    client.force_authenticate(owner)
    _fault(slow_stripe, method="POST", path="/v1/payment_intents", hang=60, times=1)
    response = client.post(
        f"/api/v1/organizations/{org.pk}/credits/purchase",
        {"pack": "p1k", "payment_method": "pm_card_visa", "idempotency_key": "blip-1"},
        format="json",
    )
    assert response.status_code == 201, response.content
    intents = _intents_of(CreditPurchase.objects.get(organization=org))
    assert len(intents) == 1  # Stripe did the first attempt's work; the retry got its replay
    assert credit_summary_get(organization=org).balance == D(1000)
