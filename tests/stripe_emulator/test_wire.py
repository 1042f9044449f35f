"""The wire protocol: form encoding, auth, errors, expand, pagination, idempotency keys."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.params import decode_form, encode_form

from .conftest import KEY

AUTH = {"Authorization": f"Bearer {KEY}"}


def call(emu: Emulator, method: str, path: str, body: str | None = None, headers: dict | None = None):
    status, response_headers, raw = emu.handle(method, path, {**AUTH, **(headers or {})}, body)
    return status, response_headers, json.loads(raw)


def test_nested_form_parameters_decode_to_lists_and_dicts():
    pairs = [
        ("items[0][price]", "price_a"),
        ("items[0][quantity]", "2"),
        ("items[1][price]", "price_b"),
        ("metadata[order]", "42"),
        ("expand[]", "customer"),
        ("expand[]", "latest_invoice.payments"),
    ]
    data = decode_form(pairs)
    assert data == {
        "items": [{"price": "price_a", "quantity": "2"}, {"price": "price_b"}],
        "metadata": {"order": "42"},
        "expand": ["customer", "latest_invoice.payments"],
    }
    assert decode_form(encode_form(data)) == data


def test_raw_form_body_creates_nested_metadata(emu):
    status, _, body = call(
        emu, "POST", "/v1/customers", "email=a%40example.com&metadata[plan]=pro&metadata[seats]=3"
    )
    assert status == 200
    assert body["email"] == "a@example.com"
    assert body["metadata"] == {"plan": "pro", "seats": "3"}
    assert body["id"].startswith("cus_")


def test_missing_and_invalid_keys_answer_401(emu):
    status, _, body = emu.handle("GET", "/v1/customers", {}, None)
    assert status == 401
    assert json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = emu.handle("GET", "/v1/customers", {"Authorization": "Bearer sk_live_nope"}, None)
    assert status == 401
    with pytest.raises(stripe.AuthenticationError):
        stripe.Customer.list(api_key="pk_test_not_a_secret_key")


def test_any_sk_test_key_and_the_stripe_version_header_are_accepted(emu):
    status, headers, body = call(emu, "GET", "/v1/customers", headers={"Stripe-Version": "2026-08-26.dahlia"})
    assert status == 200 and body["object"] == "list"
    assert headers["Stripe-Version"] == "2026-08-26.dahlia"
    assert headers["Request-Id"].startswith("req_")
    assert stripe.Customer.list(api_key="sk_test_anything_else").data == []


def test_error_body_for_missing_param_unknown_param_and_missing_object(emu):
    status, _, body = call(emu, "POST", "/v1/payment_intents", "currency=usd")
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "parameter_missing"
    assert body["error"]["param"] == "amount"
    status, _, body = call(emu, "POST", "/v1/customers", "colour=blue")
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "parameter_unknown", "colour")
    status, _, body = call(emu, "GET", "/v1/customers/cus_missing")
    assert status == 404
    assert body["error"]["code"] == "resource_missing"
    assert body["error"]["message"] == "No such customer: 'cus_missing'"
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Customer.retrieve("cus_missing", api_key=KEY)
    assert caught.value.http_status == 404 and caught.value.code == "resource_missing"
    status, _, body = call(emu, "GET", "/v1/nothing_here")
    assert status == 404 and "Unrecognized request URL" in body["error"]["message"]


def test_card_error_body_has_decline_code(emu):
    status, _, body = call(
        emu,
        "POST",
        "/v1/payment_intents",
        "amount=2000&currency=usd&payment_method=pm_card_chargeDeclined&confirm=true",
    )
    assert status == 402
    error = body["error"]
    assert (error["type"], error["code"], error["decline_code"]) == (
        "card_error",
        "card_declined",
        "generic_decline",
    )
    assert error["message"] == "Your card was declined."
    assert error["payment_intent"]["status"] == "requires_payment_method"


def test_expand_follows_nested_paths_and_list_data(emu, customer, monthly_price):
    sub = stripe.Subscription.create(
        api_key=KEY,
        customer=customer.id,
        items=[{"price": monthly_price.id}],
        expand=[
            "customer",
            "latest_invoice.payments.data.payment.payment_intent",
            "items.data.price.product",
        ],
    )
    assert sub.customer.email == "jenny@example.com"
    payment = sub.latest_invoice.payments.data[0]
    assert payment.payment.payment_intent.status == "succeeded"
    assert sub["items"].data[0].price.product.name == "Professional"
    listed = stripe.Subscription.list(api_key=KEY, expand=["data.customer"])
    assert listed.data[0].customer.id == customer.id
    with pytest.raises(stripe.InvalidRequestError, match="cannot be expanded"):
        stripe.Customer.retrieve(customer.id, api_key=KEY, expand=["email"])


def test_list_pagination_with_cursors(emu):
    ids = [stripe.Customer.create(api_key=KEY, email=f"c{i}@example.com").id for i in range(7)]
    newest_first = list(reversed(ids))
    page = stripe.Customer.list(api_key=KEY, limit=3)
    assert [c.id for c in page.data] == newest_first[:3] and page.has_more is True
    page2 = stripe.Customer.list(api_key=KEY, limit=3, starting_after=page.data[-1].id)
    assert [c.id for c in page2.data] == newest_first[3:6] and page2.has_more is True
    page3 = stripe.Customer.list(api_key=KEY, limit=3, starting_after=page2.data[-1].id)
    assert [c.id for c in page3.data] == newest_first[6:] and page3.has_more is False
    back = stripe.Customer.list(api_key=KEY, limit=2, ending_before=page2.data[0].id)
    assert [c.id for c in back.data] == newest_first[1:3] and back.has_more is True
    assert [c.id for c in stripe.Customer.list(api_key=KEY, limit=2).auto_paging_iter()] == newest_first
    status, _, body = call(emu, "GET", "/v1/customers?limit=101")
    assert status == 400 and body["error"]["param"] == "limit"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.list(api_key=KEY, starting_after="cus_unknown")


def test_idempotency_key_replays_the_stored_answer(emu):
    first = stripe.Customer.create(api_key=KEY, email="a@example.com", idempotency_key="cust-1")
    again = stripe.Customer.create(api_key=KEY, email="a@example.com", idempotency_key="cust-1")
    assert first.id == again.id
    assert len(emu.objects("customer")) == 1
    assert [r["replayed"] for r in emu.request_log if r["idempotency_key"] == "cust-1"] == [False, True]


def test_idempotency_key_replays_errors_too(emu, customer):
    params = {
        "amount": 1500,
        "currency": "usd",
        "customer": customer.id,
        "payment_method": "pm_card_chargeDeclined",
    }
    with pytest.raises(stripe.CardError) as first:
        stripe.PaymentIntent.create(api_key=KEY, confirm=True, idempotency_key="buy-1", **params)
    with pytest.raises(stripe.CardError) as second:
        stripe.PaymentIntent.create(api_key=KEY, confirm=True, idempotency_key="buy-1", **params)
    assert first.value.error.payment_intent.id == second.value.error.payment_intent.id
    assert len(emu.objects("payment_intent")) == 1
    assert len(emu.objects("charge")) == 1


def test_idempotency_key_with_other_parameters_is_an_idempotency_error(emu):
    stripe.Customer.create(api_key=KEY, email="a@example.com", idempotency_key="k")
    with pytest.raises(stripe.IdempotencyError) as caught:
        stripe.Customer.create(api_key=KEY, email="b@example.com", idempotency_key="k")
    assert caught.value.http_status == 400
    assert caught.value.error.type == "idempotency_error"
    assert len(emu.objects("customer")) == 1


def test_stripe_client_style_and_any_api_base(emu, client):
    created = client.v1.customers.create({"email": "client@example.com"})
    assert client.v1.customers.retrieve(created.id).email == "client@example.com"
    elsewhere = stripe.StripeClient(
        KEY, http_client=stripe.default_http_client, base_addresses={"api": "https://api.stripe.com"}
    )
    assert elsewhere.v1.customers.retrieve(created.id).id == created.id


def test_request_log_records_method_path_and_key(emu):
    stripe.Customer.create(api_key=KEY, idempotency_key="log-me")
    stripe.Customer.list(api_key=KEY)
    assert [(r["method"], r["path"], r["idempotency_key"]) for r in emu.request_log] == [
        ("POST", "/v1/customers", "log-me"),
        ("GET", "/v1/customers", None),
    ]


def test_search_query_language(emu, client):
    first = stripe.Customer.create(api_key=KEY, email="ann@example.com", metadata={"org_id": "o-1"})
    stripe.Customer.create(api_key=KEY, email="bob@example.org", metadata={"org_id": "o-2"})
    found = stripe.Customer.search(api_key=KEY, query="metadata['org_id']:'o-1'")
    assert [c.id for c in found.data] == [first.id] and found.object == "search_result"
    assert len(client.v1.customers.search({"query": "email~'example'"}).data) == 2
    assert (
        len(
            stripe.Customer.search(
                api_key=KEY, query="email:'ann@example.com' OR email:'bob@example.org'"
            ).data
        )
        == 2
    )
    assert (
        stripe.Customer.search(
            api_key=KEY, query="email:'ann@example.com' AND -metadata['org_id']:'o-1'"
        ).data
        == []
    )
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Customer.search(api_key=KEY, query="nonsense")


def test_concurrent_requests_are_serialized_safely(emu):
    import threading

    errors: list[Exception] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                stripe.Customer.create(
                    api_key=KEY, email=f"t{n}-{i}@example.com", idempotency_key=f"t{n}-{i}"
                )
                stripe.Customer.create(
                    api_key=KEY, email=f"t{n}-{i}@example.com", idempotency_key=f"t{n}-{i}"
                )
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    customers = emu.objects("customer")
    assert len(customers) == 200 and len({c["id"] for c in customers}) == 200
    assert len([e for e in emu.events() if e["type"] == "customer.created"]) == 200


def test_an_emulator_bug_answers_500_without_retries(emu):
    from stripe_emulator.routing import ROUTES, api

    @api("GET", "/v1/test_helpers/emulator_bug", allowed=set())
    def broken(ctx, params):
        raise RuntimeError("boom")

    try:
        status, headers, body = call(emu, "GET", "/v1/test_helpers/emulator_bug")
    finally:
        ROUTES.pop()
    assert status == 500 and headers["Stripe-Should-Retry"] == "false"
    assert body["error"]["type"] == "api_error" and "RuntimeError: boom" in body["error"]["message"]
    assert emu.request_log[-1]["status"] == 500
    assert stripe.Account.retrieve(api_key=KEY).id == emu.account["id"]
