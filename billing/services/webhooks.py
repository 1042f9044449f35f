"""This site's webhook endpoint on Stripe."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import transaction
from djstripe.models import Event, WebhookEndpoint

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


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def webhook_endpoints_stale_remove(*, base_url: str) -> list[str]:
    """On the bundled emulator only (`STRIPE_USES_EMULATOR`): delete the webhook endpoints that an
    earlier local run registered for another address of this machine (`make run` on another
    `PORT`): the emulator keeps its state between runs, and it would go on sending every event to
    the dead address and retrying. Endpoints elsewhere, and any endpoint on real Stripe, are never
    touched. Answers the ids deleted."""
    from urllib.parse import urlsplit

    if not settings.STRIPE_USES_EMULATOR:
        return []
    keep = f"{base_url.rstrip('/')}/stripe/webhook/"
    removed = []
    for endpoint in stripe_api.webhook_endpoints_list():
        url = endpoint.get("url") or ""
        parts = urlsplit(url)
        if url.startswith(keep) or parts.hostname not in _LOOPBACK:
            continue
        if not parts.path.startswith("/stripe/webhook/"):
            continue
        stripe_api.webhook_endpoint_delete(endpoint_id=endpoint["id"])
        removed.append(endpoint["id"])
    return removed


def stripe_events_catch_up(*, types: tuple[str, ...] = ()) -> int:
    """Process, through dj-stripe and this site's handlers, every event Stripe holds that the
    mirror has not seen (oldest first), as if its webhook had arrived: for a back end that was not
    reachable when they were sent (the demo seed runs before the web server starts). Events already
    stored are skipped; the handlers are idempotent, so a later real delivery changes nothing.
    `types`: only events whose type starts with one of these (default: all)."""
    seen = set(Event.objects.values_list("id", flat=True))
    done = 0
    for data in stripe_api.events_list_all():
        if data["id"] in seen or (types and not data["type"].startswith(types)):
            continue
        Event.process(data, api_key=settings.STRIPE_SECRET_KEY)
        done += 1
    return done


def stripe_test_clock_create(*, frozen_time: int, name: str) -> str:
    """A Stripe test clock (test mode only) frozen at `frozen_time`; answers its id."""
    return stripe_api.test_clock_create(
        frozen_time=frozen_time, name=name, idempotency_key=f"test-clock:{name}:{frozen_time}"
    )["id"]


def stripe_test_clock_advance(*, clock_id: str, frozen_time: int, wait_seconds: float = 60) -> None:
    """Move a test clock forward and wait until Stripe has run what fell due on the way."""
    import time

    stripe_api.test_clock_advance(clock_id=clock_id, frozen_time=frozen_time)
    deadline = time.monotonic() + wait_seconds
    while stripe_api.test_clock_retrieve(clock_id=clock_id).get("status") == "advancing":
        if time.monotonic() > deadline:
            raise TimeoutError(f"test clock {clock_id} still advancing")
        time.sleep(0.2)
