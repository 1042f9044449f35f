"""The `/v1` endpoints: parameters in, objects out. The rules live in `payments` and `billing`."""

from __future__ import annotations

import re
from typing import Any

from . import billing, objects, payments
from .app import API_VERSION, Context, Emulator, api
from .errors import InvalidRequestError, ResourceMissing, invalid, missing
from .params import Params, merge_metadata
from .store import created_filter, paginate, public

LIST = {"created"}
Obj = dict[str, Any]


# ---------------------------------------------------------------------- rendering helpers
def _compose_subscription(emu: Emulator, obj: Obj, data: Obj) -> None:
    items = [
        emu.render(emu.store.objects["subscription_item"][i])
        for i in obj["_items"]
        if i in emu.store.objects["subscription_item"]
    ]
    data["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={obj['id']}",
    }


def _compose_subscription_item(emu: Emulator, obj: Obj, data: Obj) -> None:
    price = emu.store.get("price", obj["price"])
    if price is not None:
        data["price"] = emu.render(price)
        data["plan"] = objects.plan_from_price(price)


def _compose_invoice(emu: Emulator, obj: Obj, data: Obj) -> None:
    lines = [emu.store.objects["line_item"][i] for i in obj["_lines"] if i in emu.store.objects["line_item"]]
    data["lines"] = {
        "object": "list",
        "data": [public(line) for line in lines[:10]],
        "has_more": len(lines) > 10,
        "total_count": len(lines),
        "url": f"/v1/invoices/{obj['id']}/lines",
    }


def _compose_charge(emu: Emulator, obj: Obj, data: Obj) -> None:
    refunds = [public(r) for r in reversed(emu.store.all("refund")) if r["charge"] == obj["id"]]
    data["refunds"] = {
        "object": "list",
        "data": refunds,
        "has_more": False,
        "total_count": len(refunds),
        "url": f"/v1/charges/{obj['id']}/refunds",
    }


COMPOSERS = {
    "subscription": _compose_subscription,
    "subscription_item": _compose_subscription_item,
    "invoice": _compose_invoice,
    "charge": _compose_charge,
}


def _invoice_payments(emu: Emulator, data: Obj) -> Obj:
    inv = emu.store.get("invoice", data["id"])
    ids = inv.get("_payments", []) if inv else []
    return objects.list_object(
        f"/v1/invoice_payments?invoice={data['id']}",
        [public(emu.store.objects["invoice_payment"][i]) for i in ids],
    )


def _invoice_confirmation_secret(emu: Emulator, data: Obj) -> Obj | None:
    inv = emu.store.get("invoice", data["id"])
    pi = emu.store.get("payment_intent", (inv or {}).get("_payment_intent"))
    return {"client_secret": pi["client_secret"], "type": "payment_intent"} if pi else None


def _customer_subscriptions(emu: Emulator, data: Obj) -> Obj:
    subs = [emu.render(s) for s in reversed(emu.store.all("subscription")) if s["customer"] == data["id"]]
    return objects.list_object(f"/v1/customers/{data['id']}/subscriptions", subs)


def _price_currency_options(emu: Emulator, data: Obj) -> Obj:
    return {
        data["currency"]: {
            "custom_unit_amount": data["custom_unit_amount"],
            "tax_behavior": data["tax_behavior"],
            "unit_amount": data["unit_amount"],
            "unit_amount_decimal": data["unit_amount_decimal"],
        }
    }


# Keys that appear only when expanded (Stripe's "includable" fields).
EXPANDABLE_EXTRAS = {
    ("invoice", "payments"): _invoice_payments,
    ("invoice", "confirmation_secret"): _invoice_confirmation_secret,
    ("customer", "sources"): lambda emu, data: objects.list_object(f"/v1/customers/{data['id']}/sources"),
    ("customer", "tax_ids"): lambda emu, data: objects.list_object(f"/v1/customers/{data['id']}/tax_ids"),
    ("customer", "subscriptions"): _customer_subscriptions,
    ("price", "currency_options"): _price_currency_options,
    ("price", "tiers"): lambda emu, data: None,
}


def newest_first(ctx: Context, kind: str, keep=lambda o: True) -> list[Obj]:
    return [o for o in reversed(ctx.store.all(kind)) if keep(o)]


def list_of(ctx: Context, kind: str, p: Params, url: str, keep=lambda o: True) -> Obj:
    return paginate(created_filter(newest_first(ctx, kind, keep), p), p, url, kind)


def _object_param(ctx: Context, kind: str, object_id: str | None, param: str) -> Obj:
    obj = ctx.store.get(kind, object_id)
    if obj is None:
        from .store import HUMAN_NAMES

        raise InvalidRequestError(
            f"No such {HUMAN_NAMES.get(kind, kind)}: '{object_id}'", code="resource_missing", param=param
        )
    return obj


# ---------------------------------------------------------------------- account
@api("GET", "/v1/account", allowed=set())
def account_retrieve(ctx: Context, p: Params) -> Obj:
    return ctx.emulator.account


@api("GET", "/v1/accounts", allowed=LIST)
def account_list(ctx: Context, p: Params) -> Obj:
    """Connected accounts: the emulator has none (the platform account is `GET /v1/account`)."""
    return objects.list_object("/v1/accounts")


@api("GET", "/v1/accounts/{account_id}", allowed=set())
def account_retrieve_by_id(ctx: Context, p: Params, account_id: str) -> Obj:
    if account_id != ctx.emulator.account["id"]:
        raise ResourceMissing("account", account_id)
    return ctx.emulator.account


@api("GET", "/v1/accounts/{account_id}/external_accounts", allowed={"object"})
def account_external_accounts(ctx: Context, p: Params, account_id: str) -> Obj:
    return objects.list_object(f"/v1/accounts/{account_id}/external_accounts")


# ---------------------------------------------------------------------- customers
CUSTOMER_FIELDS = {
    "address",
    "balance",
    "description",
    "email",
    "invoice_prefix",
    "invoice_settings",
    "metadata",
    "name",
    "next_invoice_sequence",
    "phone",
    "preferred_locales",
    "shipping",
    "tax_exempt",
}


def _customer_fields(ctx: Context, cust: Obj, p: Params, new_pm: Obj | None, pm_param: str | None) -> None:
    for key in ("description", "email", "name", "phone"):
        if key in p:
            cust[key] = p.str(key)
    if "address" in p:
        cust["address"] = objects.address_from(p.raw("address") or None)
    if "shipping" in p:
        shipping = p.raw("shipping") or None
        if shipping:
            shipping = {
                "address": objects.address_from(shipping.get("address") or {}),
                "name": shipping.get("name"),
                "phone": shipping.get("phone"),
            }
        cust["shipping"] = shipping
    if "balance" in p:
        cust["balance"] = p.int("balance")
    if "invoice_prefix" in p:
        cust["invoice_prefix"] = p.str("invoice_prefix")
    if "next_invoice_sequence" in p:
        cust["next_invoice_sequence"] = p.int("next_invoice_sequence", minimum=1)
    if "preferred_locales" in p:
        cust["preferred_locales"] = p.list("preferred_locales")
    if "tax_exempt" in p:
        cust["tax_exempt"] = p.enum("tax_exempt", ["none", "exempt", "reverse"])
    cust["metadata"] = merge_metadata(cust["metadata"], p.metadata())
    settings = p.dict("invoice_settings")
    if "default_payment_method" in settings:
        pm_id = settings.str("default_payment_method")
        if pm_id and new_pm is not None and pm_id == pm_param:
            pm_id = new_pm["id"]
        if pm_id:
            pm = ctx.store.get("payment_method", pm_id)
            if pm is None or pm["customer"] != cust["id"]:
                raise InvalidRequestError(
                    f"No such PaymentMethod: '{pm_id}'; It's possible this PaymentMethod exists on one of "
                    "your "
                    "connected accounts, in which case you should retry this request on that connected "
                    "account. "
                    "Learn more at https://stripe.com/docs/connect/authentication"
                    if pm is None
                    else f"The customer does not have a payment method with the ID {pm_id}. The payment "
                    "method must "
                    "be attached to the customer.",
                    code="resource_missing",
                    param="invoice_settings[default_payment_method]",
                )
        cust["invoice_settings"]["default_payment_method"] = pm_id
    for key in ("footer", "custom_fields"):
        if key in settings:
            cust["invoice_settings"][key] = settings.raw(key) or None


@api(
    "POST",
    "/v1/customers",
    allowed=CUSTOMER_FIELDS
    | {"payment_method", "test_clock", "source", "tax", "tax_id_data", "cash_balance"},
)
def customer_create(ctx: Context, p: Params) -> Obj:
    clock_id = p.str("test_clock")
    clock = None
    if clock_id:
        from .timeline import require_clock_param

        clock = require_clock_param(ctx, clock_id)
    now = clock["frozen_time"] if clock else ctx.now()
    cust = objects.customer(ctx.store.new_id("customer", 14), now, ctx.store.random_string(8).upper())
    cust["test_clock"] = clock_id if clock else None
    pm_param = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_param) if pm_param else None
    ctx.store.add("customer", cust)
    try:
        if pm is not None:
            if pm["customer"]:
                raise InvalidRequestError(
                    "The payment method you provided has already been attached to a customer.",
                    param="payment_method",
                )
            if payments.test_card(pm).fails_on_attach:
                raise payments.card_error(payments.test_card(pm))
            pm["customer"] = cust["id"]
        _customer_fields(ctx, cust, p, pm, pm_param)
    except Exception:
        ctx.store.objects["customer"].pop(cust["id"], None)
        if pm is not None and pm["customer"] == cust["id"]:
            pm["customer"] = None
        raise
    ctx.emit("customer.created", cust)
    if pm is not None:
        ctx.emit("payment_method.attached", pm)
    return cust


def _customer(ctx: Context, customer_id: str) -> Obj:
    return ctx.store.require("customer", customer_id)


@api("GET", "/v1/customers/{customer_id}", allowed=set())
def customer_retrieve(ctx: Context, p: Params, customer_id: str) -> Obj:
    if ctx.store.deleted.get(customer_id) == "customer":
        return {"id": customer_id, "object": "customer", "deleted": True}
    return _customer(ctx, customer_id)


@api(
    "POST",
    "/v1/customers/{customer_id}",
    allowed=CUSTOMER_FIELDS | {"source", "default_source", "tax", "cash_balance"},
)
def customer_update(ctx: Context, p: Params, customer_id: str) -> Obj:
    cust = _customer(ctx, customer_id)
    before = public(cust)
    _customer_fields(ctx, cust, p, None, None)
    _emit_updated(ctx, "customer.updated", cust, before)
    return cust


