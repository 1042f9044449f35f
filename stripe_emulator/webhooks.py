"""Webhook signing and the one delivery queue.

Every event for a registered endpoint becomes a `Delivery` in `WebhookQueue`. Whatever sends
(the in-process `deliver_webhooks()` or the server's background thread) takes due deliveries
from here, sends them without holding the emulator's lock, and reports the answer back. A
non-2xx answer or a transport error schedules a retry with exponential backoff on the
emulator's clock, for up to three days, as Stripe does. Injected webhook faults (`faults.py`:
deliver twice, late, out of order) are applied when a delivery is queued.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import objects

if TYPE_CHECKING:
    from .app import Context

Transport = Callable[[str, dict[str, str], bytes], int]
GIVE_UP_AFTER = 3 * 86400
REORDER_HOLD = 30.0  # seconds a reordered delivery waits for a later event before it goes anyway


def signature_header(payload: bytes | str, secret: str, timestamp: int | None = None) -> str:
    """`t=<ts>,v1=<hmac>` exactly as Stripe computes it (HMAC-SHA256 of `"<ts>.<payload>"`)."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.{payload}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(payload: bytes | str, header: str, secret: str, tolerance: int = 300) -> bool:
    """The receiver's side, for tools and tests that do not have stripe-python at hand."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8")
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = signature_header(payload, secret, timestamp).split("v1=", 1)[1]
    signatures = [
        v for k, v in (item.split("=", 1) for item in header.split(",") if "=" in item) if k == "v1"
    ]
    return any(hmac.compare_digest(expected, sig) for sig in signatures)


@dataclass
class Delivery:
    id: str
    event_id: str
    event_type: str
    endpoint_id: str
    payload: str
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    status: str = "pending"  # pending, sending, delivered, failed
    history: list[dict[str, Any]] = field(default_factory=list)
    fault: str | None = None  # the injected webhook fault that shaped this delivery
    held: bool = False  # reorder fault: waits until the next event for the endpoint is sent


class WebhookQueue:
    """Pending and past deliveries, in event order."""

    def __init__(self, retry_base: float = 60.0, retry_max: float = 6 * 3600.0):
        self.retry_base = retry_base
        self.retry_max = retry_max
        self.deliveries: list[Delivery] = []
        self._counter = 0
        # `event type -> Fault or None`, consumed per delivery (set by the emulator to its faults).
        self.fault_source: Callable[[str], Any] | None = None
        self.reorder_hold = REORDER_HOLD

    def _new(self, event: dict[str, Any], endpoint_id: str, now: float, payload: str) -> Delivery:
        self._counter += 1
        delivery = Delivery(
            id=f"whdel_{self._counter:08d}",
            event_id=event["id"],
            event_type=event["type"],
            endpoint_id=endpoint_id,
            payload=payload,
            created_at=now,
            next_attempt_at=now,
        )
        self.deliveries.append(delivery)
        return delivery

    def enqueue(self, event: dict[str, Any], endpoint_id: str, now: float) -> Delivery:
        payload = json.dumps(event, separators=(",", ": "), indent=2)
        # An earlier delivery held back by a reorder fault goes right after this one.
        held = [d for d in self.deliveries if d.held and d.endpoint_id == endpoint_id]
        delivery = self._new(event, endpoint_id, now, payload)
        for earlier in held:
            earlier.held = False
            self.deliveries.remove(earlier)
            self.deliveries.append(earlier)
        fault = self.fault_source(event["type"]) if self.fault_source is not None else None
        if fault is not None:
            delivery.fault = fault.id
            if fault.delay_seconds:
                delivery.next_attempt_at = now + fault.delay_seconds
            if fault.reorder:
                delivery.held = True
            if fault.duplicate:
                twin = self._new(event, endpoint_id, now, payload)
                twin.fault = fault.id
                twin.next_attempt_at = delivery.next_attempt_at
                twin.held = delivery.held
        return delivery

    def backoff(self, attempts: int) -> float:
        return min(self.retry_base * (2 ** max(attempts - 1, 0)), self.retry_max)

    def take_due(
        self, now: float, *, retry_now: bool = False, exclude: set[str] | None = None
    ) -> list[Delivery]:
        """Due deliveries, marked `sending` so that another sender (thread) leaves them alone."""
        exclude = exclude or set()
        due = [
            d
            for d in self.deliveries
            if d.status == "pending"
            and d.id not in exclude
            and (retry_now or d.next_attempt_at <= now)
            and not (d.held and now - d.created_at < self.reorder_hold)
        ]
        for delivery in due:
            delivery.status = "sending"
        return due

    def record(
        self, delivery: Delivery, status_code: int | None, now: float, error: str | None = None
    ) -> None:
        delivery.attempts += 1
        delivery.history.append({"at": now, "status": status_code, "error": error})
        if status_code is not None and 200 <= status_code < 300:
            delivery.status = "delivered"
        elif now - delivery.created_at >= GIVE_UP_AFTER:
            delivery.status = "failed"
        else:
            delivery.status = "pending"
            delivery.next_attempt_at = now + self.backoff(delivery.attempts)

    def pending(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.status == "pending"]

    def to_json(self) -> dict[str, Any]:
        return {"counter": self._counter, "deliveries": [asdict(d) for d in self.deliveries]}

    def load_json(self, data: dict[str, Any]) -> None:
        self._counter = int(data.get("counter", 0))
        self.deliveries = [Delivery(**d) for d in data.get("deliveries", [])]
        for delivery in self.deliveries:
            if delivery.status == "sending":  # interrupted mid-send: send again
                delivery.status = "pending"


def requests_transport(timeout: float = 10.0) -> Transport:
    """POSTs with `requests`: what Stripe's own delivery looks like to a receiver."""
    import requests

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        return requests.post(url, data=body, headers=headers, timeout=timeout).status_code

    return send


def webhook_endpoint_create(
    ctx: Context,
    url: str,
    enabled_events: list[str],
    *,
    api_version: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    endpoint = objects.webhook_endpoint(
        ctx.store.new_id("webhook_endpoint"), ctx.now(), url, list(enabled_events), api_version
    )
    endpoint["description"] = description
    endpoint["metadata"] = metadata or {}
    endpoint["_secret"] = "whsec_" + ctx.store.random_string(32)
    return ctx.store.add("webhook_endpoint", endpoint)
