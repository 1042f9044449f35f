"""The emulator: one state, one lock, and the request-dispatch layer every request goes through.

`Emulator.handle()` is the whole HTTP surface (the server and the in-process client both call it):
authentication, parameter decoding, idempotency keys, routing to a handler, rendering with
`expand[]`, Stripe's error bodies, the request log, events and their webhook deliveries.
`request_hooks` run before anything else and may answer instead of the API; injected faults
(`faults.py`) come next.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from . import objects, render, spec
from .clock import Clock
from .errors import ApiError, AuthenticationError, IdempotencyError, InvalidRequestError, StripeError
from .faults import Faults, RequestTimeout, status_body
from .params import Params, decode_form
from .routing import ROUTES, Route
from .spec import conformance
from .store import Store, clone, public
from .webhooks import Delivery, Transport, WebhookQueue, requests_transport, signature_header

log = logging.getLogger("stripe_emulator")
API_VERSION = "2026-08-26.dahlia"
DEFAULT_BASE_URL = "http://stripe-emulator.invalid"
DEFAULT_ACCOUNT_ID = "acct_1StripeEmulator00000"
IDEMPOTENCY_TTL = 24 * 3600
IDEMPOTENCY_MAX_KEYS = 20_000
REQUEST_LOG_SIZE = 100_000
IDEMPOTENCY_KEY_MAX = 255
CURSOR = {"limit", "starting_after", "ending_before"}
_KEY_RE = re.compile(r"^(sk|rk)_test_[A-Za-z0-9_]+$")
_VERSION_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})(\.[a-z]+)?$")

Response = tuple[int, dict[str, str], bytes]
RequestHook = Callable[[str, str, dict[str, str]], Response | None]


class Context:
    """What a handler (or the billing logic, also outside a request) needs: the state, the time,
    and a way to emit events."""

    def __init__(
        self,
        emulator: Emulator,
        *,
        request_id: str | None = None,
        idempotency_key: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ):
        self.emulator = emulator
        self.store = emulator.store
        self.request_id = request_id
        self.idempotency_key = idempotency_key
        self.method = method  # the API request being served, if any (decline faults match on it)
        self.path = path
        self.base_url = emulator.base_url

    def now(self, obj: dict[str, Any] | None = None) -> int:
        return self.emulator.now_for(obj)

    def emit(
        self, event_type: str, obj: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return self.emulator.emit(
            event_type, obj, previous, request_id=self.request_id, key=self.idempotency_key
        )

    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        return self.emulator.render(obj)

    def emit_updated(self, event_type: str, obj: dict[str, Any], before: dict[str, Any]) -> None:
        """`*.updated` with the changed top-level keys' old values, only when something changed."""
        after = public(obj)
        previous = {k: v for k, v in before.items() if after.get(k) != v}
        if previous:
            self.emit(event_type, obj, previous)


