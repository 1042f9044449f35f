"""Issue 17, Found 3: metadata is bounded by Stripe's model (50 keys, keys of at most 40
characters, string values of at most 500, flat) on consume, grant and reservations, by one
validator; usage events bound their dimensions the same way."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from config.exceptions import ValidationFailed
from credits.models import CreditTransaction
from credits.services import credit_consume, credit_grant, credit_hold_create
from tests.usage.conftest import admin_client_of, organization_on, plan_with_limits

from .conftest import assert_error_shape, ledger_state

pytestmark = pytest.mark.django_db
D = Decimal

BAD_METADATA = [
    {f"k{i}": "v" for i in range(51)},  # 51 keys
    {"k" * 41: "v"},  # a 41-character key
    {"": "v"},
    {"k": "v" * 501},  # a 501-character value
    {"k": "x" * 3_000_000},  # megabytes
    {"k": {"nested": "object"}},
    {"k": ["a", "list"]},
    "not an object",
    ["a", "list"],
]


def org_url(org, tail):
    return f"/api/v1/organizations/{org.pk}{tail}"


def test_consume_grant_and_reservations_refuse_unbounded_metadata(operator, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000_000  # the megabytes reach the validator
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=100)
    before = ledger_state(org)
    for i, metadata in enumerate(BAD_METADATA):
        for tail, body in [
            ("/credits/consume", {"amount": "1", "idempotency_key": f"c{i}"}),
            ("/credits/grant", {"amount": "1", "reason": "r", "idempotency_key": f"g{i}"}),
            (
                "/usage/reservations",
                {"metric": "SMS_SENT", "estimated_quantity": 1, "idempotency_key": f"r{i}"},
            ),
        ]:
            response = operator.post(org_url(org, tail), {**body, "metadata": metadata}, format="json")
            answer = assert_error_shape(response, 400, "validation_error")
            assert "metadata" in answer["fields"], (tail, answer)
    assert ledger_state(org) == before


def test_services_apply_the_same_validator(organization):
    credit_grant(organization=organization, amount=10, source="purchase", reference="seed")
    before = ledger_state(organization)
    for metadata in BAD_METADATA[:4]:
        with pytest.raises(ValidationFailed):
            credit_consume(organization=organization, amount=1, metadata=metadata)
        with pytest.raises(ValidationFailed):
            credit_grant(organization=organization, amount=1, metadata=metadata)
        with pytest.raises(ValidationFailed):
            credit_hold_create(
                organization=organization,
                amount=1,
                idempotency_key="h",
                expires_in=timedelta(hours=1),
                metadata=metadata,
            )
    assert ledger_state(organization) == before


def test_bounded_metadata_is_kept(operator):
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=100)
    metadata = {f"k{i:02}": "v" * 500 for i in range(46)} | {"n": 1.5, "b": True, "z": None, "k" * 40: 7}
    assert len(metadata) == 50
    response = operator.post(
        org_url(org, "/credits/consume"),
        {"amount": "1", "idempotency_key": "ok", "metadata": metadata},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert CreditTransaction.objects.get(pk=response.json()["transaction_id"]).metadata == metadata
    reservation = operator.post(
        org_url(org, "/usage/reservations"),
        {"metric": "SMS_SENT", "estimated_quantity": 1, "idempotency_key": "res", "metadata": {"job": "42"}},
        format="json",
    )
    assert reservation.status_code == 201, reservation.json()


def test_usage_event_dimensions_are_bounded():
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=100)
    events = [
        {"metric": "SMS_SENT", "idempotency_key": f"e{i}", "dimensions": dimensions}
        for i, dimensions in enumerate(
            [
                {f"k{i}": "v" for i in range(21)},
                {"k" * 65: "v"},
                {"k": "v" * 256},
                {"k": {"n": 1}},
                {"k": "a\x00"},
            ]
        )
    ]
    response = admin_client_of(org).post(org_url(org, "/usage/events"), {"events": events}, format="json")
    if response.status_code == 400:  # the NUL is refused for the whole body
        assert_error_shape(response, 400, "validation_error")
        response = admin_client_of(org).post(
            org_url(org, "/usage/events"), {"events": events[:4]}, format="json"
        )
    body = response.json()
    assert body["accepted"] == 0 and {r["error"] for r in body["rejected"]} == {"invalid_dimensions"}
