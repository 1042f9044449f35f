"""Fault injection: errors, rate limits, hangs past the client's timeout and forced declines for
the next N matching requests; webhooks delivered twice, late or out of order; the request counter."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from stripe_emulator import InProcessHTTPClient

from .conftest import KEY


class Receiver:
    def __init__(self):
        self.received: list[tuple[dict, bytes]] = []

    def __call__(self, url, headers, body) -> int:
        self.received.append((headers, body))
        return 200

    def events(self) -> list[tuple[str, str]]:
        return [(json.loads(b)["type"], json.loads(b)["id"]) for _, b in self.received]


def retrying_client(emu, timeout: float = 80.0) -> stripe.StripeClient:
    return stripe.StripeClient(
        KEY, http_client=InProcessHTTPClient(emu, timeout=timeout), max_network_retries=1
    )


def test_a_500_then_stripe_pythons_retry_succeeds(emu):
    fault = emu.faults.add(method="POST", path="/v1/customers", status=500, times=1)
    assert fault["times"] == 1 and fault["kind"] == "status"
    with pytest.raises(stripe.APIError) as caught:
        stripe.Customer.create(api_key=KEY, email="a@example.com")
    assert caught.value.http_status == 500
    assert emu.objects("customer") == []
    emu.faults.add(method="POST", path="/v1/customers", status=500)
    created = retrying_client(emu).v1.customers.create({"email": "b@example.com"})
    assert [c["id"] for c in emu.objects("customer")] == [created.id]
    assert emu.request_count("POST", "/v1/customers") == 1
    assert emu.request_count("POST", "/v1/customers", include_faults=True) == 3
    assert emu.faults.active() == []


def test_a_500_after_the_work_was_done_replays_the_stored_answer(emu):
    """`processed=True`: Stripe carried the request out, then answered 500. A retry with the same
    Idempotency-Key gets the stored answer of the request that was carried out, not a second charge."""
    fault = emu.faults.add(method="POST", path="/v1/payment_intents", status=500, processed=True)
    assert fault["processed"] is True
    params = {"amount": 700, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    with pytest.raises(stripe.APIError) as caught:
        stripe.PaymentIntent.create(api_key=KEY, idempotency_key="pi-500", **params)
    assert caught.value.http_status == 500
    [intent] = emu.objects("payment_intent")  # the work was done; the client never heard
    assert intent["status"] == "succeeded" and len(emu.objects("charge")) == 1
    again = stripe.PaymentIntent.create(api_key=KEY, idempotency_key="pi-500", **params)
    assert again.id == intent["id"] and again.status == "succeeded"
    assert again.last_response.headers["idempotent-replayed"] == "true"
    assert emu.request_log[-1]["replayed"] is True
    assert len(emu.objects("payment_intent")) == 1 and len(emu.objects("charge")) == 1
    assert emu.request_count("POST", "/v1/payment_intents") == 1
    with pytest.raises(stripe.IdempotencyError):  # the stored answer belongs to these parameters only
        stripe.PaymentIntent.create(api_key=KEY, idempotency_key="pi-500", **{**params, "amount": 701})

    # stripe-python's own retry of the 500 (same key) gets the stored answer too
    emu.faults.add(method="POST", path="/v1/payment_intents", status=500, processed=True)
    retried = retrying_client(emu).v1.payment_intents.create({**params, "amount": 900})
    assert retried.status == "succeeded" and retried.last_response.headers["idempotent-replayed"] == "true"
    assert sorted(i["amount"] for i in emu.objects("payment_intent")) == [700, 900]
    assert emu.request_count("POST", "/v1/payment_intents", succeeded=True) == 2
    assert emu.request_count("POST", "/v1/payment_intents", succeeded=True, include_replays=True) == 4


def test_a_500_fault_is_not_carried_out_unless_asked(emu):
    """A status fault answers instead of the API by default (in-process and over the admin path)."""
    emu.faults.add(method="POST", path="/v1/customers", status=500)
    with pytest.raises(stripe.APIError):
        stripe.Customer.create(api_key=KEY, idempotency_key="c-1")
    assert emu.objects("customer") == []
    created = stripe.Customer.create(api_key=KEY, idempotency_key="c-1")  # nothing stored: it runs
    assert [c["id"] for c in emu.objects("customer")] == [created.id]
    assert "idempotent-replayed" not in created.last_response.headers
    for fields, carried_out in (({}, False), ({"processed": "true"}, True)):
        body = json.dumps({"method": "POST", "path": "/v1/customers", "status": 503, **fields})
        status, _, answer = emu.handle(
            "POST", "/_emulator/faults", {"Content-Type": "application/json"}, body
        )
        assert status == 200 and json.loads(answer).get("processed", False) is carried_out
        before = len(emu.objects("customer"))
        with pytest.raises(stripe.APIError):
            stripe.Customer.create(api_key=KEY)
        assert len(emu.objects("customer")) == before + carried_out


def test_a_429_carries_retry_after(emu):
    emu.faults.add(method="GET", path="/v1/customers/*", status=429, retry_after=2)
    customer = stripe.Customer.create(api_key=KEY)
    with pytest.raises(stripe.RateLimitError) as caught:
        stripe.Customer.retrieve(customer.id, api_key=KEY)
    assert caught.value.http_status == 429 and caught.value.error.code == "rate_limit"
    assert caught.value.headers["retry-after"] == "2"
    assert stripe.Customer.retrieve(customer.id, api_key=KEY).id == customer.id  # times=1: it passed


def test_only_matching_requests_are_hit(emu):
    emu.faults.add(method="POST", path="/v1/payment_intents/*/confirm", status=503, times=None)
    pi = stripe.PaymentIntent.create(api_key=KEY, amount=1000, currency="usd", payment_method="pm_card_visa")
    for _ in range(2):
        with pytest.raises(stripe.APIError):
            stripe.PaymentIntent.confirm(pi.id, api_key=KEY)
    assert len(emu.faults.active()) == 1 and emu.faults.active()[0]["hits"] == 2
    emu.faults.clear()
    assert stripe.PaymentIntent.confirm(pi.id, api_key=KEY).status == "succeeded"


def test_a_hang_past_the_client_timeout_after_the_work_was_done(emu):
    emu.faults.add(method="POST", path="/v1/customers", hang=120)
    started = time.monotonic()
    with pytest.raises(stripe.APIConnectionError):
        stripe.Customer.create(api_key=KEY, email="slow@example.com", idempotency_key="cust-1")
    assert time.monotonic() - started < 60  # the in-process client does not wait the 120 s
    assert len(emu.objects("customer")) == 1  # Stripe did the work; the client never heard
    again = stripe.Customer.create(api_key=KEY, email="slow@example.com", idempotency_key="cust-1")
    assert [c["id"] for c in emu.objects("customer")] == [again.id]
    assert emu.request_log[-1]["replayed"] is True


def test_stripe_pythons_own_retry_survives_a_hang(emu):
    emu.faults.add(method="POST", path="/v1/payment_intents", hang=30)
    pi = retrying_client(emu, timeout=10).v1.payment_intents.create(
        {"amount": 1500, "currency": "usd", "payment_method": "pm_card_visa", "confirm": True}
    )
    assert pi.status == "succeeded"
    assert len(emu.objects("payment_intent")) == 1 and len(emu.objects("charge")) == 1
    assert emu.request_count("POST", "/v1/payment_intents") == 1  # the retry was a replay


def test_a_hang_before_the_work_and_a_short_hang(emu):
    emu.faults.add(method="POST", path="/v1/customers", hang=120, processed=False)
    with pytest.raises(stripe.APIConnectionError):
        stripe.Customer.create(api_key=KEY)
    assert emu.objects("customer") == []
    emu.faults.add(method="GET", path="/v1/customers", hang=0.3)
    started = time.monotonic()
    assert stripe.Customer.list(api_key=KEY).data == []
    assert time.monotonic() - started >= 0.3


def test_a_forced_decline(emu, customer):
    pm = customer.invoice_settings.default_payment_method
    emu.faults.add(method="POST", path="/v1/payment_intents", decline="insufficient_funds", times=2)
    for _ in range(2):
        with pytest.raises(stripe.CardError) as caught:
            stripe.PaymentIntent.create(
                api_key=KEY, amount=800, currency="usd", customer=customer.id, payment_method=pm, confirm=True
            )
        assert (
            caught.value.code == "card_declined" and caught.value.error.decline_code == "insufficient_funds"
        )
    paid = stripe.PaymentIntent.create(
        api_key=KEY, amount=800, currency="usd", customer=customer.id, payment_method=pm, confirm=True
    )
    assert paid.status == "succeeded"
    emu.faults.add(decline="expired_card")  # anywhere: here, an invoice payment
    invoice = stripe.Invoice.create(api_key=KEY, customer=customer.id)
    stripe.InvoiceItem.create(
        api_key=KEY, customer=customer.id, invoice=invoice.id, amount=500, currency="usd"
    )
    stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY)
    with pytest.raises(stripe.CardError) as caught:
        stripe.Invoice.pay(invoice.id, api_key=KEY)
    assert caught.value.code == "expired_card"


def test_fault_arguments_are_checked(emu):
    with pytest.raises(ValueError):
        emu.faults.add(path="/v1/customers")
    with pytest.raises(ValueError):
        emu.faults.add(status=500, hang=3)
    with pytest.raises(ValueError):
        emu.faults.webhook()


def test_a_webhook_delivered_twice(emu):
    receiver = Receiver()
    emu.set_webhook_transport(receiver)
    endpoint = emu.create_webhook_endpoint("https://example.com/hook")
    emu.faults.webhook(duplicate=True, event_type="customer.created")
    stripe.Customer.create(api_key=KEY)
    stripe.Customer.create(api_key=KEY)
    emu.deliver_webhooks()
    events = receiver.events()
    assert [t for t, _ in events] == ["customer.created"] * 3
    assert events[0][1] == events[1][1] != events[2][1]
    for headers, body in receiver.received:
        stripe.Webhook.construct_event(body.decode(), headers["Stripe-Signature"], endpoint["secret"])


def test_a_webhook_delivered_late(emu):
    emu.clock.freeze()
    receiver = Receiver()
    emu.set_webhook_transport(receiver)
    emu.create_webhook_endpoint("https://example.com/hook")
    emu.faults.webhook(delay_seconds=120)
    customer = stripe.Customer.create(api_key=KEY)
    stripe.Customer.modify(customer.id, api_key=KEY, name="N")
    emu.deliver_webhooks()
    assert [t for t, _ in receiver.events()] == ["customer.updated"]
    emu.clock.advance(119)
    emu.deliver_webhooks()
    assert len(receiver.received) == 1
    emu.clock.advance(1)
    emu.deliver_webhooks()
    assert [t for t, _ in receiver.events()] == ["customer.updated", "customer.created"]


def test_webhooks_out_of_order(emu, customer, monthly_price):
    receiver = Receiver()
    emu.set_webhook_transport(receiver)
    emu.create_webhook_endpoint("https://example.com/hook")
    emu.faults.webhook(reorder=True, event_type="customer.subscription.created")
    stripe.Subscription.create(api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}])
    emu.deliver_webhooks()
    assert "customer.subscription.created" not in [t for t, _ in receiver.events()]  # waits for a later one
    stripe.Subscription.modify(emu.objects("subscription")[0]["id"], api_key=KEY, metadata={"k": "v"})
    emu.deliver_webhooks()
    assert [t for t, _ in receiver.events()][-2:] == [
        "customer.subscription.updated",
        "customer.subscription.created",
    ]


def test_faults_over_the_admin_path(emu):
    def admin(method, path, data=None):
        status, _, body = emu.handle(
            method, path, {"Content-Type": "application/json"}, json.dumps(data or {})
        )
        return status, json.loads(body)

    status, fault = admin(
        "POST", "/_emulator/faults", {"method": "POST", "path": "/v1/customers", "status": 500}
    )
    assert status == 200 and fault["id"].startswith("fault_")
    assert admin("GET", "/_emulator/faults")[1]["faults"][0]["path"] == "/v1/customers"
    with pytest.raises(stripe.APIError):
        stripe.Customer.create(api_key=KEY)
    status, _, _ = emu.handle("POST", "/_emulator/faults", None, "decline=lost_card&times=forever")
    assert status == 200
    with pytest.raises(stripe.CardError):
        stripe.PaymentIntent.create(
            api_key=KEY, amount=600, currency="usd", payment_method="pm_card_visa", confirm=True
        )
    assert admin("DELETE", "/_emulator/faults") == (200, {"faults": []})
    status, fault = admin("POST", "/_emulator/faults/webhooks", {"duplicate": True, "times": 2})
    assert status == 200 and fault["duplicate"] is True and fault["times"] == 2
    assert admin("POST", "/_emulator/faults", {"path": "/v1/x"})[0] == 400
    status, body = admin("GET", "/_emulator/requests?method=POST&path=/v1/payment_intents")
    assert (status, body) == (200, {"count": 1})
