# ruff: noqa: RUF001, UP031 - non-ASCII digits on purpose; JSON written as text on purpose
"""Issue 17, Found 1: one strict parser for credits, money and quantities; bounds from the
columns; NUL and lone surrogates, oversized bodies and deep nesting refused in the error shape.
Each bad input answers a 4xx and changes nothing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from credits.admin import AdjustForm, GrantForm
from credits.forms import AutoRefillForm, LowBalanceForm
from credits.models import CreditAccount, CreditTransaction
from credits.services import credit_grant
from tests.credits.factories import CreditPackFactory, CreditPriceFactory
from tests.usage.conftest import admin_client_of, organization_on, plan_with_limits
from usage.models import UsageEvent

from .conftest import assert_error_shape, ledger_state

pytestmark = pytest.mark.django_db
D = Decimal

# Written as JSON text, so `1e3` is a JSON number with an exponent, `"1e3"` a string.
BAD_NUMBERS = [
    '"1e3"',
    "1e3",
    "1E+2",
    '"1_000"',
    '"١٢"',  # Arabic-Indic digits
    '"１２"',  # full-width digits
    '"NaN"',
    '"Infinity"',
    '"-Infinity"',
    "1e400",
    '"' + "9" * 30 + '"',
    "9" * 30,
    '"12345678901234567"',  # 17 digits before the point: over the 16 of the ledger's columns
    '"0.00001"',  # 5 places
    '"1.2.3"',
    '"--1"',
    '""',
    '" "',
    "true",
    "[1]",
    '{"a": 1}',
    '"0x10"',
]


def post_raw(client, url, body: str):
    return client.post(url, data=body.encode("utf-8", "surrogatepass"), content_type="application/json")


def org_url(org, tail):
    return f"/api/v1/organizations/{org.pk}{tail}"


@pytest.fixture
def funded(organization):
    credit_grant(organization=organization, amount=100, source="purchase", reference="seed")
    return organization


def test_bad_numbers_on_every_amount_answer_400_and_change_nothing(funded, operator, staff_client):
    CreditPriceFactory(event_name="HARD_EVENT", credits_per_unit=D("1"))
    CreditPackFactory(code="hard", credits=D(100), amount=1000)
    before = ledger_state(funded)
    cases = [
        (operator, "/credits/consume", '{"amount": %s, "idempotency_key": "k1"}'),
        (
            operator,
            "/credits/consume",
            '{"event_name": "HARD_EVENT", "quantity": %s, "idempotency_key": "k2"}',
        ),
        (operator, "/credits/grant", '{"amount": %s, "reason": "r", "idempotency_key": "k3"}'),
        (staff_client, "/credits/low-balance", '{"threshold": %s}'),
        (staff_client, "/credits/auto-refill", '{"enabled": false, "threshold": %s}'),
        (staff_client, "/credits/auto-refill", '{"enabled": false, "threshold": 1, "amount": %s}'),
    ]
    for number, (client, tail, template) in ((n, c) for n in BAD_NUMBERS for c in cases):
        method = client.put if tail.endswith(("low-balance", "auto-refill")) else client.post
        response = method(
            org_url(funded, tail), data=(template % number).encode(), content_type="application/json"
        )
        body = assert_error_shape(response, 400)
        assert body["error"] in ("validation_error", "parse_error"), (number, tail, body)
    assert ledger_state(funded) == before


def test_bad_quantities_on_usage_answer_400_or_a_rejected_event():
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=100)
    client = admin_client_of(org)
    before = ledger_state(org)
    for number in BAD_NUMBERS:
        _usage_numbers(client, org, number)
    assert ledger_state(org) == before
    assert not UsageEvent.objects.filter(organization_id=org.pk).exists()


def _usage_numbers(client, org, number):
    for tail, template in [
        ("/usage/track", '{"metric": "SMS_SENT", "quantity": %s, "idempotency_key": "t1"}'),
        ("/usage/reservations", '{"metric": "SMS_SENT", "estimated_quantity": %s, "idempotency_key": "r1"}'),
        ("/usage/cost-estimate", '{"metric": "SMS_SENT", "quantity": %s}'),
    ]:
        response = post_raw(client, org_url(org, tail), template % number)
        assert_error_shape(response, 400)
    response = post_raw(
        client,
        org_url(org, "/usage/events"),
        '{"events": [{"metric": "SMS_SENT", "quantity": %s, "idempotency_key": "e1"}]}' % number,
    )
    if response.status_code == 200:  # a bad event is rejected by index, never recorded
        body = response.json()
        assert body["accepted"] == 0 and [r["error"] for r in body["rejected"]] == ["invalid_quantity"]
    else:
        assert_error_shape(response, 400)


def test_payment_link_amounts_are_strict_minor_units(organization, owner_client):
    from invoices.models import Invoice

    for number in ['"1_000"', '"١٢"', "1e3", '"1e3"', "1.5", '"12.5"', "100000000", "true"]:
        _payment_link_amount(owner_client, organization, number)
    assert not Invoice.objects.filter(organization=organization).exists()


def _payment_link_amount(owner_client, organization, number):
    response = post_raw(
        owner_client,
        org_url(organization, "/payment-links"),
        '{"description": "x", "amount": %s, "currency": "usd", "days_until_due": 7}' % number,
    )
    body = assert_error_shape(response, 400)
    assert "amount" in body.get("fields", {}) or body["error"] == "parse_error", (number, body)


def test_good_numbers_are_still_taken(funded, operator):
    for number, expected in [("12.5", "12.5"), ('"0.0001"', "0.0001"), ('"+2"', "2"), ("3", "3")]:
        response = post_raw(
            operator,
            org_url(funded, "/credits/consume"),
            '{"amount": %s, "idempotency_key": "g%s"}' % (number, expected),
        )
        assert response.status_code == 200, response.json()
        assert response.json()["consumed"] == expected


def test_a_grant_that_would_overflow_the_balance_column_is_a_400(organization, operator):
    url = org_url(organization, "/credits/grant")
    first = operator.post(
        url, {"amount": "9999999999999999", "reason": "big", "idempotency_key": "g1"}, format="json"
    )
    assert first.status_code == 201, first.json()
    before = ledger_state(organization)
    again = operator.post(url, {"amount": "1", "reason": "one more", "idempotency_key": "g2"}, format="json")
    body = assert_error_shape(again, 400, "validation_error")
    assert "amount" in body["fields"]
    assert ledger_state(organization) == before


def test_an_event_priced_consume_that_rounds_to_zero_is_refused(funded, operator):
    CreditPriceFactory(event_name="CHEAP_EVENT", credits_per_unit=D("0.0001"))
    before = ledger_state(funded)
    response = operator.post(
        org_url(funded, "/credits/consume"),
        {"event_name": "CHEAP_EVENT", "quantity": "0.0001", "idempotency_key": "c1"},
        format="json",
    )
    body = assert_error_shape(response, 400, "validation_error")
    assert "quantity" in body["fields"]
    assert ledger_state(funded) == before
    assert not CreditTransaction.objects.filter(organization=funded, amount=0).exists()


@pytest.mark.parametrize(
    "body",
    [
        '{"amount": 1, "idempotency_key": "n1", "reason": "a\\u0000b"}',
        '{"amount": 1, "idempotency_key": "n2", "metadata": {"k": "a\\u0000b"}}',
        '{"amount": 1, "idempotency_key": "n3", "metadata": {"a\\u0000": "v"}}',
        '{"amount": 1, "idempotency_key": "n4", "reason": "\\ud800"}',
        '{"amount": 1, "idempotency_key": "n5", "metadata": {"k": "x\\udfffy"}}',
        '{"amount": 1, "idempotency_key": "n6\\u0000"}',
    ],
)
def test_nul_and_lone_surrogates_in_any_string_are_a_400(body, funded, operator):
    before = ledger_state(funded)
    response = post_raw(operator, org_url(funded, "/credits/consume"), body)
    assert_error_shape(response, 400, "validation_error")
    assert ledger_state(funded) == before


def test_nul_in_names_and_descriptions_is_a_400(organization, owner_client):
    from invoices.models import Invoice

    response = post_raw(
        owner_client,
        org_url(organization, "/payment-links"),
        '{"description": "a\\u0000", "amount": 100, "currency": "usd", "days_until_due": 7}',
    )
    assert_error_shape(response, 400, "validation_error")
    response = post_raw(
        owner_client, "/api/v1/organizations", '{"name": "\\ud83d", "billing_email": "a@b.co"}'
    )
    assert_error_shape(response, 400, "validation_error")
    assert not Invoice.objects.filter(organization=organization).exists()


def test_a_body_over_the_upload_limit_is_a_413_in_the_error_shape(settings, funded, operator):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    before = ledger_state(funded)
    body = json.dumps({"amount": 1, "idempotency_key": "big", "reason": "x" * 20_000})
    response = operator.post(org_url(funded, "/credits/consume"), data=body, content_type="application/json")
    assert_error_shape(response, 413, "request_too_large")
    form = operator.post(org_url(funded, "/credits/consume"), {"amount": "1", "reason": "x" * 20_000})
    assert_error_shape(form, 413, "request_too_large")
    assert ledger_state(funded) == before


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_json_is_a_400(depth, funded, operator):
    before = ledger_state(funded)
    body = '{"amount": 1, "idempotency_key": "deep", "metadata": {"k": ' + "[" * depth + "]" * depth + "}}"
    response = post_raw(operator, org_url(funded, "/credits/consume"), body)
    assert_error_shape(response, 400)
    assert ledger_state(funded) == before


def test_page_and_admin_forms_use_the_same_rules():
    CreditPackFactory(code="p1")
    for bad in ["1e3", "1_000", "١٢", "NaN", "9" * 17, "0.00001"]:
        assert not AutoRefillForm(
            data={"refill-threshold": bad, "refill-pack": "p1", "refill-max_refills_per_day": "3"}
        ).is_valid()
        assert not LowBalanceForm(data={"low-threshold": bad}).is_valid()
        assert not GrantForm(data={"amount": bad, "source": "manual", "reason": "r"}).is_valid()
        assert not AdjustForm(data={"amount": bad, "reason": "r"}).is_valid()
    assert not AutoRefillForm(
        data={"refill-threshold": "1", "refill-pack": "p1", "refill-max_refills_per_day": "١"}
    ).is_valid()
    form = GrantForm(data={"amount": "12.5", "source": "manual", "reason": "r"})
    assert form.is_valid() and form.cleaned_data["amount"] == D("12.5")


def test_the_parser_itself():
    from config.inputs import InputInvalid, parse_decimal, parse_integer

    assert parse_decimal("12.5", integer_digits=16, places=4) == D("12.5000")
    assert parse_decimal(".5", integer_digits=1, places=4) == D("0.5")
    assert parse_decimal("-3", integer_digits=1, places=0) == D(-3)
    assert parse_decimal(D("1.10"), integer_digits=2, places=1) == D("1.1")
    for bad in ["1e3", "1_0", "١", "nan", "inf", "12", "0.123", float("nan"), True, None, [1]]:
        with pytest.raises(InputInvalid):
            parse_decimal(bad, integer_digits=1, places=2)
    assert parse_integer("12") == 12 and parse_integer(12.0) == 12
    for bad in ["1_0", "١", "1e3", "1.5", 1.5, True]:
        with pytest.raises(InputInvalid):
            parse_integer(bad)
    assert CreditAccount.objects.count() == 0


def test_admin_model_forms_where_money_is_typed_use_the_same_rules(client):
    from credits.models import CreditPack
    from tests.billing.factories import UserFactory

    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    form = {"code": "bad", "name": "Bad", "currency": "usd", "active": "on", "sort_order": "0"}
    for credits, amount in [
        ("1e3", "100"),
        ("1_000", "100"),
        ("100", "1_000"),
        ("100", "١٢"),
        ("1" * 17, "100"),
    ]:
        response = client.post(
            "/admin/credits/creditpack/add/", {**form, "credits": credits, "amount": amount}
        )
        assert response.status_code == 200 and b"errornote" in response.content, (credits, amount)
    assert not CreditPack.objects.filter(code="bad").exists()
    response = client.post("/admin/credits/creditpack/add/", {**form, "credits": "12.5", "amount": "100"})
    assert response.status_code == 302 and CreditPack.objects.get(code="bad").credits == D("12.5")


def test_a_nul_in_one_usage_event_rejects_that_event_only():
    org = organization_on(plan_with_limits(SMS_SENT=None), credits=100)
    body = (
        '{"events": [{"metric": "SMS_SENT", "idempotency_key": "ok"},'
        ' {"metric": "SMS_SENT", "idempotency_key": "bad\\u0000"},'
        ' {"metric": "SMS_SENT", "idempotency_key": "k", "dimensions": {"p": "\\ud800"}},'
        ' {"metric": "SMS_SENT", "idempotency_key": "k2", "\\ud800": 1}]}'
    )
    response = post_raw(admin_client_of(org), org_url(org, "/usage/events"), body)
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["accepted"] == 1 and [r["index"] for r in result["rejected"]] == [1, 2, 3]
    assert UsageEvent.objects.filter(organization_id=org.pk).count() == 1
