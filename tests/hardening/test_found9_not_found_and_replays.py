"""Issue 17, Found 9: an unmatched /api/... path is the contract's JSON 404 with DEBUG on or
off (never Django's technical 404 page); grant replays carry `Idempotent-Replayed`."""

from __future__ import annotations

import pytest
from django.test import override_settings

from .conftest import assert_error_shape, ledger_state

pytestmark = pytest.mark.django_db

PATHS = [
    "/api/nope",
    "/api/v1/nope",
    "/api/v1/organizations/not-a-uuid/credits",
    "/api/v2/plans",
    "/api/v1/plans/",
]


@pytest.mark.parametrize("debug", [True, False])
def test_unmatched_api_paths_answer_the_json_404(debug, client):
    with override_settings(DEBUG=debug):
        for path in PATHS:
            for method in (client.get, client.post, client.delete):
                response = method(path)
                body = assert_error_shape(response, 404, "not_found")
                assert b"urlpatterns" not in response.content and b"URLconf" not in response.content
                assert body == {"error": "not_found", "message": "Not found."}


def test_grant_replays_carry_the_replayed_header(organization, operator):
    url = f"/api/v1/organizations/{organization.pk}/credits/grant"
    payload = {"amount": "10", "reason": "promo", "idempotency_key": "once"}
    first = operator.post(url, payload, format="json")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    before = ledger_state(organization)
    again = operator.post(url, payload, format="json")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["transaction_id"] == first.json()["transaction_id"]
    assert ledger_state(organization) == before
    conflict = operator.post(url, {**payload, "amount": "11"}, format="json")
    assert_error_shape(conflict, 409, "idempotency_conflict")