def _emit_updated(ctx: Context, event_type: str, obj: Obj, before: Obj) -> None:
    """`*.updated` with the changed top-level keys' old values, only when something changed."""
    after = public(obj)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    if previous:
        ctx.emit(event_type, obj, previous)


@api("DELETE", "/v1/customers/{customer_id}", allowed=set())
def customer_delete(ctx: Context, p: Params, customer_id: str) -> Obj:
    cust = _customer(ctx, customer_id)
    for sub in ctx.store.all("subscription"):
        if sub["customer"] == customer_id and sub["status"] not in ("canceled", "incomplete_expired"):
            billing.cancel_subscription(ctx, sub)
    snapshot = ctx.render(cust)
    ctx.store.remove("customer", customer_id)
    ctx.emit("customer.deleted", snapshot)
    return {"id": customer_id, "object": "customer", "deleted": True}


@api("GET", "/v1/customers", allowed=LIST | {"email", "test_clock"})
def customer_list(ctx: Context, p: Params) -> Obj:
    email, clock_id = p.str("email"), p.str("test_clock")
    return list_of(
        ctx,
        "customer",
        p,
        "/v1/customers",
        lambda c: email in (None, c["email"]) and clock_id in (None, c.get("test_clock")),
    )


@api("GET", "/v1/customers/{customer_id}/payment_methods", allowed={"type", "allow_redisplay"})
def customer_payment_methods(ctx: Context, p: Params, customer_id: str) -> Obj:
    _customer(ctx, customer_id)
    kind = p.str("type")
    return list_of(
        ctx,
        "payment_method",
        p,
        f"/v1/customers/{customer_id}/payment_methods",
        lambda pm: pm["customer"] == customer_id and kind in (None, pm["type"]),
    )


@api("GET", "/v1/customers/{customer_id}/payment_methods/{pm_id}", allowed=set())
def customer_payment_method(ctx: Context, p: Params, customer_id: str, pm_id: str) -> Obj:
    _customer(ctx, customer_id)
    pm = ctx.store.get("payment_method", pm_id)
    if pm is None or pm["customer"] != customer_id:
        raise ResourceMissing("PaymentMethod", pm_id)
    return pm


# ---------------------------------------------------------------------- payment methods
def _test_card_for_number(number: str) -> str:
    if number in payments.TEST_NUMBERS:
        return payments.TEST_NUMBERS[number]
    digits = [int(d) for d in number if d.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    if len(digits) < 12 or checksum % 10:
        raise payments.CardError(
            "Your card number is incorrect.", code="incorrect_number", param="card[number]"
        )
    return "pm_card_visa"


@api(
    "POST",
    "/v1/payment_methods",
    allowed={"type", "card", "billing_details", "metadata", "allow_redisplay", "customer", "payment_method"},
)
def payment_method_create(ctx: Context, p: Params) -> Obj:
    kind = p.str("type", required=True)
    if kind != "card":
        raise invalid(
            "type",
            f"The emulator supports card payment methods only, not '{kind}'.",
            "parameter_invalid_string",
        )
    card = p.dict("card")
    token = card.str("token")
    if token:
        name = "pm_card_" + token.removeprefix("tok_")
        if name not in payments.TEST_CARDS:
            raise InvalidRequestError(
                f"No such token: '{token}'", code="resource_missing", param="card[token]"
            )
    else:
        number = card.str("number", required=True) or ""
        name = _test_card_for_number(number.replace(" ", ""))
    pm = payments.new_payment_method(
        ctx,
        name,
        billing_details=p.raw("billing_details") or None,
        exp_month=card.int("exp_month", 12),
        exp_year=card.int("exp_year"),
    )
    if not token and name == "pm_card_visa" and card.str("number") not in payments.TEST_NUMBERS:
        number = card.str("number") or ""
        pm["card"]["last4"] = number[-4:]
        pm["card"]["brand"] = pm["card"]["display_brand"] = {"5": "mastercard", "3": "amex"}.get(
            number[:1], "visa"
        )
    pm["metadata"] = p.metadata() or {}
    return pm


@api("GET", "/v1/payment_methods/{pm_id}", allowed=set())
def payment_method_retrieve(ctx: Context, p: Params, pm_id: str) -> Obj:
    if pm_id in payments.TEST_CARDS:
        return payments.resolve_payment_method(ctx, pm_id, "id")
    return ctx.store.require("payment_method", pm_id)


@api(
    "POST", "/v1/payment_methods/{pm_id}", allowed={"billing_details", "card", "metadata", "allow_redisplay"}
)
def payment_method_update(ctx: Context, p: Params, pm_id: str) -> Obj:
    pm = ctx.store.require("payment_method", pm_id)
    before = public(pm)
    details = p.raw("billing_details")
    if isinstance(details, dict):
        for key in ("email", "name", "phone"):
            if key in details:
                pm["billing_details"][key] = details[key] or None
        if isinstance(details.get("address"), dict):
            pm["billing_details"]["address"].update(details["address"])
    card = p.dict("card")
    for key in ("exp_month", "exp_year"):
        if key in card:
            pm["card"][key] = card.int(key)
    if "allow_redisplay" in p:
        pm["allow_redisplay"] = p.enum("allow_redisplay", ["always", "limited", "unspecified"])
    pm["metadata"] = merge_metadata(pm["metadata"], p.metadata())
    _emit_updated(ctx, "payment_method.updated", pm, before)
    return pm


@api("GET", "/v1/payment_methods", allowed={"customer", "type", "allow_redisplay"})
def payment_method_list(ctx: Context, p: Params) -> Obj:
    customer_id, kind = p.str("customer"), p.str("type")
    if customer_id:
        _object_param(ctx, "customer", customer_id, "customer")
    return list_of(
        ctx,
        "payment_method",
        p,
        "/v1/payment_methods",
        lambda pm: pm["customer"] == customer_id and kind in (None, pm["type"]),
    )


@api("POST", "/v1/payment_methods/{pm_id}/attach", allowed={"customer"})
def payment_method_attach(ctx: Context, p: Params, pm_id: str) -> Obj:
    customer = _object_param(ctx, "customer", p.str("customer", required=True), "customer")
    if pm_id not in payments.TEST_CARDS:
        ctx.store.require("payment_method", pm_id)
    pm = payments.resolve_payment_method(ctx, pm_id, "payment_method")
    return payments.attach(ctx, pm, customer)


@api("POST", "/v1/payment_methods/{pm_id}/detach", allowed=set())
def payment_method_detach(ctx: Context, p: Params, pm_id: str) -> Obj:
    return payments.detach(ctx, ctx.store.require("payment_method", pm_id))


# ---------------------------------------------------------------------- setup intents
SETI_FIELDS = {
    "customer",
    "payment_method",
    "confirm",
    "usage",
    "payment_method_types",
    "metadata",
    "description",
    "automatic_payment_methods",
    "return_url",
    "payment_method_options",
    "attach_to_self",
    "flow_directions",
    "on_behalf_of",
    "single_use",
    "mandate_data",
    "use_stripe_sdk",
    "payment_method_configuration",
    "payment_method_data",
    "excluded_payment_method_types",
}


@api("POST", "/v1/setup_intents", allowed=SETI_FIELDS)
def setup_intent_create(ctx: Context, p: Params) -> Obj:
    seti = objects.setup_intent(ctx.store.new_id("setup_intent"), ctx.now(), ctx.store.random_string(25))
    customer_id = p.str("customer")
    if customer_id:
        _object_param(ctx, "customer", customer_id, "customer")
    seti["customer"] = customer_id
    seti["usage"] = p.enum("usage", ["on_session", "off_session"], "off_session")
    seti["description"] = p.str("description")
    seti["metadata"] = p.metadata() or {}
    if p.list("payment_method_types"):
        seti["payment_method_types"] = p.list("payment_method_types")
    if "automatic_payment_methods" in p:
        seti["automatic_payment_methods"] = {
            "allow_redirects": p.dict("automatic_payment_methods").str("allow_redirects", "always"),
            "enabled": bool(p.dict("automatic_payment_methods").bool("enabled")),
        }
    pm_id = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_id) if pm_id else None
    if pm is not None:
        seti["payment_method"] = pm["id"]
        seti["status"] = "requires_confirmation"
    ctx.store.add("setup_intent", seti)
    ctx.emit("setup_intent.created", seti)
    if p.bool("confirm"):
        _confirm_setup(ctx, seti, pm, p.str("return_url"))
    return seti


def _confirm_setup(ctx: Context, seti: Obj, pm: Obj | None, return_url: str | None) -> None:
    if seti["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise InvalidRequestError(
            f"You cannot confirm this SetupIntent because it has a status of {seti['status']}.",
            code="setup_intent_unexpected_state",
        )
    pm = pm or ctx.store.get("payment_method", seti["payment_method"])
    if pm is None:
        raise InvalidRequestError(
            "You cannot confirm this SetupIntent because it's missing a payment method.",
            code="setup_intent_unexpected_state",
            param="payment_method",
        )
    if seti["customer"] and pm["customer"] not in (None, seti["customer"]):
        raise InvalidRequestError(
            "The provided PaymentMethod belongs to another customer.", param="payment_method"
        )
    result = payments.confirm_setup_intent(ctx, seti, pm, return_url)
    if result.error is not None:
        raise result.error


@api("GET", "/v1/setup_intents/{seti_id}", allowed={"client_secret"})
def setup_intent_retrieve(ctx: Context, p: Params, seti_id: str) -> Obj:
    return ctx.store.require("setup_intent", seti_id)


@api(
    "POST",
    "/v1/setup_intents/{seti_id}",
    allowed={
        "customer",
        "payment_method",
        "metadata",
        "description",
        "payment_method_types",
        "payment_method_options",
        "attach_to_self",
        "flow_directions",
        "payment_method_data",
        "excluded_payment_method_types",
        "payment_method_configuration",
    },
)
def setup_intent_update(ctx: Context, p: Params, seti_id: str) -> Obj:
    seti = ctx.store.require("setup_intent", seti_id)
    if "customer" in p:
        seti["customer"] = _object_param(ctx, "customer", p.str("customer"), "customer")["id"]
    if p.str("payment_method"):
        pm = payments.resolve_payment_method(ctx, p.str("payment_method"))
        seti["payment_method"] = pm["id"]
        if seti["status"] == "requires_payment_method":
            seti["status"] = "requires_confirmation"
    if "description" in p:
        seti["description"] = p.str("description")
    seti["metadata"] = merge_metadata(seti["metadata"], p.metadata())
    return seti


