"""Fault injection: what a real Stripe (or the network in between) does on a bad day.

Request faults match the next N API requests by method and path (`*` wildcards allowed, for
example `/v1/payment_intents/*/confirm`) and

- answer a status instead of the API: `status=500` (an `api_error`), `status=429` with
  `retry_after=seconds` (a `rate_limit` error and a `Retry-After` header), any other status.
  By default the request is not carried out; with `processed=True` it is carried out first and
  its answer lost (Stripe did the work, then failed): the result is stored under the request's
  Idempotency-Key, so a retry with the key gets that stored answer, as from real Stripe;
- `hang=seconds`: the answer comes that late. With `processed=True` (the default) the request is
  carried out first, which is the case a client must survive: Stripe did the work, the client
  timed out and retries. The server really waits; the in-process client (`InProcessHTTPClient`,
  whose `timeout` defaults to stripe-python's 80 s) raises `stripe.APIConnectionError` at once
  when the hang reaches its timeout, as a real timeout would, without waiting;
- `decline="insufficient_funds"` (any decline code): the next N card payments decline with that
  code whatever the card. With a method or path, only payments made by a matching request;
  without, any payment, including renewals made by a test clock.

Webhook faults match the next N deliveries (optionally of one `event_type` pattern):
`duplicate=True` sends the event twice, `delay_seconds=N` sends it N seconds late (on the
emulator clock), `reorder=True` holds it back until the next event for the same endpoint has
been sent (at most `webhooks.REORDER_HOLD` seconds of the emulator clock).

In-process: `emu.faults.add(...)`, `emu.faults.webhook(...)`, `emu.faults.clear()`,
`emu.faults.active()`. Over HTTP: `POST /_emulator/faults` and `POST /_emulator/faults/webhooks`
with the same fields (JSON or form), `GET /_emulator/faults`, `DELETE /_emulator/faults`.
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import asdict, dataclass
from typing import Any

DECLINE_ERROR_CODES = {"expired_card", "incorrect_cvc", "processing_error", "incorrect_number"}


class RequestTimeout(Exception):
    """Raised by `Emulator.handle(..., timeout=t)` when an injected hang reaches `t`."""

    def __init__(self, seconds: float, processed: bool):
        super().__init__(f"the emulator hung for {seconds} s (fault injection)")
        self.seconds = seconds
        self.processed = processed


@dataclass
class Fault:
    id: str
    kind: str  # "status", "hang", "decline", "webhook"
    method: str | None = None
    path: str | None = None
    times: int | None = 1  # None: until cleared
    status: int | None = None
    retry_after: float | None = None
    message: str | None = None
    hang: float | None = None
    processed: bool = True  # status faults: False unless asked for (see `Faults.add`)
    decline: str | None = None
    event_type: str | None = None
    duplicate: bool = False
    delay_seconds: float | None = None
    reorder: bool = False
    hits: int = 0

    def matches_request(self, method: str | None, path: str | None) -> bool:
        if self.method is not None and (method or "").upper() != self.method:
            return False
        if self.path is not None:
            if path is None:
                return False
            if not fnmatch.fnmatchcase(path.rstrip("/") or "/", self.path.rstrip("/") or "/"):
                return False
        return True

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: v for k, v in data.items() if v not in (None, False) or k in ("times", "hits")}


class Faults:
    """The faults waiting to happen; thread-safe, consumed as they fire."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    # ------------------------------------------------------------------ adding
    def add(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        hang: float | None = None,
        processed: bool | None = None,
        decline: str | None = None,
        times: int | None = 1,
        message: str | None = None,
    ) -> dict[str, Any]:
        """The next `times` matching requests answer `status` (429 when only `retry_after` is
        given), hang for `hang` seconds, or decline their card payments with `decline`.
        `processed`: whether the request is carried out before the fault answers (default: yes
        for a hang, no for a status)."""
        if retry_after is not None and status is None:
            status = 429
        effects = [status is not None, hang is not None, decline is not None]
        if sum(effects) != 1:
            raise ValueError("a fault needs exactly one of status (or retry_after), hang, decline")
        if status is not None and not 400 <= int(status) <= 599:
            raise ValueError("status must be an HTTP error status (400-599)")
        if times is not None and int(times) < 1:
            raise ValueError("times must be at least 1 (or None: until cleared)")
        kind = "status" if status is not None else "hang" if hang is not None else "decline"
        if processed is None:
            processed = kind != "status"
        fault = Fault(
            id=f"fault_{next(self._ids)}",
            kind=kind,
            method=method.upper() if method else None,
            path=path or None,
            times=None if times is None else int(times),
            status=None if status is None else int(status),
            retry_after=None if retry_after is None else float(retry_after),
            message=message,
            hang=None if hang is None else float(hang),
            processed=bool(processed),
            decline=decline,
        )
        with self._lock:
            self._faults.append(fault)
        return fault.to_json()

    def webhook(
        self,
        *,
        duplicate: bool = False,
        delay_seconds: float | None = None,
        reorder: bool = False,
        times: int | None = 1,
        event_type: str | None = None,
    ) -> dict[str, Any]:
        """The next `times` webhook deliveries (of `event_type`, a pattern such as `invoice.*`)
        are sent twice, `delay_seconds` late, or after the next event (`reorder`)."""
        if not (duplicate or delay_seconds or reorder):
            raise ValueError("a webhook fault needs duplicate, delay_seconds or reorder")
        if times is not None and int(times) < 1:
            raise ValueError("times must be at least 1 (or None: until cleared)")
        fault = Fault(
            id=f"fault_{next(self._ids)}",
            kind="webhook",
            times=None if times is None else int(times),
            event_type=event_type or None,
            duplicate=bool(duplicate),
            delay_seconds=None if not delay_seconds else float(delay_seconds),
            reorder=bool(reorder),
        )
        with self._lock:
            self._faults.append(fault)
        return fault.to_json()

    def from_json(self, data: dict[str, Any], *, webhook: bool = False) -> dict[str, Any]:
        """`add()` / `webhook()` from the fields of an admin request (strings allowed)."""

        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value in (None, "") else float(value)

        def flag(key: str, default: bool | None = False) -> bool | None:
            value = data.get(key)
            if value in (None, ""):
                return default
            return value is True or str(value).lower() in ("1", "true", "yes", "on")

        times_raw = data.get("times", 1)
        times = None if times_raw in (None, "", "forever", "null") else int(times_raw)
        if webhook:
            return self.webhook(
                duplicate=flag("duplicate"),
                delay_seconds=number("delay_seconds"),
                reorder=flag("reorder"),
                times=times,
                event_type=data.get("event_type") or None,
            )
        status = number("status")
        return self.add(
            data.get("method") or None,
            data.get("path") or None,
            status=None if status is None else int(status),
            retry_after=number("retry_after"),
            hang=number("hang"),
            processed=flag("processed", None),
            decline=data.get("decline") or None,
            times=times,
            message=data.get("message") or None,
        )

    # ------------------------------------------------------------------ inspection
    def active(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_json() for f in self._faults]

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: str) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    # ------------------------------------------------------------------ firing
    def _take(self, predicate) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if predicate(fault):
                    fault.hits += 1
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    return fault
        return None

    def take_request(self, method: str, path: str) -> Fault | None:
        """A status or hang fault for this API request, consumed."""
        return self._take(lambda f: f.kind in ("status", "hang") and f.matches_request(method, path))

    def take_decline(self, method: str | None, path: str | None) -> str | None:
        """The decline code forced on a card payment made now (by this request, if any)."""
        fault = self._take(
            lambda f: (
                f.kind == "decline"
                and (
                    (f.method is None and f.path is None)
                    or (method is not None and f.matches_request(method, path))
                )
            )
        )
        return fault.decline if fault else None

    def take_webhook(self, event_type: str) -> Fault | None:
        return self._take(
            lambda f: (
                f.kind == "webhook"
                and (f.event_type is None or fnmatch.fnmatchcase(event_type, f.event_type))
            )
        )


def status_body(fault: Fault, request_id: str) -> tuple[dict[str, str], dict[str, Any]]:
    """Headers and body Stripe answers with for an injected status."""
    headers: dict[str, str] = {}
    if fault.status == 429:
        error: dict[str, Any] = {
            "code": "rate_limit",
            "doc_url": "https://docs.stripe.com/error-codes/rate-limit",
            "message": fault.message
            or "Request rate limit exceeded. You can learn more about rate limits here "
            "https://docs.stripe.com/rate-limits.",
            "type": "invalid_request_error",
        }
    elif fault.status is not None and fault.status >= 500:
        error = {
            "message": fault.message
            or "An unknown error occurred while processing your request (injected by the emulator).",
            "type": "api_error",
        }
    else:
        error = {"message": fault.message or "Injected by the emulator.", "type": "invalid_request_error"}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
    return headers, {"error": error}
