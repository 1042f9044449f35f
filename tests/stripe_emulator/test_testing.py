"""The reusable test utilities: `installed_emulator()` and the `stripe_emulator` pytest fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import stripe

from stripe_emulator import Emulator, InProcessHTTPClient
from stripe_emulator.testing import installed_emulator

from .conftest import KEY


def test_installed_emulator_routes_stripe_and_restores_it(monkeypatch):
    monkeypatch.setenv("STRIPE_API_HOST", "http://stripe-emulator.invalid")
    before = stripe.default_http_client, stripe.api_base
    with installed_emulator() as emu:
        assert isinstance(stripe.default_http_client, InProcessHTTPClient)
        assert stripe.api_base == "http://stripe-emulator.invalid"
        created = stripe.Customer.create(api_key=KEY, email="in@example.com")
        assert [c["id"] for c in emu.objects("customer")] == [created.id]
        invoice = stripe.Invoice.create(api_key=KEY, customer=created.id)
        stripe.InvoiceItem.create(
            api_key=KEY, customer=created.id, invoice=invoice.id, amount=100, currency="usd"
        )
        url = stripe.Invoice.finalize_invoice(invoice.id, api_key=KEY).hosted_invoice_url
        assert url.startswith("http://stripe-emulator.invalid/")
    assert (stripe.default_http_client, stripe.api_base) == before


def test_each_emulator_has_its_own_state():
    with installed_emulator() as first:
        stripe.Customer.create(api_key=KEY)
    with installed_emulator(Emulator()) as second:
        assert stripe.Customer.list(api_key=KEY).data == []
    assert len(first.objects("customer")) == 1 and second.objects("customer") == []


def test_the_pytest_fixture_works_as_a_plugin(tmp_path):
    (tmp_path / "test_uses_fixture.py").write_text(
        textwrap.dedent(
            """
            import stripe

            def test_fixture(stripe_emulator):
                customer = stripe.Customer.create(api_key="sk_test_plugin", email="p@example.com")
                assert stripe_emulator.get(customer.id)["email"] == "p@example.com"
            """
        )
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "stripe_emulator.testing",
            "-p",
            "no:django",
            "-p",
            "no:cacheprovider",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