@api(
    "POST",
    "/v1/setup_intents/{seti_id}/confirm",
    allowed={
        "payment_method",
        "return_url",
        "mandate_data",
        "payment_method_options",
        "use_stripe_sdk",
        "payment_method_data",
        "client_secret",
    },
)
def setup_intent_confirm(ctx: Context, p: Params, seti_id: str) -> Obj:
    seti = ctx.store.require("setup_intent", seti_id)
    pm_id = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_id) if pm_id else None
    _confirm_setup(ctx, seti, pm, p.str("return_url"))
    return seti


@api("POST", "/v1/setup_intents/{seti_id}/cancel", allowed={"cancellation_reason"})
def setup_intent_cancel(ctx: Context, p: Params, seti_id: str) -> Obj:
    seti = ctx.store.require("setup_intent", seti_id)
    if seti["status"] in ("succeeded", "canceled"):
        raise InvalidRequestError(
            f"You cannot cancel this SetupIntent because it has a status of {seti['status']}.",
            code="setup_intent_unexpected_state",
        )
    seti["status"] = "canceled"
    seti["cancellation_reason"] = p.enum(
        "cancellation_reason", ["abandoned", "requested_by_customer", "duplicate"]
    )
    ctx.emit("setup_intent.canceled", seti)
    return seti


@api("GET", "/v1/setup_intents", allowed=LIST | {"customer", "payment_method", "attach_to_self"})
def setup_intent_list(ctx: Context, p: Params) -> Obj:
    customer_id, pm_id = p.str("customer"), p.str("payment_method")
    return list_of(
        ctx,
        "setup_intent",
        p,
        "/v1/setup_intents",
        lambda s: customer_id in (None, s["customer"]) and pm_id in (None, s["payment_method"]),
    )


# ---------------------------------------------------------------------- payment intents
PI_FIELDS = {
    "amount",
    "currency",
    "customer",
    "payment_method",
    "confirm",
    "off_session",
    "setup_future_usage",
    "description",
    "metadata",
    "receipt_email",
    "payment_method_types",
    "automatic_payment_methods",
    "capture_method",
    "statement_descriptor",
    "statement_descriptor_suffix",
    "return_url",
    "error_on_requires_action",
    "confirmation_method",
    "payment_method_options",
    "shipping",
    "transfer_group",
    "on_behalf_of",
    "application_fee_amount",
    "use_stripe_sdk",
    "mandate_data",
    "payment_method_data",
    "radar_options",
    "payment_method_configuration",
    "excluded_payment_method_types",
    "transfer_data",
    "mandate",
}


def _amount(p: Params, currency: str, param: str = "amount", required: bool = True) -> int | None:
    amount = p.int(param, required=required)
    if amount is None:
        return None
    minimum = payments.MINIMUM_AMOUNT.get(currency, 50)
    if amount < minimum:
        raise InvalidRequestError(
            f"Amount must be at least {billing.money(minimum, currency)} {currency}",
            code="amount_too_small",
            param=param,
        )
    if amount > 99999999:
        raise InvalidRequestError(
            "Amount must be no more than $999,999.99", code="amount_too_large", param=param
        )
    return amount


@api("POST", "/v1/payment_intents", allowed=PI_FIELDS)
def payment_intent_create(ctx: Context, p: Params) -> Obj:
    currency = (p.str("currency", required=True) or "").lower()
    amount = _amount(p, currency)
    customer_id = p.str("customer")
    customer = _object_param(ctx, "customer", customer_id, "customer") if customer_id else None
    off_session = p.raw("off_session") not in (None, "", "false", False)
    if off_session and not p.bool("confirm"):
        raise InvalidRequestError("`off_session` can only be used when `confirm=true`.", param="off_session")
    pm_id = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_id) if pm_id else None
    if pm is not None and pm["customer"] and (customer is None or pm["customer"] != customer["id"]):
        raise InvalidRequestError(
            f"The provided PaymentMethod ({pm['id']}) is attached to a Customer ({pm['customer']}); "
            "pass that customer with it.",
            param="payment_method",
        )
    pi = objects.payment_intent(
        ctx.store.new_id("payment_intent"), ctx.now(customer), ctx.store.random_string(25), amount, currency
    )
    pi["customer"] = customer_id
    pi["description"] = p.str("description")
    pi["metadata"] = p.metadata() or {}
    pi["receipt_email"] = p.str("receipt_email")
    pi["statement_descriptor"] = p.str("statement_descriptor")
    pi["statement_descriptor_suffix"] = p.str("statement_descriptor_suffix")
    pi["capture_method"] = p.enum(
        "capture_method", ["automatic", "automatic_async", "manual"], "automatic_async"
    )
    pi["confirmation_method"] = p.enum("confirmation_method", ["automatic", "manual"], "automatic")
    pi["setup_future_usage"] = p.enum("setup_future_usage", ["on_session", "off_session"])
    if p.list("payment_method_types"):
        pi["payment_method_types"] = p.list("payment_method_types")
    else:
        pi["automatic_payment_methods"] = {"allow_redirects": "always", "enabled": True}
    if "automatic_payment_methods" in p:
        apm = p.dict("automatic_payment_methods")
        pi["automatic_payment_methods"] = {
            "allow_redirects": apm.str("allow_redirects", "always"),
            "enabled": bool(apm.bool("enabled")),
        }
    if pm is not None:
        pi["payment_method"] = pm["id"]
        pi["status"] = "requires_confirmation"
    ctx.store.add("payment_intent", pi)
    ctx.emit("payment_intent.created", pi)
    if p.bool("confirm"):
        _confirm_pi(ctx, pi, pm, off_session=off_session, return_url=p.str("return_url"))
    return pi


def _confirm_pi(ctx: Context, pi: Obj, pm: Obj | None, *, off_session: bool, return_url: str | None) -> None:
    if pi["status"] not in ("requires_payment_method", "requires_confirmation", "requires_action"):
        raise InvalidRequestError(
            f"You cannot confirm this PaymentIntent because it has a status of {pi['status']}. Only a "
            "PaymentIntent "
            "with one of the following statuses may be confirmed: requires_confirmation, "
            "requires_payment_method, "
            "requires_action.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": ctx.render(pi)},
        )
    pm = pm or ctx.store.get("payment_method", pi["payment_method"])
    if pm is None:
        raise InvalidRequestError(
            "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
            "PaymentIntent, specify a payment method.",
            code="payment_intent_unexpected_state",
            param="payment_method",
        )
    if pm["customer"] and pm["customer"] != pi["customer"]:
        raise InvalidRequestError(
            f"The provided PaymentMethod ({pm['id']}) is attached to another customer.",
            param="payment_method",
        )
    result = payments.confirm_payment_intent(ctx, pi, pm, off_session=off_session, return_url=return_url)
    if result.error is not None:
        raise result.error


@api("GET", "/v1/payment_intents/{pi_id}", allowed={"client_secret"})
def payment_intent_retrieve(ctx: Context, p: Params, pi_id: str) -> Obj:
    return ctx.store.require("payment_intent", pi_id)


@api(
    "POST",
    "/v1/payment_intents/{pi_id}",
    allowed=PI_FIELDS
    - {
        "confirm",
        "off_session",
        "return_url",
        "error_on_requires_action",
        "confirmation_method",
        "use_stripe_sdk",
        "mandate",
        "mandate_data",
        "radar_options",
        "on_behalf_of",
    },
)
def payment_intent_update(ctx: Context, p: Params, pi_id: str) -> Obj:
    pi = ctx.store.require("payment_intent", pi_id)
    before = public(pi)
    final = pi["status"] in ("succeeded", "canceled", "processing")
    if final and set(p.data) - {"metadata", "description", "receipt_email", "expand"}:
        raise InvalidRequestError(
            f"You cannot update this PaymentIntent because it has a status of {pi['status']}.",
            code="payment_intent_unexpected_state",
        )
    if "amount" in p:
        pi["amount"] = _amount(p, pi["currency"])
    if "customer" in p:
        pi["customer"] = _object_param(ctx, "customer", p.str("customer"), "customer")["id"]
    if p.str("payment_method"):
        pi["payment_method"] = payments.resolve_payment_method(ctx, p.str("payment_method"))["id"]
        if pi["status"] == "requires_payment_method":
            pi["status"] = "requires_confirmation"
    for key in ("description", "receipt_email", "statement_descriptor", "statement_descriptor_suffix"):
        if key in p:
            pi[key] = p.str(key)
    if "setup_future_usage" in p:
        pi["setup_future_usage"] = p.enum("setup_future_usage", ["on_session", "off_session"])
    pi["metadata"] = merge_metadata(pi["metadata"], p.metadata())
    _emit_updated(ctx, "payment_intent.updated", pi, before)
    return pi


@api(
    "POST",
    "/v1/payment_intents/{pi_id}/confirm",
    allowed={
        "payment_method",
        "off_session",
        "return_url",
        "setup_future_usage",
        "receipt_email",
        "payment_method_options",
        "mandate_data",
        "error_on_requires_action",
        "use_stripe_sdk",
        "payment_method_data",
        "capture_method",
        "shipping",
        "client_secret",
        "payment_method_types",
        "radar_options",
        "mandate",
    },
)
def payment_intent_confirm(ctx: Context, p: Params, pi_id: str) -> Obj:
    pi = ctx.store.require("payment_intent", pi_id)
    pm_id = p.str("payment_method")
    pm = payments.resolve_payment_method(ctx, pm_id) if pm_id else None
    if "setup_future_usage" in p:
        pi["setup_future_usage"] = p.enum("setup_future_usage", ["on_session", "off_session"])
    off_session = p.raw("off_session") not in (None, "", "false", False)
    _confirm_pi(ctx, pi, pm, off_session=off_session, return_url=p.str("return_url"))
    return pi


