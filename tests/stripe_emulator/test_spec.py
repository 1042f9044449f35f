"""Stripe's own description of its API (stripe-python's generated types): request validation from
`stripe_emulator/spec/requests.json`, the conformance check of what the emulator serves, Stripe's
idempotency rules and the header and value limits Stripe documents."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator.spec import conformance, generate, requests_table, responses_table

from .conftest import KEY


def test_the_committed_tables_match_the_installed_stripe_python():
    requests, responses = generate.build()
    assert generate.dump(requests) == generate.dump(requests_table()), (
        "run python -m stripe_emulator.spec.generate"
    )
    assert generate.dump(responses) == generate.dump(responses_table()), (
        "run python -m stripe_emulator.spec.generate"
    )
    assert requests["api_version"] == stripe.api_version == "2026-08-26.dahlia"


def _refused(call) -> stripe.InvalidRequestError:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        call()
    assert caught.value.http_status == 400
    return caught.value


def test_unknown_nested_parameters_are_refused_with_their_full_name(emu, customer, monthly_price):
    error = _refused(
        lambda: stripe.checkout.Session.create(
            api_key=KEY,
            mode="subscription",
            line_items=[{"price": monthly_price.id, "quantity": 1}],
            success_url="https://example.com/ok",
            subscription_data={"trial_period_day": 7},
        )
    )
    assert (error.code, error.param) == ("parameter_unknown", "subscription_data[trial_period_day]")
    assert error.user_message == "Received unknown parameter: subscription_data[trial_period_day]"
    error = _refused(
        lambda: stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"prise": monthly_price.id}]
        )
    )
    assert (error.code, error.param) == ("parameter_unknown", "items[0][prise]")
    error = _refused(
        lambda: stripe.Customer.modify(customer.id, api_key=KEY, invoice_settings={"bogus": "x"})
    )
    assert (error.code, error.param) == ("parameter_unknown", "invoice_settings[bogus]")
    assert emu.objects("subscription") == [] and emu.objects("checkout_session") == []


def test_types_enums_and_required_keys_are_checked_at_every_depth(emu, customer, monthly_price):
    error = _refused(
        lambda: stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id, "quantity": "two"}]
        )
    )
    assert (error.code, error.param) == ("parameter_invalid_integer", "items[0][quantity]")
    error = _refused(
        lambda: stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], payment_behavior="later"
        )
    )
    assert error.param == "payment_behavior" and "must be one of" in error.user_message
    error = _refused(
        lambda: stripe.Price.create(
            api_key=KEY,
            product=monthly_price.product,
            currency="usd",
            unit_amount=100,
            recurring={"interval_count": 1},
        )
    )
    assert (error.code, error.param) == ("parameter_missing", "recurring[interval]")
    error = _refused(
        lambda: stripe.Customer.modify(
            customer.id, api_key=KEY, invoice_settings={"default_payment_method": ["x"]}
        )
    )
    assert error.param == "invoice_settings[default_payment_method]"
    assert stripe.Subscription.list(api_key=KEY).data == []


def test_emails_and_metadata_limits_are_refused_like_stripe(emu, customer):
    error = _refused(lambda: stripe.Customer.create(api_key=KEY, email="not-an-email"))
    assert (error.code, error.param) == ("email_invalid", "email")
    error = _refused(lambda: stripe.Customer.modify(customer.id, api_key=KEY, metadata={"note": "x" * 501}))
    assert error.param == "metadata[note]" and "500 characters" in error.user_message
    error = _refused(lambda: stripe.Customer.modify(customer.id, api_key=KEY, metadata={"k" * 41: "v"}))
    assert "40 characters" in error.user_message
    error = _refused(
        lambda: stripe.Customer.modify(customer.id, api_key=KEY, metadata={f"k{i}": "v" for i in range(51)})
    )
    assert error.param == "metadata"
    assert stripe.Customer.modify(customer.id, api_key=KEY, metadata={"note": "x" * 500}).metadata["note"]
    assert len(emu.objects("customer")) == 1


def test_an_invalid_stripe_version_is_refused(emu):
    for version in ("2099-01-01", "2026-13-45.dahlia", "latest"):
        with pytest.raises(stripe.InvalidRequestError) as caught:
            stripe.Customer.list(api_key=KEY, stripe_version=version)
        assert caught.value.user_message == f"Invalid Stripe API version: {version}"
    assert stripe.Customer.list(api_key=KEY, stripe_version="2025-03-31.basil").data == []


def test_a_request_that_fails_validation_is_not_stored_under_its_key(emu, customer, monthly_price):
    key = "order-42"
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"prise": monthly_price.id}], idempotency_key=key
        )
    sub = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], idempotency_key=key
    )
    again = stripe.Subscription.create(
        api_key=KEY, customer=customer.id, items=[{"price": monthly_price.id}], idempotency_key=key
    )
    assert again.id == sub.id and len(emu.objects("subscription")) == 1
    assert emu.request_log[-1]["replayed"] is True
    # an error the endpoint itself raised (it had started executing) is stored and replayed
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"price": "price_missing"}], idempotency_key="k2"
        )
    with pytest.raises(stripe.InvalidRequestError):
        stripe.Subscription.create(
            api_key=KEY, customer=customer.id, items=[{"price": "price_missing"}], idempotency_key="k2"
        )
    assert emu.request_log[-1]["replayed"] is True


def test_idempotency_keys_longer_than_255_characters_are_refused(emu):
    with pytest.raises(stripe.InvalidRequestError) as caught:
        stripe.Customer.create(api_key=KEY, idempotency_key="k" * 256)
    assert "255" in caught.value.user_message
    assert emu.objects("customer") == []
    assert stripe.Customer.create(api_key=KEY, idempotency_key="k" * 255).id.startswith("cus_")


def test_the_conformance_check_finds_what_stripe_would_not_serve(emu, customer):
    served = emu.get(customer.id)
    assert conformance.violations(served) == []
    bad = json.loads(json.dumps(served))
    bad["subscription"] = "sub_x"  # undeclared
    del bad["email"]  # declared and always served
    bad["livemode"] = None  # not nullable
    bad["tax_exempt"] = "sometimes"  # outside the enum
    bad["invoice_settings"]["default_payment_method"] = 7  # wrong type, nested
    assert set(conformance.violations(bad, "customer")) == {
        "customer.email: missing (Stripe's type declares it)",
        "customer.subscription: not declared by Stripe's type",
        "customer.livemode: null, but the type is not nullable",
        "customer.tax_exempt: 'sometimes' is not one of ['exempt', 'none', 'reverse']",
        "customer.invoice_settings.default_payment_method: expected a string, got int",
    }
    event = {"id": "evt_1", "object": "event", "data": {"object": bad}}
    assert any(f.startswith("event.data.object.subscription") for f in conformance.violations(event, "event"))


def test_a_recorder_collects_each_violation_once_with_a_count():
    recorder = conformance.Recorder()
    payload = {"object": "customer", "id": "cus_1", "deleted": True, "extra": 1}
    recorder.check("GET /v1/customers/cus_1", payload)
    recorder.check("GET /v1/customers/cus_1", payload)
    assert recorder.checked == 2
    assert recorder.found == {
        "$.extra: not declared by Stripe's type": {"count": 2, "first": "GET /v1/customers/cus_1"}
    }
    assert "1 distinct violations in 2 payloads" in recorder.report()
