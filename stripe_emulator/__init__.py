"""An offline, stateful emulator of the part of the Stripe API this project uses.

It speaks Stripe's wire protocol (form-encoded nested parameters, `expand[]`, cursor
pagination, error bodies and status codes, idempotency keys), serves current object shapes
(API version 2026-08-26.dahlia, checked against Stripe's fixtures3.json) and delivers signed
webhooks. The real stripe-python and dj-stripe work against it unchanged. No Django here.

Code map
--------
``endpoints/`` holds the ``/v1`` handlers, one module per section of Stripe's API reference, named after
the URL (``POST /v1/subscriptions`` is ``endpoints/subscriptions.py``; the full map is in
``endpoints/__init__.py``). The rules they call sit beside it: ``payments``, ``invoicing``,
``subscriptions``, ``catalog``, ``customers``, ``checkout``, ``portal``, ``meters``, ``disputes``,
``timeline`` (time), ``webhooks``. ``app.py`` is the request pipeline, ``routing.py`` the route table,
``render.py`` presentation and ``expand[]``, ``objects.py`` fresh objects in Stripe's shapes.

Interface
---------
``Emulator(base_url="http://stripe-emulator.invalid", clock=None, seed=None, webhook_retry_base=60.0,
webhook_transport=None, auto_deliver=False)``
    One in-memory Stripe account. ``handle(method, url_or_path, headers, body) -> (status, headers,
    body_bytes)`` is the whole HTTP surface. Any ``sk_test_...`` key is accepted.

``InProcessHTTPClient(emulator, timeout=80.0)``
    A ``stripe.HTTPClient`` that routes every request to ``emulator`` without sockets::

        stripe.default_http_client = InProcessHTTPClient(emu)          # global style
        client = stripe.StripeClient("sk_test_x", http_client=InProcessHTTPClient(emu))

Webhooks
    ``emu.create_webhook_endpoint(url, enabled_events=["*"]) -> dict`` (with ``secret``), or
    ``POST /v1/webhook_endpoints``. Events queue up per endpoint;
    ``emu.set_webhook_transport(fn)`` with ``fn(url, headers, body) -> status_code`` (for example
    ``stripe_emulator.testing.django_client_transport(client)``) and ``emu.deliver_webhooks(
    retry_now=False)`` sends what is due and returns what was attempted. A non-2xx answer is
    retried with exponential backoff on the emulator clock (``emu.clock.advance(seconds)``, or
    ``retry_now=True``). ``Emulator(auto_deliver=True)`` delivers after every request.
    The server delivers with ``requests`` from a background thread.

Time (``timeline.py``)
    ``emu.clock`` (``Clock``): real time unless ``freeze()``/``advance()``. Every object's "now" comes from
    ``emu.now_for(obj)``: its test clock's frozen time, else the emulator's clock plus its customer's own
    shift. Test clocks as in Stripe (``/v1/test_helpers/test_clocks``, ``customer.test_clock``);
    ``emu.create_test_clock(frozen_time)``; ``emu.advance(days=31)`` (everyone: the emulator's clock and
    every test clock), ``emu.advance(days=3, customer=...)``, ``emu.advance(to=ts, test_clock=...)`` run,
    in time order, trial-will-end notices, renewals (metered usage included), dunning retries
    (``emu.settings(retry_days=[3, 5, 7], final_action="cancel"|"unpaid"|"past_due")``), cancellations at
    period end, incomplete expiries and Checkout expiries; ``emu.tick()`` runs what real time made due.

Hosted pages (``hosted.py``; plain HTML forms, no JavaScript)
    Checkout: a session's ``url`` is ``{base_url}/c/pay/{id}``; ``POST`` it with ``card`` =
    ``success|decline|authenticate`` (or a test id), ``email``, ``name``; or ``emu.checkout_submit(id, card)``
    and, after 3-D Secure, ``emu.checkout_return(id)``. Portal: ``{base_url}/p/session/{id}``; ``POST`` with
    ``action`` = ``cancel_at_period_end|cancel_now|renew|switch|update_card|pay_invoice``.

Meters and disputes (``meters.py``, ``disputes.py``)
    ``/v1/billing/meters``, ``/v1/billing/meter_events``, ``/v1/billing/meter_event_adjustments``,
    event summaries; ``/v1/disputes``; ``emu.create_dispute(charge_id, ...)``,
    ``emu.close_dispute(id, won=...)``.

Faults (``faults.py``)
    ``emu.faults.add(method=, path=, status=|retry_after=|hang=|decline=, times=1)``,
    ``emu.faults.webhook(duplicate=|delay_seconds=|reorder=, times=1, event_type=)``, ``emu.faults.clear()``;
    ``emu.request_count(method, path)`` counts the API requests carried out. Over HTTP: ``/_emulator/faults``.

Helpers for tests and for what a customer does in a browser
    ``emu.complete_authentication(intent_id, succeed=True)`` (3-D Secure),
    ``emu.renew_subscription(sub_id)`` (the period ends now), ``emu.retry_invoice_payment(in_id)``
    (one dunning retry now).

Inspection
    ``emu.objects("payment_intent")``, ``emu.get(id)`` (any object, custom ids included),
    ``emu.events(type)``, ``emu.event_types()``, ``emu.request_log`` (method, path, idempotency_key,
    status, replayed, fault, hung), ``emu.webhooks.deliveries``, ``emu.time_report()``.

Test utilities (``stripe_emulator.testing``)
    ``installed_emulator()`` context manager: a fresh ``Emulator`` installed as
    ``stripe.default_http_client`` with ``stripe.api_base`` pointed at it, both restored after;
    the pytest fixture ``stripe_emulator`` (load with ``pytest_plugins = ["stripe_emulator.testing"]``).

Admin paths (``admin.py``)
    ``/_emulator`` (a page), ``/_emulator/advance``, ``/_emulator/time``, ``/_emulator/faults``,
    ``/_emulator/settings``, ``/_emulator/charges/{id}/dispute``, ``/_emulator/requests``,
    ``/_emulator/state``.

Server
    ``python -m stripe_emulator [--host 127.0.0.1] [--port 12111]
    [--state .local/stripe_emulator/state.json]`` (see ``--help``); for a running one
    ``python -m stripe_emulator advance --days 31 [--customer cus_...]``, ``... time``, ``... fault ...``.
"""

from . import endpoints  # noqa: F401  (registers the /v1 handlers)
from .app import API_VERSION, Emulator
from .clock import Clock
from .errors import StripeError
from .webhooks import signature_header, verify_signature


def __getattr__(name: str):
    # stripe-python is imported only by whoever uses the in-process client.
    if name == "InProcessHTTPClient":
        from .http_client import InProcessHTTPClient

        return InProcessHTTPClient
    raise AttributeError(name)


__all__ = [
    "API_VERSION",
    "Clock",
    "Emulator",
    "InProcessHTTPClient",
    "StripeError",
    "signature_header",
    "verify_signature",
]