@api("POST", "/v1/payment_intents/{pi_id}/cancel", allowed={"cancellation_reason"})
def payment_intent_cancel(ctx: Context, p: Params, pi_id: str) -> Obj:
    pi = ctx.store.require("payment_intent", pi_id)
    if pi.get("_invoice"):
        raise InvalidRequestError(
            "You cannot cancel this PaymentIntent because it was created by an invoice. Void the invoice "
            "instead.",
            code="payment_intent_unexpected_state",
        )
    if pi["status"] in ("succeeded", "canceled"):
        raise InvalidRequestError(
            f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. Only a "
            "PaymentIntent "
            "with one of the following statuses may be canceled: requires_payment_method, requires_capture, "
            "requires_confirmation, requires_action, processing.",
            code="payment_intent_unexpected_state",
        )
    pi["status"] = "canceled"
    pi["canceled_at"] = ctx.now(pi)
    pi["cancellation_reason"] = p.enum(
        "cancellation_reason", ["duplicate", "fraudulent", "requested_by_customer", "abandoned"]
    )
    pi["amount_capturable"] = 0
    ctx.emit("payment_intent.canceled", pi)
    return pi


@api(
    "POST",
    "/v1/payment_intents/{pi_id}/capture",
    allowed={
        "amount_to_capture",
        "metadata",
        "final_capture",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "application_fee_amount",
        "transfer_data",
    },
)
def payment_intent_capture(ctx: Context, p: Params, pi_id: str) -> Obj:
    pi = ctx.store.require("payment_intent", pi_id)
    pi["metadata"] = merge_metadata(pi["metadata"], p.metadata())
    return payments.capture_payment_intent(ctx, pi, p.int("amount_to_capture"))


@api("GET", "/v1/payment_intents", allowed=LIST | {"customer"})
def payment_intent_list(ctx: Context, p: Params) -> Obj:
    customer_id = p.str("customer")
    return list_of(
        ctx, "payment_intent", p, "/v1/payment_intents", lambda pi: customer_id in (None, pi["customer"])
    )


# ---------------------------------------------------------------------- charges, refunds, balance
@api("GET", "/v1/charges/{ch_id}", allowed=set())
def charge_retrieve(ctx: Context, p: Params, ch_id: str) -> Obj:
    return ctx.store.require("charge", ch_id)


@api("POST", "/v1/charges", allowed=None)
def charge_create(ctx: Context, p: Params) -> Obj:
    raise InvalidRequestError(
        "The emulator makes charges through PaymentIntents only: create a PaymentIntent with confirm=true."
    )


@api(
    "POST",
    "/v1/charges/{ch_id}",
    allowed={
        "description",
        "metadata",
        "receipt_email",
        "shipping",
        "fraud_details",
        "transfer_group",
        "customer",
    },
)
def charge_update(ctx: Context, p: Params, ch_id: str) -> Obj:
    ch = ctx.store.require("charge", ch_id)
    before = public(ch)
    for key in ("description", "receipt_email"):
        if key in p:
            ch[key] = p.str(key)
    ch["metadata"] = merge_metadata(ch["metadata"], p.metadata())
    _emit_updated(ctx, "charge.updated", ch, before)
    return ch


@api("GET", "/v1/charges", allowed=LIST | {"customer", "payment_intent", "transfer_group"})
def charge_list(ctx: Context, p: Params) -> Obj:
    customer_id, pi_id = p.str("customer"), p.str("payment_intent")
    return list_of(
        ctx,
        "charge",
        p,
        "/v1/charges",
        lambda c: customer_id in (None, c["customer"]) and pi_id in (None, c["payment_intent"]),
    )


@api("GET", "/v1/charges/{ch_id}/refunds", allowed=set())
def charge_refunds(ctx: Context, p: Params, ch_id: str) -> Obj:
    ctx.store.require("charge", ch_id)
    return list_of(ctx, "refund", p, f"/v1/charges/{ch_id}/refunds", lambda r: r["charge"] == ch_id)


