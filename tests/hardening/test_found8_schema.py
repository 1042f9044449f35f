"""Issue 17, Found 8: the published schema is the API. Lists are documented with their paginated
shape, every operation documents its error responses in the contract's shape, delete statuses
match; and Schemathesis, run over `/api/schema/` with an organization key and a platform key,
finds no server error and no schema violation.

`make test` runs a bounded number of cases; `make fuzz` (FUZZ_SECONDS, default 300) a long run.
"""

from __future__ import annotations

import os

import pytest
from django.core import signals
from django.core.cache import cache
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from schemathesis.generation import GenerationMode

from billing.models import PlatformScope
from billing.services import api_key_create, platform_key_create
from credits.services import credit_grant

from .schema_fuzz import fuzz

pytestmark = pytest.mark.django_db

PAGINATED = [
    ("/api/v1/organizations", "get"),
    ("/api/v1/organizations/{org}/credits/transactions", "get"),
    ("/api/v1/organizations/{org}/usage/reservations", "get"),
    ("/api/v1/organizations/{org}/invoices", "get"),
    ("/api/v1/organizations/{org}/billing-history", "get"),
    ("/api/v1/organizations/{org}/members", "get"),
    ("/api/v1/organizations/{org}/api-keys", "get"),
]


@pytest.fixture
def schema(client):
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def resolve(schema, ref_or_schema):
    ref = ref_or_schema.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def test_lists_are_documented_with_their_paginated_shape(schema):
    for path, method in PAGINATED:
        body = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
        shape = resolve(schema, body)
        assert {"count", "next", "previous", "results"} <= set(shape["properties"]), (path, shape)
        assert shape["properties"]["results"]["type"] == "array"
        names = {p["name"] for p in schema["paths"][path][method].get("parameters", [])}
        assert {"page", "page_size"} <= names, (path, names)


def test_every_operation_documents_its_errors_in_the_error_shape(schema):
    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"error", "message"}
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            expected = {"400", "429", "503"}
            if operation.get("security") != [{}] and "/organizations" in path:
                expected |= {"401", "403"}
            if "{" in path:
                expected.add("404")
            if method in ("post", "put", "patch", "delete"):
                expected |= {"409", "413"}
            assert expected <= codes, (method, path, sorted(codes))
            for code in codes - {"200", "201", "202", "204"}:
                content = operation["responses"][code]["content"]["application/json"]["schema"]
                assert content == {"$ref": "#/components/schemas/Error"}, (method, path, code)
    consume = schema["paths"]["/api/v1/organizations/{org}/credits/consume"]["post"]["responses"]
    assert "402" in consume


# Operations that call Stripe in the request: 502 `stripe_error` when Stripe refuses, 503
# `stripe_unavailable` when it is down (503 is documented everywhere).
CALLS_STRIPE = [
    ("/api/v1/organizations", "post"),
    ("/api/v1/organizations/{org}/subscription", "post"),
    ("/api/v1/organizations/{org}/subscription", "patch"),
    ("/api/v1/organizations/{org}/subscription/cancel", "post"),
    ("/api/v1/organizations/{org}/subscription/resume", "post"),
    ("/api/v1/organizations/{org}/subscription/upcoming-invoice", "get"),
    ("/api/v1/organizations/{org}/payment-methods", "post"),
    ("/api/v1/organizations/{org}/payment-methods/{pm}", "delete"),
    ("/api/v1/organizations/{org}/payment-methods/{pm}/default", "post"),
    ("/api/v1/organizations/{org}/payment-methods/setup-intent", "post"),
    ("/api/v1/organizations/{org}/checkout-sessions", "post"),
    ("/api/v1/organizations/{org}/portal-sessions", "post"),
    ("/api/v1/organizations/{org}/credits/purchase", "post"),
    ("/api/v1/organizations/{org}/credits/auto-refill", "put"),
    ("/api/v1/organizations/{org}/payment-links", "post"),
    ("/api/v1/organizations/{org}/billing-summary", "get"),
]
# Reads of the local mirror and queued work: no Stripe call in the request, so no 502.
NO_STRIPE = [
    ("/api/v1/organizations", "get"),
    ("/api/v1/organizations/{org}/subscription", "get"),
    ("/api/v1/organizations/{org}/payment-methods", "get"),
    ("/api/v1/organizations/{org}/credits/auto-refill", "get"),
    ("/api/v1/organizations/{org}/credits/consume", "post"),
    ("/api/v1/organizations/{org}/invoices", "get"),
    ("/api/v1/organizations/{org}/invoices", "post"),
    ("/api/v1/organizations/{org}/invoices/{invoice_id}/pdf", "get"),
    ("/api/v1/organizations/{org}/invoices/{invoice_id}/send", "post"),
    ("/api/v1/organizations/{org}/usage/sync", "post"),
]


