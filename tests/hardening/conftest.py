"""Helpers of the hardening tests (issue 17): hostile input answers a 4xx in the contract's
error shape and changes nothing."""

from __future__ import annotations

import pytest

from credits.models import CreditAccount, CreditHold, CreditPurchase, CreditTransaction


def ledger_state(organization) -> tuple:
    """Everything a refused request must leave as it was."""
    account = CreditAccount.objects.filter(organization=organization).first()
    return (
        account.balance if account else None,
        CreditTransaction.objects.filter(organization=organization).count(),
        CreditHold.objects.filter(organization=organization).count(),
        CreditPurchase.objects.filter(organization=organization).count(),
    )


def assert_error_shape(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture
def operator(platform_client):
    """A platform key that may grant, consume and write usage."""
    return platform_client("credits:grant", "credits:consume", "usage:write", "organizations:read")


from tests.usage.conftest import _fresh_counters, _seeded, _usage_invariants  # noqa: E402, F401
