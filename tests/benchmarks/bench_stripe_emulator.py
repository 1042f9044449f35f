"""How long the in-process Stripe emulator takes for 1,000 `stripe.Customer.create` calls.

Run with `make bench` (prints the figure; never asserts a time).
"""

from __future__ import annotations

import time

import stripe

from stripe_emulator.testing import installed_emulator

KEY = "sk_test_emulator000000000000000000000000"
CALLS = 1000


def test_in_process_customer_creations():
    with installed_emulator() as emu:
        started = time.perf_counter()
        for i in range(CALLS):
            stripe.Customer.create(api_key=KEY, email=f"bench{i}@example.com", metadata={"i": str(i)})
        elapsed = time.perf_counter() - started
        listed = stripe.Customer.list(api_key=KEY, limit=100)
    assert len(emu.objects("customer")) == CALLS and len(listed.data) == 100
    per_call_ms = elapsed * 1000 / CALLS
    figure = f"{CALLS:,} Customer.create in {elapsed:.2f} s ({per_call_ms:.2f} ms per call)"
    print(f"\nstripe emulator, in-process: {figure}")
