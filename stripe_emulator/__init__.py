"""An offline, stateful emulator of the part of the Stripe API this project uses.

It speaks Stripe's wire protocol (form-encoded nested parameters, `expand[]`, cursor
pagination, error bodies and status codes, idempotency keys), serves current object shapes
(API version 2026-08-26.dahlia, checked against Stripe's fixtures3.json) and delivers signed
webhooks. The real stripe-python and dj-stripe work against it unchanged. No Django here.

Interface
---------
``Emulator(base_url="http://stripe-emulator.invalid", clock=None, seed=None, webhook_retry_base=60.0,
webhook_transport=None, auto_deliver=False)``
    One in-memory Stripe account. ``handle(method, url_or_path, headers, body) -> (status, headers,
    body_bytes)`` is the whole HTTP surface. Any ``sk_test_...`` key is accepted.

``InProcessHTTPClient(emulator)``
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

Time
    ``emu.clock`` (``Clock``): real time unless ``freeze()``/``advance()``. Every object's "now" comes
    from ``emu.now_for(obj)``; part 2's test clocks plug in there.

Helpers for tests and for what a customer does in a browser
    ``emu.complete_authentication(intent_id, succeed=True)`` (3-D Secure),
    ``emu.renew_subscription(sub_id)`` (the period ends), ``emu.retry_invoice_payment(in_id)``
    (an automatic dunning retry), ``emu.settings(retry_days=[3, 5, 7], final_action="cancel")``.

Inspection
    ``emu.objects("payment_intent")``, ``emu.get(id)``, ``emu.events(type)``, ``emu.event_types()``,
    ``emu.request_log`` (method, path, idempotency_key, status, replayed), ``emu.webhooks.deliveries``.

Test utilities (``stripe_emulator.testing``)
    ``installed_emulator()`` context manager: a fresh ``Emulator`` installed as
    ``stripe.default_http_client`` with ``stripe.api_base`` pointed at it, both restored after;
    the pytest fixture ``stripe_emulator`` (load with ``pytest_plugins = ["stripe_emulator.testing"]``).

Seams for part 2 (test clocks, fault injection)
    ``emu.test_clocks`` (test clock id -> ``Clock``, read by ``now_for``); ``emu.request_hooks``
    (``hook(method, path, headers) -> response or None``, run before the API); ``WebhookQueue.take_due``
    (the one place deliveries are picked); ``billing.renew_subscription`` / ``end_trial`` /
    ``retry_invoice_payment`` (period logic).

Server
    ``python -m stripe_emulator [--host 127.0.0.1] [--port 12111]
    [--state .local/stripe_emulator/state.json]`` (see ``--help``)
"""

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
