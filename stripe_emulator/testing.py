"""Test utilities: an emulator installed into stripe-python for the length of a test.

    from stripe_emulator.testing import installed_emulator

    with installed_emulator() as emu:
        stripe.Customer.create(api_key="sk_test_x", email="a@example.com")
        assert emu.objects("customer")

As a pytest plugin (`pytest_plugins = ["stripe_emulator.testing"]` in a conftest.py) it adds
the fixture `stripe_emulator`: a fresh emulator per test, installed the same way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

from .app import DEFAULT_BASE_URL, Emulator


@contextlib.contextmanager
def installed_emulator(emulator: Emulator | None = None, **kwargs: Any) -> Iterator[Emulator]:
    """Installs `emulator` (default: a new one) as `stripe.default_http_client` and points
    `stripe.api_base` at its base URL (`$STRIPE_API_HOST` when set, as dj-stripe uses it);
    restores both afterwards, so no request can reach a real host."""
    import stripe

    from .http_client import InProcessHTTPClient

    if emulator is None:
        kwargs.setdefault("base_url", os.environ.get("STRIPE_API_HOST") or DEFAULT_BASE_URL)
        emulator = Emulator(**kwargs)
    saved = stripe.default_http_client, stripe.api_base
    stripe.default_http_client = InProcessHTTPClient(emulator)
    stripe.api_base = emulator.base_url
    try:
        yield emulator
    finally:
        stripe.default_http_client, stripe.api_base = saved


def django_client_transport(client: Any) -> Callable[[str, dict[str, str], bytes], int]:
    """A webhook transport that POSTs through a Django test client (anything with `.post(path,
    data, content_type, **extra)`): the URL's host is ignored, its path is used."""

    def send(url: str, headers: dict[str, str], body: bytes) -> int:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        extra = {
            "HTTP_" + name.upper().replace("-", "_"): value
            for name, value in headers.items()
            if name.lower() != "content-type"
        }
        content_type = headers.get("Content-Type", "application/json")
        return client.post(path, data=body, content_type=content_type, **extra).status_code

    return send


try:
    import pytest
except ImportError:  # pragma: no cover - pytest is a dev dependency
    pytest = None

if pytest is not None:

    @pytest.fixture
    def stripe_emulator() -> Iterator[Emulator]:
        """A fresh emulator installed into stripe-python for this test."""
        with installed_emulator() as emulator:
            yield emulator
