"""PaymentIntents: `/v1/payment_intents` (confirm, capture, cancel)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import invoicing, objects, payments
from ..errors import InvalidRequestError
from ..params import Params, merge_metadata, object_param
from ..routing import LIST, api
from ..store import public
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

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
            f"Amount must be at least {invoicing.money(minimum, currency)} {currency}",
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
    customer = object_param(ctx, "customer", customer_id, "customer") if customer_id else None
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
        pi["customer"] = object_param(ctx, "customer", p.str("customer"), "customer")["id"]
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
    ctx.emit_updated("payment_intent.updated", pi, before)
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
    return list_of(ctx, "payment_intent", p, "/v1/payment_intents", filters={"customer": customer_id})
