"""This site's webhook endpoint on Stripe."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from djstripe.models import WebhookEndpoint

from .. import stripe_api


def webhook_endpoint_register(*, base_url: str):
    """Register `<base_url>/stripe/webhook/<uuid>/` with Stripe for every event, and mirror it in
    dj-stripe with its signing secret. Reuses an enabled endpoint already registered for this base."""
    base_url = base_url.rstrip("/")
    existing = WebhookEndpoint.objects.filter(url__startswith=f"{base_url}/stripe/webhook/").exclude(
        secret=""
    )
    for endpoint in existing:
        # Also on Stripe's side: the emulator's state may have been reset while the database was kept.
        if endpoint.status == "enabled" and stripe_api.webhook_endpoint_exists(endpoint_id=endpoint.id):
            return endpoint
    endpoint_uuid = uuid.uuid4()
    data = stripe_api.webhook_endpoint_create(
        url=f"{base_url}/stripe/webhook/{endpoint_uuid}/",
        enabled_events=["*"],
        metadata={"djstripe_uuid": str(endpoint_uuid)},
    )
    with transaction.atomic():
        endpoint = WebhookEndpoint.sync_from_stripe_data(data, api_key=settings.STRIPE_SECRET_KEY)
        if not endpoint.secret and data.get("secret"):
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(secret=data["secret"])
            endpoint.secret = data["secret"]
    return endpoint