def test_operations_calling_stripe_document_502_and_503(schema):
    for path, method in CALLS_STRIPE:
        responses = schema["paths"][path][method]["responses"]
        assert "stripe_error" in responses["502"]["description"], (method, path)
        assert "stripe_unavailable" in responses["503"]["description"], (method, path)
    for path, method in NO_STRIPE:
        assert "502" not in schema["paths"][path][method]["responses"], (method, path)


def test_delete_statuses_match_the_schema(schema, organization, admin_client):
    documented = schema["paths"]["/api/v1/organizations/{org}/api-keys/{key_id}"]["delete"]["responses"]
    created = api_key_create(organization=organization, name="to revoke")
    response = admin_client.delete(f"/api/v1/organizations/{organization.pk}/api-keys/{created.api_key.pk}")
    assert str(response.status_code) in documented and response.status_code == 200
    assert "204" not in documented and response.json()["revoked_at"]


def test_schemathesis_over_the_published_schema(billing_org, capsys):
    """0 server errors and 0 schema violations. Throttle counters are cleared before each case so
    the run reaches the views rather than the rate limiter (429 is documented everywhere)."""
    credit_grant(organization=billing_org, amount=1000, source="purchase", reference="fuzz-seed")
    org_key = api_key_create(organization=billing_org, name="fuzz").raw_key
    platform_key = platform_key_create(name="fuzz", scopes=list(PlatformScope.values)).raw_key
    seconds = float(os.environ.get("FUZZ_SECONDS", "0"))
    examples = int(os.environ.get("FUZZ_EXAMPLES", "25" if seconds else "1"))
    # The WSGI handler closes the database connection after each request; the test's
    # transaction lives on it, so keep it open for the run (as Django's test client does).
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        report = _fuzz(billing_org, org_key, platform_key, examples, seconds)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    with capsys.disabled():
        print("\n" + report.summary())
    assert report.cases >= report.operations * 2, report.summary()
    assert not report.failures, report.summary() + "\n" + "\n".join(report.failures[:40])
    assert report.server_errors == 0


def _fuzz(billing_org, org_key, platform_key, examples, seconds):
    # The bounded run (make test): one case per operation for the organization key with valid
    # and with schema-violating data, and for the platform key with valid data; `make fuzz` runs
    # every combination, many cases each, for FUZZ_SECONDS.
    combinations = None
    if not seconds:
        combinations = [
            ("organization key", GenerationMode.POSITIVE),
            ("organization key", GenerationMode.NEGATIVE),
            ("platform key", GenerationMode.POSITIVE),
        ]
    return fuzz(
        combinations=combinations,
        app=get_wsgi_application(),
        org_id=str(billing_org.pk),
        keys={"organization key": org_key, "platform key": platform_key},
        examples=examples,
        seconds=seconds,
        before_case=cache.clear,
        derandomize=not seconds,  # `make test`: the same cases every run; `make fuzz`: new ones
    )