class Emulator:
    """One in-memory Stripe account. See the package docstring for the interface."""

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE_URL,
        clock: Clock | None = None,
        seed: int | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        webhook_retry_base: float = 60.0,
        webhook_transport: Transport | None = None,
        auto_deliver: bool = False,
    ):
        self.lock = threading.RLock()
        self.base_url = base_url.rstrip("/")
        self.clock = clock or Clock()
        self.store = Store(seed)
        self.faults = Faults()
        self.webhooks = WebhookQueue(retry_base=webhook_retry_base)
        self.webhooks.fault_source = self.faults.take_webhook
        self.webhook_transport: Transport | None = webhook_transport
        self.auto_deliver = auto_deliver
        self.request_log: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_SIZE)
        self.request_hooks: list[RequestHook] = []
        self.on_change: Callable[[], None] | None = None
        self.idempotency: dict[str, dict[str, Any]] = {}
        self._local = threading.local()
        self.account = objects.account(account_id, self.clock.now())

    # ------------------------------------------------------------------ time
    def now_for(self, obj: dict[str, Any] | None = None) -> int:
        """The time as the object sees it: the frozen time of its test clock (its own `test_clock`,
        or its customer's), else the emulator's clock plus the customer's own time shift (what
        `advance(customer=...)` moves for a customer made without a test clock)."""
        if obj is None:
            return self.clock.now()
        customer = obj if obj.get("object") == "customer" else None
        clock_id = obj.get("test_clock") or obj.get("_clock")
        if customer is None and isinstance(obj.get("customer"), str):
            customer = self.store.get("customer", obj["customer"])
        if clock_id is None and customer is not None:
            clock_id = customer.get("test_clock")
        if clock_id:
            test_clock = self.store.get("test_clock", clock_id)
            if test_clock is not None:
                return int(test_clock["frozen_time"])
        shift = customer.get("_time_shift", 0) if customer is not None else 0
        return self.clock.now() + int(shift)

    # ------------------------------------------------------------------ HTTP surface
    def handle(
        self,
        method: str,
        url_or_path: str,
        headers: dict[str, str] | None = None,
        body: bytes | str | None = None,
        *,
        timeout: float | None = None,
    ) -> Response:
        """One HTTP request. `timeout` is the client's (the in-process client passes it): an
        injected hang that reaches it raises `RequestTimeout` instead of waiting."""
        method = method.upper()
        parts = urlsplit(url_or_path)
        path = parts.path or "/"
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        for hook in list(self.request_hooks):
            answer = hook(method, path, lowered)
            if answer is not None:
                return answer
        if path.startswith("/v1/") or path == "/v1":
            fault = self.faults.take_request(method, path)
            if fault is not None and fault.kind == "status":
                if fault.processed:
                    # Carried out (and its result stored under the Idempotency-Key), answer lost.
                    self._handle_api(method, path, parts.query, lowered, body, fault=fault)
                    return self._fault_response(method, path, lowered, fault, log=False)
                return self._fault_response(method, path, lowered, fault)
            response = self._handle_api(method, path, parts.query, lowered, body, fault=fault)
            if fault is not None and fault.kind == "hang":
                response = self._hang(fault, response, timeout)
        else:
            from .pages import handle_page

            response = handle_page(self, method, path, parts.query, body, lowered)
        if self.auto_deliver and not getattr(self._local, "delivering", False):
            self.deliver_webhooks()
        return response

    def _fault_response(
        self, method: str, path: str, headers: dict[str, str], fault: Any, *, log: bool = True
    ) -> Response:
        """`log=False`: the request was carried out (and logged as such) before the fault answered."""
        with self.lock:
            request_id = "req_" + self.store.random_string(14)
            extra, payload = status_body(fault, request_id)
            if log:
                self._log(
                    method, path, headers.get("idempotency-key"), fault.status, request_id, fault=fault.id
                )
        response_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": headers.get("stripe-version") or API_VERSION,
            **extra,
        }
        return int(fault.status), response_headers, json.dumps(payload, indent=2).encode()

    def _hang(self, fault: Any, response: Response, timeout: float | None) -> Response:
        """An answer that comes `fault.hang` seconds late (never under the lock)."""
        if timeout is not None and fault.hang >= timeout:
            raise RequestTimeout(fault.hang, fault.processed)
        time.sleep(fault.hang)
        if fault.processed:
            return response
        _status, headers, _ = response
        body = ApiError("The request timed out (injected by the emulator).").body(
            headers.get("Request-Id", "")
        )
        return 500, {**headers, "Stripe-Should-Retry": "true"}, json.dumps(body).encode()

    def _handle_api(
        self, method: str, path: str, query: str, headers: dict[str, str], body: Any, fault: Any = None
    ) -> Response:
        if fault is not None and not fault.processed:
            with self.lock:
                request_id = "req_" + self.store.random_string(14)
                self._log(method, path, headers.get("idempotency-key"), 0, request_id, fault=fault.id)
            return 0, {"Request-Id": request_id}, b""
        if isinstance(body, bytes):
            body = body.decode("utf-8")
        with self.lock:
            request_id = "req_" + self.store.random_string(14)
            idem_key = headers.get("idempotency-key") if method == "POST" else None
            version = headers.get("stripe-version") or API_VERSION
            extra_headers: dict[str, str] = {}
            status = 200
            stored = validated = False
            api_key = fingerprint = None
            try:
                api_key = self._authenticate(headers)
                self._check_version(headers.get("stripe-version"))
                if idem_key is not None and len(idem_key) > IDEMPOTENCY_KEY_MAX:
                    raise InvalidRequestError(
                        f"Idempotency keys can be at most {IDEMPOTENCY_KEY_MAX} characters long.",
                        param="Idempotency-Key",
                    )
                pairs = parse_qsl(query, keep_blank_values=True)
                if method == "POST" and body:
                    pairs += parse_qsl(body, keep_blank_values=True)
                data = decode_form(pairs)
                fingerprint = hashlib.sha256(
                    json.dumps([method, path, data], sort_keys=True).encode()
                ).hexdigest()
                if idem_key:
                    replay = self._idempotent_replay(api_key, idem_key, fingerprint)
                    if replay is not None:
                        self._log(method, path, idem_key, replay[0], request_id, replayed=True)
                        return replay
                route, groups = self._route(method, path)
                params = Params(data)
                self._validate(method, route, params)
                validated = True
                ctx = Context(self, request_id=request_id, idempotency_key=idem_key, method=method, path=path)
                result = route.handler(ctx, params, **groups)
                payload = self.present(result, params.list("expand"))
            except StripeError as error:
                status = error.status
                payload = error.body(request_id)
                extra_headers.update(error.headers)
            except (
                Exception
            ) as exc:  # an emulator bug: answer like Stripe's 500, keep the traceback in the log
                log.exception("stripe emulator: %s %s failed", method, path)
                status = 500
                payload = ApiError(f"The emulator failed: {type(exc).__name__}: {exc}").body(request_id)
                extra_headers["Stripe-Should-Retry"] = "false"
            response_headers = {
                "Content-Type": "application/json",
                "Request-Id": request_id,
                "Stripe-Version": version,
                **extra_headers,
            }
            if idem_key:
                response_headers["Idempotency-Key"] = idem_key
            if status < 400:
                conformance.observe(f"{method} {path}", payload)
            raw = json.dumps(payload, indent=2).encode()
            # Stripe saves a result only once the endpoint started executing: a request that failed
            # validation (or authentication) is not stored, so a corrected retry with the key runs.
            if idem_key and fingerprint and validated and status < 500 and status != 429:
                if len(self.idempotency) >= IDEMPOTENCY_MAX_KEYS:
                    self._prune_idempotency()
                self.idempotency[f"{api_key}:{idem_key}"] = {
                    "fingerprint": fingerprint,
                    "created": self.clock.now(),
                    "response": [status, response_headers, raw.decode()],
                }
                stored = True
            self._log(method, path, idem_key, status, request_id, hung=fault.id if fault else None)
            if (method != "GET" or stored) and self.on_change is not None:
                self.on_change()
            return status, response_headers, raw

    @staticmethod
    def _validate(method: str, route: Route, params: Params) -> None:
        """The whole parameter tree against Stripe's own description of the endpoint (`spec/`);
        then, for what Stripe accepts, whether the emulator implements it (`allowed`)."""
        if not spec.check_request(method, route.path, params.data):
            if route.allowed is not None:
                params.check_known(set(route.allowed) | (CURSOR if method == "GET" else set()))
            return
        if route.allowed is None:
            return
        implemented = set(route.allowed) | {"expand"} | (CURSOR if method == "GET" else set())
        for key in params.data:
            if key not in implemented:
                raise InvalidRequestError(
                    f"The Stripe emulator does not implement the parameter {key} here (Stripe accepts it).",
                    code="parameter_unknown",
                    param=key,
                )

    @staticmethod
    def _check_version(version: str | None) -> None:
        """A `Stripe-Version` header must name a real API version no newer than the pinned one."""
        if version is None or version == API_VERSION:
            return
        match = _VERSION_RE.match(version)
        valid = False
        if match is not None:
            try:
                day = datetime.date.fromisoformat(match.group(1))
            except ValueError:
                day = None
            valid = day is not None and day <= datetime.date.fromisoformat(API_VERSION[:10])
        if not valid:
            raise InvalidRequestError(f"Invalid Stripe API version: {version}", param="Stripe-Version")

    def _authenticate(self, headers: dict[str, str]) -> str:
        auth = headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if not key and auth.lower().startswith("basic "):
            import base64

            key = base64.b64decode(auth[6:]).decode(errors="replace").split(":", 1)[0]
        if not key:
            raise AuthenticationError(
                "You did not provide an API key. You need to provide your API key in the Authorization "
                "header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY').",
                status=401,
            )
        if not _KEY_RE.match(key):
            shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
            raise AuthenticationError(
                f"Invalid API Key provided: {shown}", code="api_key_invalid", status=401
            )
        return key

    def _idempotent_replay(self, api_key: str, key: str, fingerprint: str) -> Response | None:
        entry = self.idempotency.get(f"{api_key}:{key}")
        if entry is None or self.clock.now() - entry["created"] > IDEMPOTENCY_TTL:
            return None
        if entry["fingerprint"] != fingerprint:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they were first used "
                f"with. Try using a key other than '{key}' if you meant to execute a different request.",
            )
        status, headers, raw = entry["response"]
        return status, {**headers, "Idempotent-Replayed": "true"}, raw.encode()

    def _prune_idempotency(self) -> None:
        """Forgets keys older than 24 hours, and the oldest tenth when there are still too many
        (stripe-python sends a key with every POST; the server keeps them in its state file)."""
        oldest = self.clock.now() - IDEMPOTENCY_TTL
        for key in [k for k, v in self.idempotency.items() if v["created"] < oldest]:
            del self.idempotency[key]
        if len(self.idempotency) >= IDEMPOTENCY_MAX_KEYS:
            for key in list(self.idempotency)[: IDEMPOTENCY_MAX_KEYS // 10]:
                del self.idempotency[key]

    def _route(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        path = path.rstrip("/") or path
        matches = [(r, m) for r in ROUTES if r.method == method and (m := r.pattern.match(path))]
        if matches:
            # A literal segment (`/v1/invoices/create_preview`) wins over a placeholder (`/v1/invoices/{id}`).
            route, match = min(matches, key=lambda rm: len(rm[1].groupdict()))
            return route, match.groupdict()
        raise InvalidRequestError(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs or we can help "
            "at https://support.stripe.com/.",
            status=404,
        )

    def _log(
        self,
        method: str,
        path: str,
        key: str | None,
        status: int,
        request_id: str,
        replayed=False,
        fault: str | None = None,
        hung: str | None = None,
    ) -> None:
        """`fault`: the injected fault that answered instead of the API; `hung`: the fault that
        delayed (a hang) or replaced (a status with `processed`) an answer the API did give."""
        self.request_log.append(
            {
                "method": method,
                "path": path,
                "idempotency_key": key,
                "status": status,
                "request_id": request_id,
                "replayed": replayed,
                "fault": fault,
                "hung": hung,
            }
        )

    def request_count(
        self,
        method: str | None = None,
        path: str | None = None,
        *,
        status: int | None = None,
        succeeded: bool | None = None,
        include_replays: bool = False,
        include_faults: bool = False,
    ) -> int:
        """How many API requests the emulator carried out, e.g. `request_count("POST",
        "/v1/payment_intents")` (`*` wildcards in `path`). Idempotent replays and requests
        answered by an injected status fault are left out unless asked for; `succeeded=True`
        counts 2xx answers only."""
        import fnmatch

        def keep(entry: dict[str, Any]) -> bool:
            if method is not None and entry["method"] != method.upper():
                return False
            if path is not None and not fnmatch.fnmatchcase(entry["path"].rstrip("/"), path.rstrip("/")):
                return False
            if status is not None and entry["status"] != status:
                return False
            if succeeded is not None and (200 <= entry["status"] < 300) != succeeded:
                return False
            if entry["replayed"] and not include_replays:
                return False
            return not (entry.get("fault") and not include_faults)

        with self.lock:
            return sum(1 for entry in self.request_log if keep(entry))

    # ------------------------------------------------------------------ rendering (render.py)
    def render(self, obj: dict[str, Any]) -> dict[str, Any]:
        """The object as the API serves it: public keys plus the parts composed from other objects."""
        return render.render(self, obj)

    def present(self, result: Any, expand: list[str]) -> Any:
        return render.present(self, result, expand)

    # ------------------------------------------------------------------ events and webhooks
    def emit(
        self,
        event_type: str,
        obj: dict[str, Any],
        previous: dict[str, Any] | None = None,
        *,
        request_id: str | None = None,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Records an event (a snapshot of `obj`) and queues it for every endpoint that listens."""
        with self.lock:
            data: dict[str, Any] = {"object": self.render(obj) if "_seq" in obj else clone(obj)}
            if previous:
                data["previous_attributes"] = clone(previous)
            endpoints = [
                e
                for e in self.store.all("webhook_endpoint")
                if e["status"] == "enabled"
                and ("*" in e["enabled_events"] or event_type in e["enabled_events"])
            ]
            event = self.store.add(
                "event",
                {
                    "id": self.store.new_id("event"),
                    "object": "event",
                    "api_version": API_VERSION,
                    "created": self.now_for(obj),
                    "data": data,
                    "livemode": False,
                    "pending_webhooks": len(endpoints),
                    "request": {"id": request_id, "idempotency_key": key},
                    "type": event_type,
                },
            )
            conformance.observe(f"event {event_type}", public(event))
            now = self.clock.now_float()
            for endpoint in endpoints:
                payload = public(event)
                payload["api_version"] = endpoint.get("api_version") or API_VERSION
                self.webhooks.enqueue(payload, endpoint["id"], now)
            return event

    def set_webhook_transport(self, transport: Transport | None) -> None:
        """`transport(url, headers, body) -> status code`; used by `deliver_webhooks()`."""
        self.webhook_transport = transport

    def deliver_webhooks(self, *, retry_now: bool = False) -> list[dict[str, Any]]:
        """Sends every due delivery once (new events raised meanwhile included) and returns what was
        attempted. Failures are retried later with backoff: on a later call once the emulator's clock
        has passed the retry time, or at once with `retry_now=True`."""
        transport = self.webhook_transport or requests_transport()
        attempted: list[dict[str, Any]] = []
        done: set[str] = set()
        previous = getattr(self._local, "delivering", False)
        self._local.delivering = True
        try:
            while True:
                with self.lock:
                    due = self.webhooks.take_due(self.clock.now_float(), retry_now=retry_now, exclude=done)
                if not due:
                    break
                for delivery in due:
                    done.add(delivery.id)
                    attempted.append(self._send(delivery, transport))
        finally:
            self._local.delivering = previous
        return attempted

    def _send(self, delivery: Delivery, transport: Transport) -> dict[str, Any]:
        with self.lock:
            endpoint = self.store.get("webhook_endpoint", delivery.endpoint_id)
            if endpoint is None or endpoint["status"] != "enabled":
                delivery.status = "failed"
                return {"delivery": delivery.id, "event": delivery.event_id, "status": None, "skipped": True}
            url, secret = endpoint["url"], endpoint["_secret"]
        body = delivery.payload.encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(body, secret),
        }
        status: int | None
        error = None
        try:
            status = int(transport(url, headers, body))
        except Exception as exc:  # a receiver that cannot be reached is retried like a 5xx
            status, error = None, f"{type(exc).__name__}: {exc}"
        with self.lock:
            self.webhooks.record(delivery, status, self.clock.now_float(), error)
            if delivery.status == "delivered":
                event = self.store.get("event", delivery.event_id)
                if event is not None:
                    event["pending_webhooks"] = max(0, event["pending_webhooks"] - 1)
            if self.on_change is not None:
                self.on_change()
        return {
            "delivery": delivery.id,
            "event": delivery.event_id,
            "type": delivery.event_type,
            "endpoint": delivery.endpoint_id,
            "url": url,
            "status": status,
            "error": error,
            "attempt": delivery.attempts,
            "delivered": delivery.status == "delivered",
        }

    def create_webhook_endpoint(
        self, url: str, enabled_events: list[str] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A webhook endpoint made from outside the API; the answer carries its `secret`."""
        from .webhooks import webhook_endpoint_create

        with self.lock:
            ctx = Context(self)
            return self.render_with_secret(
                webhook_endpoint_create(ctx, url, enabled_events or ["*"], **fields)
            )

    def render_with_secret(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        data = self.render(endpoint)
        data["secret"] = endpoint["_secret"]
        return data

    # ------------------------------------------------------------------ what happens outside the API
    def complete_authentication(self, intent_id: str, succeed: bool = True) -> dict[str, Any]:
        """The customer passes (or fails) 3-D Secure on a `requires_action` Payment/SetupIntent."""
        from .payments import complete_authentication

        kind = "setup_intent" if intent_id.startswith("seti_") else "payment_intent"
        with self.lock:
            ctx = Context(self)
            return self.render(complete_authentication(ctx, self.store.require(kind, intent_id), succeed))

    def renew_subscription(self, sub_id: str) -> dict[str, Any] | None:
        """The subscription's current period ends now (what a test clock does at period end), and its
        renewal invoice, which Stripe leaves a draft for about an hour, is finalized and charged at once."""
        from .subscriptions import finalize_and_collect, renew_subscription

        with self.lock:
            ctx = Context(self)
            inv = renew_subscription(ctx, self.store.require("subscription", sub_id))
            if inv is not None and inv["status"] == "draft" and inv.get("automatically_finalizes_at"):
                finalize_and_collect(ctx, inv)
            return self.render(inv) if inv else None

    def retry_invoice_payment(self, invoice_id: str) -> dict[str, Any]:
        """One automatic collection retry of an unpaid invoice, as Stripe's dunning schedule does."""
        from .invoicing import retry_invoice_payment

        with self.lock:
            ctx = Context(self)
            inv = self.store.require("invoice", invoice_id)
            retry_invoice_payment(ctx, inv)
            return self.render(inv)

    # ------------------------------------------------------------------ time: test clocks and the scheduler
    def advance(
        self,
        seconds: float = 0,
        *,
        days: float = 0,
        hours: float = 0,
        to: int | None = None,
        customer: str | None = None,
        test_clock: str | None = None,
        test_clocks: bool = True,
    ) -> dict[str, Any]:
        """Moves time forward and runs what falls due on the way (renewals, trial ends, payment
        retries, expiries), in time order. With `test_clock`: that clock (`to` is its new
        frozen_time). With `customer`: its test clock, or its own time if it has none. Otherwise the
        emulator's clock, for everyone without a test clock, and (`test_clocks=True`) every test
        clock by as much. Returns what happened: `{"from", "to", "events": [...types]}`."""
        from . import timeline

        delta = int(seconds + days * 86400 + hours * 3600)
        with self.lock:
            marker = self.store.seq
            ctx = Context(self)
            if test_clock is not None or (customer is not None and self._clock_of(customer)):
                clock_id = test_clock or self._clock_of(customer or "")
                clock = self.store.require("test_clock", clock_id)
                start = int(clock["frozen_time"])
                target = to if to is not None else start + delta
                timeline.advance_test_clock(ctx, clock, target)
                end = int(clock["frozen_time"])
            elif customer is not None:
                cust = self.store.require("customer", customer)
                start = self.now_for(cust)
                timeline.advance_customer(ctx, cust, (to - start) if to is not None else delta)
                end = self.now_for(cust)
            else:
                start = self.clock.now()
                amount = (to - start) if to is not None else delta
                if amount < 0:
                    raise ValueError("time only moves forward")
                timeline.advance_everyone(ctx, amount, test_clocks=test_clocks)
                end = self.clock.now()
            events = [e["type"] for e in self.store.all("event") if e["_seq"] > marker]
            if self.on_change is not None:
                self.on_change()
            return {"from": start, "to": end, "events": events}

    def _clock_of(self, customer_id: str) -> str | None:
        customer = self.store.require("customer", customer_id)
        return customer.get("test_clock")

    def tick(self) -> int:
        """Runs what real time has made due for everyone without a test clock (the server calls
        this every second). Returns how many things happened."""
        from . import timeline

        with self.lock:
            marker = self.store.seq
            done = timeline.run_due(Context(self))
            if self.store.seq != marker and self.on_change is not None:
                self.on_change()
            return done

    def time_report(self) -> dict[str, Any]:
        from datetime import UTC, datetime

        with self.lock:
            now = self.clock.now()
            return {
                "now": now,
                "now_iso": datetime.fromtimestamp(now, UTC).isoformat(),
                "shift_days": round((now - time.time()) / 86400, 2),
                "test_clocks": {
                    c["id"]: {"frozen_time": c["frozen_time"], "name": c["name"], "status": c["status"]}
                    for c in self.store.all("test_clock")
                },
                "shifted_customers": {
                    c["id"]: c["_time_shift"] for c in self.store.all("customer") if c.get("_time_shift")
                },
            }

    def create_test_clock(self, frozen_time: int | None = None, name: str | None = None) -> dict[str, Any]:
        """A test clock (as `POST /v1/test_helpers/test_clocks`), frozen at `frozen_time` (default now)."""
        from .timeline import new_test_clock

        with self.lock:
            ctx = Context(self)
            when = frozen_time if frozen_time is not None else self.clock.now()
            return self.render(new_test_clock(ctx, int(when), name))

    # ------------------------------------------------------------------ disputes
    def create_dispute(
        self, charge_id: str, *, reason: str = "fraudulent", amount: int | None = None, inquiry: bool = False
    ) -> dict[str, Any]:
        """The cardholder disputes a charge (`charge.dispute.created`, and for a chargeback
        `charge.dispute.funds_withdrawn`)."""
        from .disputes import open_dispute

        with self.lock:
            ctx = Context(self)
            charge = self.store.require("charge", charge_id)
            return self.render(open_dispute(ctx, charge, reason=reason, amount=amount, inquiry=inquiry))

    def close_dispute(self, dispute_id: str, *, won: bool = True) -> dict[str, Any]:
        """The bank decides (`charge.dispute.closed`; won: `charge.dispute.funds_reinstated`)."""
        from .disputes import close

        with self.lock:
            ctx = Context(self)
            return self.render(close(ctx, self.store.require("dispute", dispute_id), won=won))

    # ------------------------------------------------------------------ what a customer does on a hosted page
    def checkout_submit(
        self, session_id: str, card: str = "success", *, email: str | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """The customer submits the hosted Checkout page with a test card (`success`, `decline`,
        `authenticate`, or a test id such as `pm_card_visa`). Returns `{"status", "redirect",
        "message"}`: `complete` (redirect to success_url), `requires_action` (redirect to the 3-D
        Secure page; then `complete_authentication()` and `checkout_return()`), `declined`."""
        from .checkout import submit

        with self.lock:
            ctx = Context(self)
            outcome = submit(ctx, self.store.require("checkout_session", session_id), card, email, name)
            return {"status": outcome.status, "redirect": outcome.redirect, "message": outcome.message}

    def checkout_return(self, session_id: str) -> dict[str, Any]:
        """The customer is back from the 3-D Secure page."""
        from .checkout import finish_after_authentication

        with self.lock:
            ctx = Context(self)
            session = self.store.require("checkout_session", session_id)
            outcome = finish_after_authentication(ctx, session)
            return {"status": outcome.status, "redirect": outcome.redirect, "message": outcome.message}

    def settings(self, *, retry_days: list[int] | None = None, final_action: str | None = None) -> None:
        """Dunning: days between automatic retries, and what happens after the last one
        (`cancel`, `unpaid`, or `past_due` to leave the subscription as it is)."""
        with self.lock:
            if retry_days is not None:
                self.store.extra["retry_days"] = list(retry_days)
            if final_action is not None:
                if final_action not in ("cancel", "unpaid", "past_due"):
                    raise ValueError(final_action)
                self.store.extra["final_action"] = final_action

    # ------------------------------------------------------------------ inspection
    def objects(self, kind: str) -> list[dict[str, Any]]:
        """Every object of a type as the API would serve it, oldest first."""
        with self.lock:
            return [self.render(o) for o in self.store.all(kind)]

    def get(self, object_id: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.store.find(object_id)
            return self.render(found[1]) if found else None

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [public(e) for e in self.store.all("event") if event_type in (None, e["type"])]

    def event_types(self) -> list[str]:
        return [e["type"] for e in self.store.all("event")]

    @contextlib.contextmanager
    def context(self) -> Iterator[Context]:
        """A context outside any request (helpers, the scheduler)."""
        with self.lock:
            yield Context(self)

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        with self.lock:
            return {
                "version": 1,
                "store": self.store.to_json(),
                "account": self.account,
                "webhooks": self.webhooks.to_json(),
                "idempotency": self.idempotency,
                "clock": self.clock.to_json(),
            }

    def load_json(self, data: dict[str, Any]) -> None:
        with self.lock:
            self.store = Store.from_json(data["store"])
            self.account = data.get("account", self.account)
            self.webhooks.load_json(data.get("webhooks", {}))
            self.idempotency = data.get("idempotency", {})
            if data.get("clock"):
                self.clock.load_json(data["clock"])
