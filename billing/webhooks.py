"""This site's Stripe webhook endpoint: dj-stripe's view with the checks it leaves out.

- A signature timestamp in the future beyond `STRIPE_WEBHOOK_FUTURE_TOLERANCE` seconds is
  refused (stripe-python only refuses old ones: older than the endpoint's tolerance, 300 s).
- The `x-djstripe-webhook-secret` header (dj-stripe's override of the signing secret for the
  Stripe CLI) is refused outright unless `DEBUG`: no production profile accepts a secret chosen
  by the sender.
- An event at another API version than the code's (`STRIPE_API_VERSION`, the version the
  endpoint is registered with) fails loudly: recorded on its trigger row, logged as an alert,
  answered 400 so Stripe keeps it for redelivery once the versions agree; its handlers never
  run on a shape they were not written for.
- Deliveries of one event are serialized (a transaction-scoped advisory lock on the event id),
  so the same event delivered concurrently runs its handlers once and never answers 500 on the
  race to store it.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import csrf_exempt
from djstripe import signals
from djstripe.views import ProcessWebhookView

from config.alerts import ops_alert

logger = logging.getLogger(__name__)

OVERRIDE_HEADER = "x-djstripe-webhook-secret"


class WebhookApiVersionMismatch(Exception):
    def __init__(self, event_id: str, version: str):
        self.event_id, self.version = event_id, version
        super().__init__(
            f"event {event_id} is at API version {version!r}; this code is pinned to "
            f"{settings.STRIPE_API_VERSION!r}"
        )


def _refuse(code: str, message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": code, "message": message}, status=status)


def _signature_timestamp(header: str) -> int | None:
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


@method_decorator(csrf_exempt, name="dispatch")
class StripeWebhookView(ProcessWebhookView):
    def post(self, request, uuid):
        header = request.headers.get("stripe-signature")
        if header is not None:
            if OVERRIDE_HEADER in request.headers and not settings.DEBUG:
                logger.warning("webhook refused: %s header outside DEBUG", OVERRIDE_HEADER)
                return _refuse("invalid_signature", "The signing secret cannot be overridden.")
            timestamp = _signature_timestamp(header)
            if timestamp is None:
                return _refuse("invalid_signature", "The signature header has no timestamp.")
            if timestamp > time.time() + settings.STRIPE_WEBHOOK_FUTURE_TOLERANCE:
                logger.warning("webhook refused: signature timestamp %s is in the future", timestamp)
                return _refuse("invalid_signature", "The signature's timestamp is in the future.")
        try:
            return super().post(request, uuid)
        except WebhookApiVersionMismatch as exc:
            ops_alert("stripe_api_version_mismatch", str(exc), subject=exc.version)
            return _refuse("stripe_api_version_mismatch", str(exc))


def _pin_api_version(sender, instance, **kwargs):
    """Inside dj-stripe's transaction, after the signature was verified, before any handler:
    the exception is recorded on the trigger row and rolls the processing back. Then the
    event's lock, held until that transaction ends."""
    body = instance.json_body
    event_id = str(body.get("id") or "")
    version = body.get("api_version")
    if version != settings.STRIPE_API_VERSION:
        raise WebhookApiVersionMismatch(event_id, str(version))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"stripe-event:{event_id}"])


signals.webhook_pre_process.connect(_pin_api_version, dispatch_uid="billing.webhooks.pin_api_version")
