"""Shared by the reliability tests: threads released together, clients, ledger reads."""

from __future__ import annotations

import threading
from decimal import Decimal

from django.db import connection
from rest_framework.test import APIClient

from credits.models import CreditAccount, CreditTransaction


def run_together(count: int, work, *, timeout: float = 300) -> list[tuple[str, object]]:
    """`work(i)` in `count` threads (one database connection each) released by one barrier;
    answers ("ok", result) or ("error", exception) per thread."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=120)
            results[i] = ("ok", work(i))
        except Exception as exc:
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def balance(org) -> Decimal:
    account = CreditAccount.objects.filter(organization=org).first()
    return account.balance if account is not None else Decimal(0)


def ledger_sum(org) -> Decimal:
    return sum((t.amount for t in CreditTransaction.objects.filter(organization=org)), Decimal(0))


def bearer(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


def credits_url(org, tail: str = "") -> str:
    return f"/api/v1/organizations/{org.pk}/credits{tail}"


def credits_checkout_paid(client, org, emulator, pack_code: str) -> str:
    """A credits Checkout page for `pack_code`, paid with a good card; answers the session id.
    The webhooks it produces are left to the test's transport."""
    response = client.post(
        f"/api/v1/organizations/{org.pk}/checkout-sessions",
        {
            "kind": "credits",
            "pack": pack_code,
            "success_url": "http://localhost/ok",
            "cancel_url": "http://localhost/no",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    session_id = response.json()["id"]
    assert emulator.checkout_submit(session_id, "success")["status"] == "complete"
    return session_id


def subscribe(org, *, plan: str = "starter", payment_method: str = "pm_card_visa", trial_days: int = 0):
    from billing.services import subscription_create

    return subscription_create(
        organization=org, plan=plan, interval="month", payment_method=payment_method, trial_days=trial_days
    )


def sms(org, key: str, quantity: int) -> None:
    from usage.services import usage_events_record

    result = usage_events_record(
        organization=org, events=[{"metric": "SMS_SENT", "quantity": quantity, "idempotency_key": key}]
    )
    assert result.accepted == 1


def meter_events(emulator) -> list[dict]:
    return [e for e in emulator.objects("meter_event") if e["event_name"] == "sms_sent"]
