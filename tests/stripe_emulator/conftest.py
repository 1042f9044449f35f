"""Fixtures for the emulator's own tests: a fresh emulator per test, installed into stripe-python."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator, InProcessHTTPClient
from stripe_emulator.testing import installed_emulator

KEY = "sk_test_emulator000000000000000000000000"


@pytest.fixture
def emu() -> Emulator:
    with installed_emulator() as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> stripe.StripeClient:
    """The StripeClient style, on the same emulator as the global style."""
    return stripe.StripeClient(KEY, http_client=InProcessHTTPClient(emu))


@pytest.fixture
def customer(emu: Emulator) -> stripe.Customer:
    """A customer whose default payment method is a Visa that pays."""
    return stripe.Customer.create(
        api_key=KEY,
        email="jenny@example.com",
        name="Jenny Rosen",
        payment_method="pm_card_visa",
        invoice_settings={"default_payment_method": "pm_card_visa"},
    )


@pytest.fixture
def monthly_price(emu: Emulator) -> stripe.Price:
    product = stripe.Product.create(api_key=KEY, name="Professional")
    return stripe.Price.create(
        api_key=KEY,
        product=product.id,
        currency="usd",
        unit_amount=3000,
        recurring={"interval": "month"},
        lookup_key="pro_monthly",
    )


@pytest.fixture
def yearly_price(emu: Emulator, monthly_price: stripe.Price) -> stripe.Price:
    return stripe.Price.create(
        api_key=KEY,
        product=monthly_price.product,
        currency="usd",
        unit_amount=30000,
        recurring={"interval": "year"},
        lookup_key="pro_yearly",
    )