@api(
    "POST",
    "/v1/refunds",
    allowed={
        "charge",
        "payment_intent",
        "amount",
        "reason",
        "metadata",
        "instructions_email",
        "refund_application_fee",
        "reverse_transfer",
        "origin",
        "currency",
        "customer",
    },
)
def refund_create(ctx: Context, p: Params) -> Obj:
    charge_id, pi_id = p.str("charge"), p.str("payment_intent")
    if not charge_id and not pi_id:
        raise InvalidRequestError(
            "One of the following params should be provided for this request: payment_intent or charge."
        )
    if pi_id:
        pi = _object_param(ctx, "payment_intent", pi_id, "payment_intent")
        if pi["status"] != "succeeded" or not pi["latest_charge"]:
            raise InvalidRequestError(
                f"This PaymentIntent ({pi_id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge_id = pi["latest_charge"]
    ch = _object_param(ctx, "charge", charge_id, "charge")
    reason = p.enum("reason", ["duplicate", "fraudulent", "requested_by_customer"])
    return payments.create_refund(ctx, ch, p.int("amount"), reason, p.metadata())


@api("GET", "/v1/refunds/{re_id}", allowed=set())
def refund_retrieve(ctx: Context, p: Params, re_id: str) -> Obj:
    return ctx.store.require("refund", re_id)


@api("POST", "/v1/refunds/{re_id}", allowed={"metadata"})
def refund_update(ctx: Context, p: Params, re_id: str) -> Obj:
    refund = ctx.store.require("refund", re_id)
    before = public(refund)
    refund["metadata"] = merge_metadata(refund["metadata"], p.metadata())
    _emit_updated(ctx, "refund.updated", refund, before)
    return refund


@api("GET", "/v1/refunds", allowed=LIST | {"charge", "payment_intent"})
def refund_list(ctx: Context, p: Params) -> Obj:
    charge_id, pi_id = p.str("charge"), p.str("payment_intent")
    return list_of(
        ctx,
        "refund",
        p,
        "/v1/refunds",
        lambda r: charge_id in (None, r["charge"]) and pi_id in (None, r["payment_intent"]),
    )


@api("GET", "/v1/balance_transactions/{txn_id}", allowed=set())
def balance_transaction_retrieve(ctx: Context, p: Params, txn_id: str) -> Obj:
    return ctx.store.require("balance_transaction", txn_id)


@api("GET", "/v1/balance_transactions", allowed=LIST | {"source", "type", "currency", "payout"})
def balance_transaction_list(ctx: Context, p: Params) -> Obj:
    source, kind = p.str("source"), p.str("type")
    return list_of(
        ctx,
        "balance_transaction",
        p,
        "/v1/balance_transactions",
        lambda t: source in (None, t["source"]) and kind in (None, t["type"]),
    )


# ---------------------------------------------------------------------- products and prices
PRODUCT_FIELDS = {
    "name",
    "active",
    "description",
    "metadata",
    "images",
    "marketing_features",
    "package_dimensions",
    "shippable",
    "statement_descriptor",
    "tax_code",
    "unit_label",
    "url",
}


def _product_fields(prod: Obj, p: Params) -> None:
    for key in ("description", "statement_descriptor", "tax_code", "unit_label", "url"):
        if key in p:
            prod[key] = p.str(key)
    if "name" in p:
        prod["name"] = p.str("name", required=True)
    if "active" in p:
        prod["active"] = p.bool("active")
    if "shippable" in p:
        prod["shippable"] = p.bool("shippable")
    if "images" in p:
        prod["images"] = p.list("images")
    if "marketing_features" in p:
        prod["marketing_features"] = [{"name": f.str("name")} for f in p.list_of_dicts("marketing_features")]
    prod["metadata"] = merge_metadata(prod["metadata"], p.metadata())


@api("POST", "/v1/products", allowed=PRODUCT_FIELDS | {"id", "default_price_data", "type"})
def product_create(ctx: Context, p: Params) -> Obj:
    name = p.str("name", required=True)
    product_id = p.str("id") or ctx.store.new_id("product", 19)
    if ctx.store.get("product", product_id) is not None:
        raise InvalidRequestError("Product already exists.", code="resource_already_exists", param="id")
    prod = objects.product(product_id, ctx.now(), name)
    _product_fields(prod, p)
    ctx.store.add("product", prod)
    ctx.emit("product.created", prod)
    if "default_price_data" in p:
        dp = p.dict("default_price_data")
        price = _new_price(ctx, dp, prod)
        prod["default_price"] = price["id"]
    return prod


@api("GET", "/v1/products/{prod_id}", allowed=set())
def product_retrieve(ctx: Context, p: Params, prod_id: str) -> Obj:
    return ctx.store.require("product", prod_id)


@api("POST", "/v1/products/{prod_id}", allowed=PRODUCT_FIELDS | {"default_price"})
def product_update(ctx: Context, p: Params, prod_id: str) -> Obj:
    prod = ctx.store.require("product", prod_id)
    before = public(prod)
    _product_fields(prod, p)
    if "default_price" in p:
        price_id = p.str("default_price")
        if price_id:
            price = _object_param(ctx, "price", price_id, "default_price")
            if price["product"] != prod_id:
                raise InvalidRequestError(
                    "The default price must belong to this product.", param="default_price"
                )
        prod["default_price"] = price_id
    prod["updated"] = ctx.now()
    _emit_updated(ctx, "product.updated", prod, before)
    return prod


@api("DELETE", "/v1/products/{prod_id}", allowed=set())
def product_delete(ctx: Context, p: Params, prod_id: str) -> Obj:
    prod = ctx.store.require("product", prod_id)
    if any(price["product"] == prod_id for price in ctx.store.all("price")):
        raise InvalidRequestError(
            "This product cannot be deleted because it has one or more user-created prices."
        )
    snapshot = ctx.render(prod)
    ctx.store.remove("product", prod_id)
    ctx.emit("product.deleted", snapshot)
    return {"id": prod_id, "object": "product", "deleted": True}


@api("GET", "/v1/products", allowed=LIST | {"active", "ids", "shippable", "url"})
def product_list(ctx: Context, p: Params) -> Obj:
    active, ids = p.bool("active"), p.list("ids")
    return list_of(
        ctx,
        "product",
        p,
        "/v1/products",
        lambda prod: active in (None, prod["active"]) and (not ids or prod["id"] in ids),
    )


@api("GET", "/v1/products/{prod_id}/features", allowed=set())
def product_features(ctx: Context, p: Params, prod_id: str) -> Obj:
    """Entitlement features are not emulated: every product has none."""
    ctx.store.require("product", prod_id)
    return objects.list_object(f"/v1/products/{prod_id}/features")


PRICE_FIELDS = {
    "currency",
    "product",
    "product_data",
    "unit_amount",
    "unit_amount_decimal",
    "recurring",
    "lookup_key",
    "transfer_lookup_key",
    "nickname",
    "metadata",
    "active",
    "tax_behavior",
    "billing_scheme",
    "custom_unit_amount",
    "tiers",
    "tiers_mode",
    "transform_quantity",
    "currency_options",
}


def _new_price(ctx: Context, p: Params, prod: Obj | None) -> Obj:
    currency = (p.str("currency", required=True) or "").lower()
    if prod is None:
        product_id = p.str("product")
        if product_id:
            prod = _object_param(ctx, "product", product_id, "product")
        elif "product_data" in p:
            data = p.dict("product_data")
            prod = objects.product(
                ctx.store.new_id("product", 19), ctx.now(), data.str("name", required=True)
            )
            prod["metadata"] = data.metadata() or {}
            prod["unit_label"] = data.str("unit_label")
            ctx.store.add("product", prod)
            ctx.emit("product.created", prod)
        else:
            raise missing("product")
    if p.str("billing_scheme") == "tiered":
        raise invalid(
            "billing_scheme", "The emulator supports per_unit prices only.", "parameter_invalid_string"
        )
    unit = p.int("unit_amount", minimum=0)
    if unit is None and p.str("unit_amount_decimal"):
        unit = round(float(p.str("unit_amount_decimal") or 0))
    if unit is None and "custom_unit_amount" not in p:
        raise missing("unit_amount")
    price = objects.price(ctx.store.new_id("price"), ctx.now(), prod["id"], currency, unit)
    if "custom_unit_amount" in p:
        cua = p.dict("custom_unit_amount")
        price["custom_unit_amount"] = {
            "maximum": cua.int("maximum"),
            "minimum": cua.int("minimum"),
            "preset": cua.int("preset"),
        }
    recurring = p.dict("recurring")
    if "recurring" in p:
        interval = recurring.enum("interval", ["day", "week", "month", "year"])
        if interval is None:
            raise missing("recurring[interval]")
        count = recurring.int("interval_count", 1, minimum=1)
        limits = {"day": 365, "week": 52, "month": 12, "year": 1}
        if count > limits[interval]:
            raise invalid(
                "recurring[interval_count]",
                "The maximum billing period is one year.",
                "parameter_invalid_integer",
            )
        usage = recurring.enum("usage_type", ["licensed", "metered"], "licensed")
        meter_id = recurring.str("meter")
        if usage == "metered" and not meter_id:
            raise missing("recurring[meter]")
        if meter_id:
            _object_param(ctx, "meter", meter_id, "recurring[meter]")
        price["recurring"] = {
            "interval": interval,
            "interval_count": count,
            "meter": meter_id,
            "trial_period_days": recurring.int("trial_period_days"),
            "usage_type": usage,
        }
        price["type"] = "recurring"
    price["nickname"] = p.str("nickname")
    price["metadata"] = p.metadata() or {}
    if "active" in p:
        price["active"] = p.bool("active")
    price["tax_behavior"] = p.enum("tax_behavior", ["exclusive", "inclusive", "unspecified"], "unspecified")
    _set_lookup_key(ctx, price, p)
    ctx.store.add("price", price)
    ctx.emit("price.created", price)
    return price


def _set_lookup_key(ctx: Context, price: Obj, p: Params) -> None:
    if "lookup_key" not in p:
        return
    key = p.str("lookup_key")
    if key:
        holder = next(
            (o for o in ctx.store.all("price") if o["lookup_key"] == key and o["id"] != price["id"]), None
        )
        if holder is not None:
            if not p.bool("transfer_lookup_key"):
                raise InvalidRequestError(
                    f"A price (`{holder['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            before = public(holder)
            holder["lookup_key"] = None
            _emit_updated(ctx, "price.updated", holder, before)
    price["lookup_key"] = key


@api("POST", "/v1/prices", allowed=PRICE_FIELDS)
def price_create(ctx: Context, p: Params) -> Obj:
    return _new_price(ctx, p, None)


@api("GET", "/v1/prices/{price_id}", allowed=set())
def price_retrieve(ctx: Context, p: Params, price_id: str) -> Obj:
    return ctx.store.require("price", price_id)


@api(
    "POST",
    "/v1/prices/{price_id}",
    allowed={
        "active",
        "lookup_key",
        "transfer_lookup_key",
        "metadata",
        "nickname",
        "tax_behavior",
        "currency_options",
    },
)
def price_update(ctx: Context, p: Params, price_id: str) -> Obj:
    price = ctx.store.require("price", price_id)
    before = public(price)
    if "active" in p:
        price["active"] = p.bool("active")
    if "nickname" in p:
        price["nickname"] = p.str("nickname")
    if "tax_behavior" in p:
        price["tax_behavior"] = p.enum("tax_behavior", ["exclusive", "inclusive", "unspecified"])
    _set_lookup_key(ctx, price, p)
    price["metadata"] = merge_metadata(price["metadata"], p.metadata())
    _emit_updated(ctx, "price.updated", price, before)
    return price


@api(
    "GET", "/v1/prices", allowed=LIST | {"active", "currency", "product", "type", "lookup_keys", "recurring"}
)
def price_list(ctx: Context, p: Params) -> Obj:
    active, currency, product, kind = p.bool("active"), p.str("currency"), p.str("product"), p.str("type")
    keys = p.list("lookup_keys")
    recurring = p.dict("recurring")
    interval, usage = recurring.str("interval"), recurring.str("usage_type")

    def keep(price: Obj) -> bool:
        rec = price["recurring"] or {}
        return (
            active in (None, price["active"])
            and currency in (None, price["currency"])
            and product in (None, price["product"])
            and kind in (None, price["type"])
            and (not keys or price["lookup_key"] in keys)
            and interval in (None, rec.get("interval"))
            and usage in (None, rec.get("usage_type"))
        )

    return list_of(ctx, "price", p, "/v1/prices", keep)


# ---------------------------------------------------------------------- subscriptions
SUB_CREATE_FIELDS = {
    "customer",
    "items",
    "trial_period_days",
    "trial_end",
    "trial_from_plan",
    "default_payment_method",
    "payment_behavior",
    "collection_method",
    "days_until_due",
    "metadata",
    "description",
    "cancel_at_period_end",
    "cancel_at",
    "off_session",
    "proration_behavior",
    "add_invoice_items",
    "trial_settings",
    "payment_settings",
    "currency",
    "automatic_tax",
    "default_tax_rates",
    "discounts",
    "billing_cycle_anchor",
    "backdate_start_date",
    "expand",
    "on_behalf_of",
    "application_fee_percent",
    "transfer_data",
    "pending_invoice_item_interval",
    "billing_thresholds",
    "invoice_settings",
    "billing_mode",
    "billing_cycle_anchor_config",
    "default_source",
}


def _price_param(ctx: Context, p: Params, key: str = "price") -> Obj:
    price_id = p.str(key, required=True)
    price = ctx.store.get("price", price_id)
    if price is None:
        raise InvalidRequestError(f"No such price: '{price_id}'", code="resource_missing", param=p.name(key))
    if not price["active"]:
        raise InvalidRequestError(
            f"The price specified ({price_id}) is inactive. This field only accepts active prices.",
            param=p.name(key),
        )
    return price


def _sub_pm(ctx: Context, p: Params, customer: Obj) -> Obj | None:
    pm_id = p.str("default_payment_method")
    if not pm_id:
        return None
    pm = _object_param(ctx, "payment_method", pm_id, "default_payment_method")
    if pm["customer"] != customer["id"]:
        raise InvalidRequestError(
            f"The customer does not have a payment method with the ID {pm_id}. The payment method must be "
            "attached "
            "to the customer.",
            code="resource_missing",
            param="default_payment_method",
        )
    return pm


@api("POST", "/v1/subscriptions", allowed=SUB_CREATE_FIELDS)
def subscription_create(ctx: Context, p: Params) -> Obj:
    customer = _object_param(ctx, "customer", p.str("customer", required=True), "customer")
    item_params = p.list_of_dicts("items")
    if not item_params:
        raise missing("items")
    specs = []
    for ip in item_params:
        price = _price_param(ctx, ip)
        if price["type"] != "recurring":
            raise InvalidRequestError(
                f"The price specified ({price['id']}) is a one-time price. Subscription items only accept "
                "recurring "
                "prices; use add_invoice_items for one-time prices.",
                param=ip.name("price"),
            )
        specs.append(billing.ItemSpec(price, ip.int("quantity", 1, minimum=0), ip.metadata() or {}))
    if len({(s.price["currency"]) for s in specs}) > 1:
        raise InvalidRequestError("All prices on a subscription must have the same currency.", param="items")
    if len({(s.price["recurring"]["interval"], s.price["recurring"]["interval_count"]) for s in specs}) > 1:
        raise InvalidRequestError(
            "All prices on a subscription must have the same `recurring.interval` and "
            "`recurring.interval_count`.",
            param="items",
        )
    one_time = []
    for ip in p.list_of_dicts("add_invoice_items"):
        one_time.append(billing.ItemSpec(_price_param(ctx, ip), ip.int("quantity", 1, minimum=1)))
    now = ctx.now(customer)
    trial_end = p.timestamp_or_now("trial_end", now)
    if trial_end is not None and trial_end <= now:
        if p.raw("trial_end") != "now":
            raise invalid(
                "trial_end",
                "Invalid timestamp: must be an integer Unix timestamp in the future.",
                "parameter_invalid_integer",
            )
        trial_end = None
    days = p.int("trial_period_days", minimum=0)
    if days is None and p.bool("trial_from_plan"):
        days = specs[0].price["recurring"].get("trial_period_days")
    if days and trial_end is None:
        trial_end = now + days * 86400
    collection = p.enum("collection_method", ["charge_automatically", "send_invoice"], "charge_automatically")
    days_until_due = p.int("days_until_due", minimum=0)
    if collection == "send_invoice" and days_until_due is None:
        raise missing("days_until_due")
    off_session = bool(p.bool("off_session", False))
    trial_settings = p.dict("trial_settings").dict("end_behavior")
    sub = billing.create_subscription(
        ctx,
        customer,
        specs,
        trial_end=trial_end,
        default_pm=_sub_pm(ctx, p, customer),
        payment_behavior=p.enum(
            "payment_behavior",
            ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
            "allow_incomplete",
        ),
        collection_method=collection,
        days_until_due=days_until_due,
        metadata=p.metadata() or {},
        description=p.str("description"),
        cancel_at_period_end=bool(p.bool("cancel_at_period_end", False)),
        off_session=off_session,
        one_time=one_time,
        save_default_payment_method=p.dict("payment_settings").enum(
            "save_default_payment_method", ["off", "on_subscription"], "off"
        )
        or "off",
        missing_pm_behavior=trial_settings.enum(
            "missing_payment_method", ["cancel", "create_invoice", "pause"], "create_invoice"
        ),
    )
    return sub


def _subscription(ctx: Context, sub_id: str) -> Obj:
    return ctx.store.require("subscription", sub_id)


@api("GET", "/v1/subscriptions/{sub_id}", allowed=set())
def subscription_retrieve(ctx: Context, p: Params, sub_id: str) -> Obj:
    return _subscription(ctx, sub_id)


SUB_UPDATE_FIELDS = SUB_CREATE_FIELDS - {
    "customer",
    "currency",
    "backdate_start_date",
    "trial_period_days",
} | {
    "proration_date",
    "pause_collection",
    "cancellation_details",
}


@api("POST", "/v1/subscriptions/{sub_id}", allowed=SUB_UPDATE_FIELDS)
def subscription_update(ctx: Context, p: Params, sub_id: str) -> Obj:
    sub = _subscription(ctx, sub_id)
    customer = ctx.store.require("customer", sub["customer"])
    before = ctx.render(sub)
    marker = ctx.store.seq
    ended = sub["status"] in ("canceled", "incomplete_expired")
    if ended and set(p.data) - {"metadata", "cancellation_details", "expand"}:
        raise InvalidRequestError(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    now = ctx.now(customer)
    payment_behavior = p.enum(
        "payment_behavior",
        ["allow_incomplete", "default_incomplete", "error_if_incomplete", "pending_if_incomplete"],
        "allow_incomplete",
    )
    proration = p.enum(
        "proration_behavior", ["create_prorations", "none", "always_invoice"], "create_prorations"
    )
    if "default_payment_method" in p:
        pm = _sub_pm(ctx, p, customer)
        sub["default_payment_method"] = pm["id"] if pm else None
    if "description" in p:
        sub["description"] = p.str("description")
    sub["metadata"] = merge_metadata(sub["metadata"], p.metadata())
    if "cancellation_details" in p:
        details = p.dict("cancellation_details")
        sub["cancellation_details"]["comment"] = details.str("comment")
        sub["cancellation_details"]["feedback"] = details.str("feedback")
    if "collection_method" in p:
        sub["collection_method"] = p.enum("collection_method", ["charge_automatically", "send_invoice"])
    if "days_until_due" in p:
        sub["days_until_due"] = p.int("days_until_due")
    if "trial_settings" in p:
        behaviour = (
            p.dict("trial_settings")
            .dict("end_behavior")
            .enum("missing_payment_method", ["cancel", "create_invoice", "pause"])
        )
        if behaviour:
            sub["trial_settings"]["end_behavior"]["missing_payment_method"] = behaviour
    if "cancel_at_period_end" in p:
        if p.bool("cancel_at_period_end"):
            billing._schedule_cancel(ctx, sub, now)
        else:
            billing._unschedule_cancel(sub)
    if "cancel_at" in p:
        cancel_at = p.int("cancel_at")
        sub["cancel_at"] = cancel_at
        sub["canceled_at"] = now if cancel_at else None
        sub["cancel_at_period_end"] = False
    changes = []
    for ip in p.list_of_dicts("items"):
        item_id = ip.str("id")
        price = _price_param(ctx, ip) if ip.str("price") else None
        if item_id is None and price is None:
            raise missing(ip.name("price"))
        changes.append(
            billing.ItemChange(
                item_id=item_id,
                price=price,
                quantity=ip.int("quantity", minimum=0),
                deleted=bool(ip.bool("deleted", False)),
                metadata=ip.metadata(),
            )
        )
    if changes:
        if (
            payment_behavior in ("error_if_incomplete", "pending_if_incomplete")
            and proration == "always_invoice"
        ):
            pm = billing.default_payment_method(ctx, customer, sub)
            if pm is not None:
                billing._precheck(ctx, pm, True)
        billing.update_items(
            ctx,
            sub,
            changes,
            proration_behavior=proration,
            proration_date=p.int("proration_date"),
            payment_behavior=payment_behavior,
        )
    if "trial_end" in p and sub["status"] == "trialing":
        trial_end = p.timestamp_or_now("trial_end", now)
        if trial_end is not None and trial_end <= now:
            billing.end_trial(ctx, sub, now)
        elif trial_end is not None:
            sub["trial_end"] = trial_end
            billing.set_period(ctx, sub, billing.period_of(ctx, sub)[0], trial_end)
    after = ctx.render(sub)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    already = any(
        e["_seq"] > marker
        and e["type"] == "customer.subscription.updated"
        and e["data"]["object"]["id"] == sub_id
        for e in ctx.store.all("event")[-50:]
    )
    if previous and not already and sub["status"] != "canceled":
        ctx.emit("customer.subscription.updated", sub, previous)
    return sub


@api("DELETE", "/v1/subscriptions/{sub_id}", allowed={"invoice_now", "prorate", "cancellation_details"})
def subscription_cancel(ctx: Context, p: Params, sub_id: str) -> Obj:
    sub = _subscription(ctx, sub_id)
    details = p.dict("cancellation_details")
    return billing.cancel_subscription(
        ctx,
        sub,
        prorate=bool(p.bool("prorate", False)),
        invoice_now=bool(p.bool("invoice_now", False)),
        comment=details.str("comment"),
        feedback=details.str("feedback"),
    )


@api(
    "POST",
    "/v1/subscriptions/{sub_id}/resume",
    allowed={"billing_cycle_anchor", "proration_behavior", "proration_date"},
)
def subscription_resume(ctx: Context, p: Params, sub_id: str) -> Obj:
    return billing.resume_subscription(ctx, _subscription(ctx, sub_id))


@api(
    "GET",
    "/v1/subscriptions",
    allowed=LIST
    | {
        "customer",
        "price",
        "status",
        "collection_method",
        "current_period_end",
        "current_period_start",
        "test_clock",
        "automatic_tax",
    },
)
def subscription_list(ctx: Context, p: Params) -> Obj:
    customer_id, price_id = p.str("customer"), p.str("price")
    status = p.enum(
        "status",
        [
            "active",
            "all",
            "canceled",
            "ended",
            "incomplete",
            "incomplete_expired",
            "past_due",
            "paused",
            "trialing",
            "unpaid",
        ],
    )
    collection = p.str("collection_method")
    clock_id = p.str("test_clock")

    def keep(sub: Obj) -> bool:
        if clock_id is not None and sub.get("test_clock") != clock_id:
            return False
        if status is None and sub["status"] == "canceled":
            return False
        if status not in (None, "all"):
            wanted = {"canceled", "incomplete_expired"} if status == "ended" else {status}
            if sub["status"] not in wanted:
                return False
        if price_id and not any(
            ctx.store.objects["subscription_item"].get(i, {}).get("price") == price_id for i in sub["_items"]
        ):
            return False
        return customer_id in (None, sub["customer"]) and collection in (None, sub["collection_method"])

    return list_of(ctx, "subscription", p, "/v1/subscriptions", keep)


# ---------------------------------------------------------------------- subscription items
@api("GET", "/v1/subscription_items", allowed={"subscription"})
def subscription_item_list(ctx: Context, p: Params) -> Obj:
    sub = _object_param(ctx, "subscription", p.str("subscription", required=True), "subscription")
    items = [ctx.store.objects["subscription_item"][i] for i in sub["_items"]]
    return paginate(items, p, f"/v1/subscription_items?subscription={sub['id']}", "subscription_item")


@api("GET", "/v1/subscription_items/{si_id}", allowed=set())
def subscription_item_retrieve(ctx: Context, p: Params, si_id: str) -> Obj:
    return ctx.store.require("subscription_item", si_id)


def _item_change(ctx: Context, p: Params, sub: Obj, change: billing.ItemChange) -> None:
    before = ctx.render(sub)
    billing.update_items(
        ctx,
        sub,
        [change],
        proration_behavior=p.enum(
            "proration_behavior", ["create_prorations", "none", "always_invoice"], "create_prorations"
        ),
        proration_date=p.int("proration_date"),
        payment_behavior=p.str("payment_behavior", "allow_incomplete"),
    )
    ctx.emit("customer.subscription.updated", sub, {"items": before["items"]})


ITEM_FIELDS = {
    "price",
    "quantity",
    "metadata",
    "proration_behavior",
    "proration_date",
    "payment_behavior",
    "discounts",
    "tax_rates",
    "billing_thresholds",
    "price_data",
    "off_session",
}


@api("POST", "/v1/subscription_items", allowed=ITEM_FIELDS | {"subscription"})
def subscription_item_create(ctx: Context, p: Params) -> Obj:
    sub = _object_param(ctx, "subscription", p.str("subscription", required=True), "subscription")
    price = _price_param(ctx, p)
    _item_change(
        ctx, p, sub, billing.ItemChange(None, price, p.int("quantity", 1, minimum=0), metadata=p.metadata())
    )
    return ctx.store.objects["subscription_item"][sub["_items"][-1]]


@api("POST", "/v1/subscription_items/{si_id}", allowed=ITEM_FIELDS)
def subscription_item_update(ctx: Context, p: Params, si_id: str) -> Obj:
    item = ctx.store.require("subscription_item", si_id)
    sub = _subscription(ctx, item["subscription"])
    price = _price_param(ctx, p) if p.str("price") else None
    _item_change(
        ctx, p, sub, billing.ItemChange(si_id, price, p.int("quantity", minimum=0), metadata=p.metadata())
    )
    return item


@api(
    "DELETE",
    "/v1/subscription_items/{si_id}",
    allowed={"proration_behavior", "proration_date", "clear_usage"},
)
def subscription_item_delete(ctx: Context, p: Params, si_id: str) -> Obj:
    item = ctx.store.require("subscription_item", si_id)
    sub = _subscription(ctx, item["subscription"])
    _item_change(ctx, p, sub, billing.ItemChange(si_id, None, None, deleted=True))
    return {"id": si_id, "object": "subscription_item", "deleted": True}


# ---------------------------------------------------------------------- invoices
INVOICE_FIELDS = {
    "auto_advance",
    "collection_method",
    "days_until_due",
    "due_date",
    "description",
    "metadata",
    "default_payment_method",
    "footer",
    "custom_fields",
    "statement_descriptor",
    "automatic_tax",
    "account_tax_ids",
    "discounts",
    "rendering",
    "payment_settings",
    "shipping_cost",
    "shipping_details",
    "issuer",
    "on_behalf_of",
    "number",
    "effective_at",
    "transfer_data",
    "application_fee_amount",
    "default_tax_rates",
    "default_source",
}


def _invoice(ctx: Context, in_id: str) -> Obj:
    return ctx.store.require("invoice", in_id)


def _invoice_fields(ctx: Context, inv: Obj, p: Params) -> None:
    for key in ("description", "footer", "statement_descriptor"):
        if key in p:
            inv[key] = p.str(key)
    if "auto_advance" in p:
        inv["auto_advance"] = p.bool("auto_advance")
    if "collection_method" in p:
        inv["collection_method"] = p.enum("collection_method", ["charge_automatically", "send_invoice"])
    if "days_until_due" in p:
        inv["_days_until_due"] = p.int("days_until_due", minimum=0)
    if "due_date" in p:
        inv["due_date"] = p.int("due_date")
    if "default_payment_method" in p:
        pm_id = p.str("default_payment_method")
        if pm_id:
            _object_param(ctx, "payment_method", pm_id, "default_payment_method")
        inv["default_payment_method"] = pm_id
    inv["metadata"] = merge_metadata(inv["metadata"], p.metadata())


@api(
    "POST",
    "/v1/invoices",
    allowed=INVOICE_FIELDS
    | {"customer", "subscription", "pending_invoice_items_behavior", "currency", "from_invoice"},
)
def invoice_create(ctx: Context, p: Params) -> Obj:
    customer = _object_param(ctx, "customer", p.str("customer", required=True), "customer")
    sub = (
        _object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    collection = p.enum("collection_method", ["charge_automatically", "send_invoice"], "charge_automatically")
    if collection == "send_invoice" and p.int("days_until_due") is None and p.int("due_date") is None:
        raise InvalidRequestError(
            "Invoices with collection_method=send_invoice must have either days_until_due or due_date set.",
            param="days_until_due",
        )
    inv = billing.new_invoice(ctx, customer, sub=sub, billing_reason="manual", collection_method=collection)
    if p.str("currency"):
        inv["currency"] = (p.str("currency") or "").lower()
    _invoice_fields(ctx, inv, p)
    inv["auto_advance"] = bool(p.bool("auto_advance", False))
    behaviour = p.enum("pending_invoice_items_behavior", ["exclude", "include"], "exclude")
    if behaviour == "include":
        for ii in billing.pending_items(ctx, customer["id"], sub["id"] if sub else None):
            billing.attach_invoice_item(ctx, inv, ii)
    ctx.emit("invoice.created", inv)
    return inv


@api("GET", "/v1/invoices/{in_id}", allowed=set())
def invoice_retrieve(ctx: Context, p: Params, in_id: str) -> Obj:
    return _invoice(ctx, in_id)


@api("POST", "/v1/invoices/{in_id}", allowed=INVOICE_FIELDS)
def invoice_update(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    before = ctx.render(inv)
    if inv["status"] != "draft" and set(p.data) - {
        "metadata",
        "description",
        "footer",
        "auto_advance",
        "expand",
    }:
        raise InvalidRequestError(
            f"You can only update the metadata, description, footer and auto_advance of a finalized invoice "
            f"({inv['status']}).",
        )
    _invoice_fields(ctx, inv, p)
    after = ctx.render(inv)
    previous = {k: v for k, v in before.items() if after.get(k) != v}
    if previous:
        ctx.emit("invoice.updated", inv, previous)
    return inv


@api("DELETE", "/v1/invoices/{in_id}", allowed=set())
def invoice_delete(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if inv["status"] != "draft":
        raise InvalidRequestError("You can only delete draft invoices. Void finalized invoices instead.")
    snapshot = ctx.render(inv)
    for ii in ctx.store.all("invoiceitem"):
        if ii["invoice"] == in_id:
            ii["invoice"] = None
    ctx.store.remove("invoice", in_id)
    ctx.emit("invoice.deleted", snapshot)
    return {"id": in_id, "object": "invoice", "deleted": True}


@api(
    "GET",
    "/v1/invoices",
    allowed=LIST | {"customer", "subscription", "status", "collection_method", "due_date"},
)
def invoice_list(ctx: Context, p: Params) -> Obj:
    customer_id, sub_id, collection = p.str("customer"), p.str("subscription"), p.str("collection_method")
    status = p.enum("status", ["draft", "open", "paid", "uncollectible", "void"])
    return list_of(
        ctx,
        "invoice",
        p,
        "/v1/invoices",
        lambda i: (
            customer_id in (None, i["customer"])
            and sub_id in (None, i["subscription"])
            and status in (None, i["status"])
            and collection in (None, i["collection_method"])
        ),
    )


@api("GET", "/v1/invoices/{in_id}/lines", allowed=set())
def invoice_lines(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    return paginate(billing.lines_of(ctx, inv), p, f"/v1/invoices/{in_id}/lines", "line_item")


@api("POST", "/v1/invoices/{in_id}/finalize", allowed={"auto_advance"})
def invoice_finalize(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if "auto_advance" in p:
        inv["auto_advance"] = p.bool("auto_advance")
    return billing.finalize_invoice(ctx, inv)


@api(
    "POST",
    "/v1/invoices/{in_id}/pay",
    allowed={"payment_method", "off_session", "paid_out_of_band", "forgive", "source", "mandate"},
)
def invoice_pay(ctx: Context, p: Params, in_id: str) -> Obj:
    inv = _invoice(ctx, in_id)
    if inv["status"] == "paid":
        raise InvalidRequestError("Invoice is already paid", code="invoice_already_paid")
    if inv["status"] == "void":
        raise InvalidRequestError("This invoice has been voided and cannot be paid.", param="invoice")
    if p.bool("paid_out_of_band"):
        if inv["status"] == "draft":
            billing.finalize_invoice(ctx, inv)
        if inv["status"] != "paid":
            billing.mark_paid(ctx, inv, ctx.now(inv), out_of_band=True)
        return inv
    pm = None
    if p.str("payment_method"):
        pm = payments.resolve_payment_method(ctx, p.str("payment_method"))
    result = billing.pay_invoice(ctx, inv, pm=pm, off_session=bool(p.bool("off_session", True)))
    if result.status == "requires_action":
        raise payments.authentication_error(
            payment_intent=ctx.render(billing.invoice_payment_intent(ctx, inv))
        )
    if result.error is not None:
        raise result.error
    return inv


@api("POST", "/v1/invoices/{in_id}/void", allowed=set())
def invoice_void(ctx: Context, p: Params, in_id: str) -> Obj:
    return billing.void_invoice(ctx, _invoice(ctx, in_id))


@api("POST", "/v1/invoices/{in_id}/mark_uncollectible", allowed=set())
def invoice_mark_uncollectible(ctx: Context, p: Params, in_id: str) -> Obj:
    return billing.mark_uncollectible(ctx, _invoice(ctx, in_id))


@api("POST", "/v1/invoices/{in_id}/send", allowed=set())
def invoice_send(ctx: Context, p: Params, in_id: str) -> Obj:
    return billing.send_invoice(ctx, _invoice(ctx, in_id))


@api(
    "POST",
    "/v1/invoices/create_preview",
    allowed={
        "customer",
        "subscription",
        "subscription_details",
        "automatic_tax",
        "currency",
        "invoice_items",
        "preview_mode",
        "schedule",
        "discounts",
        "customer_details",
        "issuer",
        "on_behalf_of",
        "schedule_details",
    },
)
def invoice_create_preview(ctx: Context, p: Params) -> Obj:
    sub = (
        _object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    customer_id = p.str("customer") or (sub["customer"] if sub else None)
    if not customer_id:
        raise missing("customer")
    customer = _object_param(ctx, "customer", customer_id, "customer")
    return billing.preview_invoice(ctx, customer, sub)


@api("GET", "/v1/invoice_payments", allowed=LIST | {"invoice", "payment", "status"})
def invoice_payment_list(ctx: Context, p: Params) -> Obj:
    in_id = p.str("invoice")
    pi_id = p.dict("payment").str("payment_intent")
    return list_of(
        ctx,
        "invoice_payment",
        p,
        "/v1/invoice_payments",
        lambda x: in_id in (None, x["invoice"]) and pi_id in (None, x["payment"]["payment_intent"]),
    )


@api("GET", "/v1/invoice_payments/{inpay_id}", allowed=set())
def invoice_payment_retrieve(ctx: Context, p: Params, inpay_id: str) -> Obj:
    return ctx.store.require("invoice_payment", inpay_id)


# ---------------------------------------------------------------------- invoice items
@api(
    "POST",
    "/v1/invoiceitems",
    allowed={
        "customer",
        "amount",
        "currency",
        "description",
        "invoice",
        "metadata",
        "period",
        "price",
        "pricing",
        "quantity",
        "subscription",
        "discountable",
        "tax_rates",
        "unit_amount_decimal",
        "tax_behavior",
        "tax_code",
        "discounts",
        "price_data",
    },
)
def invoiceitem_create(ctx: Context, p: Params) -> Obj:
    customer = _object_param(ctx, "customer", p.str("customer", required=True), "customer")
    price_id = p.str("price") or p.dict("pricing").str("price")
    price = (
        _price_param(ctx, p, "price")
        if p.str("price")
        else (_price_param(ctx, p.dict("pricing"), "price") if price_id else None)
    )
    quantity = p.int("quantity", 1, minimum=0)
    amount = p.int("amount")
    if price is None and amount is None:
        if p.str("unit_amount_decimal"):
            amount = round(float(p.str("unit_amount_decimal") or 0) * quantity)
        else:
            raise missing("amount")
    currency = p.str("currency") or (price or {}).get("currency") or customer["currency"] or ""
    if not currency:
        raise missing("currency")
    sub = (
        _object_param(ctx, "subscription", p.str("subscription"), "subscription")
        if p.str("subscription")
        else None
    )
    inv = _object_param(ctx, "invoice", p.str("invoice"), "invoice") if p.str("invoice") else None
    if inv is not None and inv["status"] != "draft":
        raise InvalidRequestError("You can only add invoice items to draft invoices.", param="invoice")
    period = None
    if "period" in p:
        period_p = p.dict("period")
        period = (period_p.int("start", required=True), period_p.int("end", required=True))
    ii = billing.new_invoice_item(
        ctx,
        customer,
        price=price,
        quantity=quantity,
        amount=amount if price is None else None,
        currency=currency.lower(),
        description=p.str("description"),
        sub=sub,
        period=period,
        metadata=p.metadata(),
    )
    if "discountable" in p:
        ii["discountable"] = p.bool("discountable")
    if inv is not None:
        billing.attach_invoice_item(ctx, inv, ii)
    return ii


@api("GET", "/v1/invoiceitems/{ii_id}", allowed=set())
def invoiceitem_retrieve(ctx: Context, p: Params, ii_id: str) -> Obj:
    return ctx.store.require("invoiceitem", ii_id)


@api(
    "POST",
    "/v1/invoiceitems/{ii_id}",
    allowed={
        "amount",
        "description",
        "metadata",
        "period",
        "quantity",
        "discountable",
        "price",
        "pricing",
        "tax_rates",
        "unit_amount_decimal",
        "discounts",
        "tax_behavior",
        "tax_code",
        "price_data",
    },
)
def invoiceitem_update(ctx: Context, p: Params, ii_id: str) -> Obj:
    ii = ctx.store.require("invoiceitem", ii_id)
    before = public(ii)
    inv = ctx.store.get("invoice", ii["invoice"])
    if inv is not None and inv["status"] != "draft" and set(p.data) - {"metadata", "expand"}:
        raise InvalidRequestError("You can only update invoice items on draft invoices.")
    if "description" in p:
        ii["description"] = p.str("description")
    if "amount" in p:
        ii["amount"] = ii["net_amount"] = p.int("amount")
    if "quantity" in p:
        ii["quantity"] = p.int("quantity", minimum=0)
        ii["quantity_decimal"] = str(ii["quantity"])
    ii["metadata"] = merge_metadata(ii["metadata"], p.metadata())
    if inv is not None:
        for line in billing.lines_of(ctx, inv):
            if ((line.get("parent") or {}).get("invoice_item_details") or {}).get("invoice_item") == ii_id:
                line.update(
                    {
                        "amount": ii["amount"],
                        "subtotal": ii["amount"],
                        "description": ii["description"],
                        "quantity": ii["quantity"],
                    }
                )
        billing.recompute(ctx, inv)
    _emit_updated(ctx, "invoiceitem.updated", ii, before)
    return ii


@api("DELETE", "/v1/invoiceitems/{ii_id}", allowed=set())
def invoiceitem_delete(ctx: Context, p: Params, ii_id: str) -> Obj:
    ii = ctx.store.require("invoiceitem", ii_id)
    inv = ctx.store.get("invoice", ii["invoice"])
    if inv is not None:
        if inv["status"] != "draft":
            raise InvalidRequestError("You can only delete invoice items on draft invoices.")
        inv["_lines"] = [
            lid
            for lid in inv["_lines"]
            if (
                (ctx.store.objects["line_item"][lid].get("parent") or {}).get("invoice_item_details") or {}
            ).get("invoice_item")
            != ii_id
        ]
        billing.recompute(ctx, inv)
    snapshot = ctx.render(ii)
    ctx.store.remove("invoiceitem", ii_id)
    ctx.emit("invoiceitem.deleted", snapshot)
    return {"id": ii_id, "object": "invoiceitem", "deleted": True}


@api("GET", "/v1/invoiceitems", allowed=LIST | {"customer", "invoice", "pending"})
def invoiceitem_list(ctx: Context, p: Params) -> Obj:
    customer_id, in_id, pending = p.str("customer"), p.str("invoice"), p.bool("pending")
    return list_of(
        ctx,
        "invoiceitem",
        p,
        "/v1/invoiceitems",
        lambda ii: (
            customer_id in (None, ii["customer"])
            and in_id in (None, ii["invoice"])
            and (pending is None or (ii["invoice"] is None) == pending)
        ),
    )


# ---------------------------------------------------------------------- events
@api("GET", "/v1/events", allowed=LIST | {"type", "types", "delivery_success"})
def event_list(ctx: Context, p: Params) -> Obj:
    kind, kinds = p.str("type"), p.list("types")

    def match(event: Obj) -> bool:
        if kind:
            if kind.endswith("*"):
                return event["type"].startswith(kind[:-1])
            return event["type"] == kind
        return not kinds or event["type"] in kinds

    return list_of(ctx, "event", p, "/v1/events", match)


@api("GET", "/v1/events/{evt_id}", allowed=set())
def event_retrieve(ctx: Context, p: Params, evt_id: str) -> Obj:
    return ctx.store.require("event", evt_id)


# ---------------------------------------------------------------------- webhook endpoints
def webhook_endpoint_create(
    ctx: Context,
    url: str,
    enabled_events: list[str],
    *,
    api_version: str | None = None,
    description: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Obj:
    endpoint = objects.webhook_endpoint(
        ctx.store.new_id("webhook_endpoint"), ctx.now(), url, list(enabled_events), api_version
    )
    endpoint["description"] = description
    endpoint["metadata"] = metadata or {}
    endpoint["_secret"] = "whsec_" + ctx.store.random_string(32)
    return ctx.store.add("webhook_endpoint", endpoint)


def _check_url(url: str | None) -> str:
    if not url or not url.startswith(("http://", "https://")):
        raise InvalidRequestError(f"Invalid URL: {url}", param="url")
    return url


@api(
    "POST",
    "/v1/webhook_endpoints",
    allowed={"url", "enabled_events", "api_version", "description", "metadata", "connect"},
)
def webhook_endpoint_create_api(ctx: Context, p: Params) -> Obj:
    url = _check_url(p.str("url", required=True))
    events = p.list("enabled_events")
    if not events:
        raise missing("enabled_events")
    endpoint = webhook_endpoint_create(
        ctx,
        url,
        events,
        api_version=p.str("api_version"),
        description=p.str("description"),
        metadata=p.metadata(),
    )
    data = ctx.render(endpoint)
    data["secret"] = endpoint["_secret"]
    return data


@api("GET", "/v1/webhook_endpoints/{we_id}", allowed=set())
def webhook_endpoint_retrieve(ctx: Context, p: Params, we_id: str) -> Obj:
    return ctx.store.require("webhook_endpoint", we_id)


@api(
    "POST",
    "/v1/webhook_endpoints/{we_id}",
    allowed={"url", "enabled_events", "disabled", "description", "metadata"},
)
def webhook_endpoint_update(ctx: Context, p: Params, we_id: str) -> Obj:
    endpoint = ctx.store.require("webhook_endpoint", we_id)
    if "url" in p:
        endpoint["url"] = _check_url(p.str("url"))
    if p.list("enabled_events"):
        endpoint["enabled_events"] = p.list("enabled_events")
    if "disabled" in p:
        endpoint["status"] = "disabled" if p.bool("disabled") else "enabled"
    if "description" in p:
        endpoint["description"] = p.str("description")
    endpoint["metadata"] = merge_metadata(endpoint["metadata"], p.metadata())
    return endpoint


@api("DELETE", "/v1/webhook_endpoints/{we_id}", allowed=set())
def webhook_endpoint_delete(ctx: Context, p: Params, we_id: str) -> Obj:
    ctx.store.require("webhook_endpoint", we_id)
    ctx.store.remove("webhook_endpoint", we_id)
    return {"id": we_id, "object": "webhook_endpoint", "deleted": True}


@api("GET", "/v1/webhook_endpoints", allowed=set())
def webhook_endpoint_list(ctx: Context, p: Params) -> Obj:
    return list_of(ctx, "webhook_endpoint", p, "/v1/webhook_endpoints")


__all__ = ["API_VERSION", "COMPOSERS", "EXPANDABLE_EXTRAS", "webhook_endpoint_create"]


# ---------------------------------------------------------------------- search
_CLAUSE = re.compile(
    r"""(?P<neg>-)?(?P<field>[a-z_.]+(?:\[['"](?P<key>[^'"]+)['"]\])?)\s*(?P<op>:|~|>=|<=|>|<)\s*"""
    r"""(?:'(?P<sq>[^']*)'|"(?P<dq>[^"]*)"|(?P<bare>\S+))"""
)


def _search_matches(obj: Obj, query: str) -> bool:
    """Stripe's search query language, the common part: `field:value`, `metadata['k']:'v'`,
    `~` (substring), `>`/`<` on numbers, `-` negation, clauses joined by AND or by OR."""
    joiner = " OR " if " OR " in query else " AND "
    results = []
    for text in query.split(joiner):
        match = _CLAUSE.fullmatch(text.strip())
        if match is None:
            raise InvalidRequestError(f"Invalid query: {text.strip()}", param="query")
        key = match.group("key")
        field = match.group("field").split("[", 1)[0]
        value = (
            match.group("sq") if match.group("sq") is not None else match.group("dq") or match.group("bare")
        )
        actual = (obj.get("metadata") or {}).get(key) if key is not None else obj.get(field)
        op = match.group("op")
        if op == ":":
            ok = (actual is None and value == "null") or str(actual).lower() == str(value).lower()
        elif op == "~":
            ok = actual is not None and str(value).lower() in str(actual).lower()
        else:
            try:
                number, bound = float(actual), float(value)
            except (TypeError, ValueError):
                ok = False
            else:
                ok = {">": number > bound, "<": number < bound, ">=": number >= bound, "<=": number <= bound}[
                    op
                ]
        results.append(ok != bool(match.group("neg")))
    return any(results) if joiner == " OR " else all(results)


def _search(kind: str, path: str):
    def handler(ctx: Context, p: Params) -> Obj:
        query = p.str("query", required=True) or ""
        limit = p.int("limit", 10)
        if not 1 <= limit <= 100:
            raise invalid("limit", "Invalid limit: must be between 1 and 100", "parameter_invalid_integer")
        found = [o for o in newest_first(ctx, kind) if _search_matches(public(o), query)]
        offset = int(p.str("page") or 0)
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        return {
            "object": "search_result",
            "data": page,
            "has_more": more,
            "next_page": str(offset + limit) if more else None,
            "url": path,
        }

    api("GET", path, allowed={"query", "limit", "page"})(handler)


for _kind, _path in [
    ("customer", "/v1/customers/search"),
    ("price", "/v1/prices/search"),
    ("product", "/v1/products/search"),
    ("subscription", "/v1/subscriptions/search"),
    ("invoice", "/v1/invoices/search"),
    ("payment_intent", "/v1/payment_intents/search"),
    ("charge", "/v1/charges/search"),
]:
    _search(_kind, _path)
