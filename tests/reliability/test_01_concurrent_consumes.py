"""Item 1: 50 concurrent consumes of 1 against a balance of 10, over HTTP with an API key:
exactly 10 succeed, 40 answer 402 `insufficient_credits`, the balance ends at 0, no 500."""

from decimal import Decimal

import pytest

from billing.services import api_key_create
from credits.models import CreditTransaction
from credits.services import credit_grant
from tests.billing.factories import OrganizationFactory

from .helpers import balance, bearer, credits_url, ledger_sum, run_together

pytestmark = pytest.mark.django_db(transaction=True)


def test_fifty_concurrent_consumes_of_one_against_ten():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=10)
    raw_key = api_key_create(organization=org, name="load").raw_key

    def consume(i: int):
        response = bearer(raw_key).post(
            credits_url(org, "/consume"),
            {"amount": "1", "reason": "sms", "idempotency_key": f"c{i}"},
            format="json",
        )
        return response.status_code, response.json()

    results = run_together(50, consume)
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] != "ok"][:3]
    statuses = sorted(status for _, (status, _) in results)
    assert statuses.count(200) == 10 and statuses.count(402) == 40, statuses
    refused = [body for _, (status, body) in results if status == 402]
    assert {body["error"] for body in refused} == {"insufficient_credits"}
    assert balance(org) == 0 == ledger_sum(org)
    assert CreditTransaction.objects.filter(organization=org, kind="consume").count() == 10
    finals = sorted(Decimal(body["balance"]) for _, (status, body) in results if status == 200)
    assert finals == [Decimal(i) for i in range(10)]  # every success saw its own balance
