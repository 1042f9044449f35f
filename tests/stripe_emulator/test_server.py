"""Server mode for real: `python -m stripe_emulator` as a subprocess, stripe-python over HTTP,
state kept across a restart, and webhooks to a local receiver with a retry after a failure."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import stripe

from .conftest import KEY

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningEmulator:
    def __init__(self, port: int, state: Path):
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stripe_emulator",
                "--port",
                str(port),
                "--state",
                str(state),
                "--webhook-retry-base",
                "0.3",
                "--webhook-interval",
                "0.05",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 90  # a loaded machine can take long to start Python
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if requests.get(f"{self.url}/healthz", timeout=5).ok:
                    return
            except requests.RequestException:  # not listening yet, or too slow to answer
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            "the emulator did not start: " + (self.proc.stdout.read() if self.proc.stdout else "")
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> stripe.StripeClient:
        return stripe.StripeClient(KEY, base_addresses={"api": self.url}, max_network_retries=0)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def server(tmp_path):
    running = RunningEmulator(free_port(), tmp_path / "state.json")
    yield running
    if running.proc.poll() is None:
        running.stop()


def test_state_persists_across_restarts(server, tmp_path):
    client = server.client()
    customer = client.v1.customers.create(
        {
            "email": "persist@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Starter"},
            "lookup_key": "starter_monthly",
        }
    )
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": price.id}]}, {"idempotency_key": "sub-1"}
    )
    assert sub.status == "active"
    server.stop()
    assert json.loads((tmp_path / "state.json").read_text())["version"] == 1

    restarted = RunningEmulator(server.port, tmp_path / "state.json")
    try:
        client = restarted.client()
        assert client.v1.customers.retrieve(customer.id).email == "persist@example.com"
        assert client.v1.subscriptions.retrieve(sub.id).status == "active"
        assert [p.id for p in client.v1.prices.list({"lookup_keys": ["starter_monthly"]}).data] == [price.id]
        replay = client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": price.id}]}, {"idempotency_key": "sub-1"}
        )
        assert replay.id == sub.id
        second = client.v1.customers.create({"email": "second@example.com"})
        assert second.id != customer.id
        assert {c.id for c in client.v1.customers.list().data} == {customer.id, second.id}
        invoice = client.v1.invoices.retrieve(sub.latest_invoice)
        page = requests.get(invoice.hosted_invoice_url, timeout=5)
        assert page.status_code == 200 and invoice.number in page.text
        pdf = requests.get(invoice.invoice_pdf, timeout=5)
        assert pdf.headers["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    finally:
        restarted.stop()


def test_global_style_over_http(server):
    saved = stripe.api_base, stripe.default_http_client
    stripe.api_base, stripe.default_http_client = server.url, None
    try:
        created = stripe.Customer.create(api_key=KEY, email="global@example.com")
        assert stripe.Customer.retrieve(created.id, api_key=KEY).email == "global@example.com"
        with pytest.raises(stripe.CardError):
            stripe.PaymentIntent.create(
                api_key=KEY,
                amount=500,
                currency="usd",
                confirm=True,
                payment_method="pm_card_chargeDeclinedInsufficientFunds",
            )
    finally:
        stripe.api_base, stripe.default_http_client = saved


class Receiver:
    """A tiny webhook receiver: answers 500 to the first delivery, 200 afterwards."""

    def __init__(self):
        self.requests: list[tuple[dict, bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((dict(self.headers.items()), body))
                self.send_response(500 if len(received) == 1 else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"

    def wait_for(self, count: int, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_webhooks_are_delivered_signed_and_retried(server):
    receiver = Receiver()
    try:
        client = server.client()
        endpoint = client.v1.webhook_endpoints.create(
            {"url": receiver.url, "enabled_events": ["customer.created"]}
        )
        customer = client.v1.customers.create({"email": "hook@example.com"})
        receiver.wait_for(2)
        assert len(receiver.requests) == 2
        events = []
        for headers, body in receiver.requests:
            event = stripe.Webhook.construct_event(
                body.decode(), headers["Stripe-Signature"], endpoint.secret
            )
            events.append(event)
        assert [e.type for e in events] == ["customer.created", "customer.created"]
        assert events[0].id == events[1].id and events[0].data.object.id == customer.id
        # The receiver records a delivery before it answers: wait for the emulator to hear the 200.
        deadline = time.monotonic() + 60
        while client.v1.events.retrieve(events[0].id).pending_webhooks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert client.v1.events.retrieve(events[0].id).pending_webhooks == 0
        time.sleep(0.5)  # more than the 0.3 s retry base: a wrong retry would have come
        assert len(receiver.requests) == 2  # delivered: no more attempts
    finally:
        receiver.close()


def test_hosted_checkout_and_portal_pages_over_http(server):
    client = server.client()
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 1500,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Starter"},
        }
    )
    session = client.v1.checkout.sessions.create(
        {
            "mode": "subscription",
            "line_items": [{"price": price.id, "quantity": 1}],
            "success_url": "http://127.0.0.1:8000/billing?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://127.0.0.1:8000/plans",
        }
    )
    assert session.url.startswith(server.url + "/c/pay/cs_test_")
    page = requests.get(session.url, timeout=5)
    assert page.status_code == 200 and "Starter" in page.text and "text/html" in page.headers["Content-Type"]
    paid = requests.post(
        session.url, data={"card": "success", "email": "http@example.com"}, allow_redirects=False, timeout=5
    )
    assert paid.status_code == 303
    assert paid.headers["Location"] == f"http://127.0.0.1:8000/billing?session={session.id}"
    done = client.v1.checkout.sessions.retrieve(session.id)
    assert done.status == "complete"
    portal = client.v1.billing_portal.sessions.create(
        {"customer": done.customer, "return_url": "http://127.0.0.1:8000/billing"}
    )
    assert portal.url.startswith(server.url + "/p/session/bps_")
    answer = requests.post(
        portal.url,
        data={"action": "cancel_at_period_end", "subscription": done.subscription},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 303
    followed = requests.get(answer.headers["Location"], timeout=5)
    assert "will be canceled at the end" in followed.text
    assert client.v1.subscriptions.retrieve(done.subscription).cancel_at_period_end is True


def test_demo_clock_advances_from_the_command_line_and_survives_a_restart(server, tmp_path):
    client = server.client()
    customer = client.v1.customers.create(
        {"payment_method": "pm_card_visa", "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )
    price = client.v1.prices.create(
        {
            "currency": "usd",
            "unit_amount": 900,
            "recurring": {"interval": "month"},
            "product_data": {"name": "Demo"},
        }
    )
    sub = client.v1.subscriptions.create({"customer": customer.id, "items": [{"price": price.id}]})
    command = [sys.executable, "-m", "stripe_emulator", "advance", "--days", "32", "--url", server.url]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "invoice.paid" in result.stdout and "customer.subscription.updated" in result.stdout
    renewed = client.v1.subscriptions.retrieve(sub.id)
    assert renewed.latest_invoice != sub.latest_invoice
    assert client.v1.invoices.retrieve(renewed.latest_invoice).billing_reason == "subscription_cycle"
    shifted = requests.get(f"{server.url}/_emulator/time", timeout=5).json()
    assert shifted["shift_days"] >= 31.9
    server.stop()
    restarted = RunningEmulator(server.port, tmp_path / "state.json")
    try:
        assert requests.get(f"{restarted.url}/_emulator/time", timeout=5).json()["shift_days"] >= 31.9
        assert restarted.client().v1.subscriptions.retrieve(sub.id).latest_invoice == renewed.latest_invoice
    finally:
        restarted.stop()
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "advance",
            "--days",
            "1",
            "--url",
            f"http://127.0.0.1:{free_port()}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert missing.returncode != 0 and "Cannot reach the Stripe emulator" in missing.stderr


def test_a_hang_fault_times_out_a_real_client_after_the_work(server):
    set_fault = requests.post(
        f"{server.url}/_emulator/faults",
        json={"method": "POST", "path": "/v1/customers", "hang": 60},
        timeout=5,
    )
    assert set_fault.status_code == 200
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(
            f"{server.url}/v1/customers",
            data={"email": "late@example.com"},
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=(10, 0.5),
        )

    # The client gave up after 0.5 s, perhaps before the server (on a loaded machine) got to the
    # request: wait until it was carried out -- well within the 60 s the answer is held back.
    def carried_out() -> int:
        return requests.get(
            f"{server.url}/_emulator/requests", params={"method": "POST", "path": "/v1/customers"}, timeout=5
        ).json()["count"]

    deadline = time.monotonic() + 30
    while carried_out() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    listed = server.client().v1.customers.list({"email": "late@example.com"})
    assert len(listed.data) == 1  # the work was done while the answer was still held back
    assert carried_out() == 1
