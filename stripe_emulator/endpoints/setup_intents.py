"""SetupIntents: `/v1/setup_intents` (confirm, cancel)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import objects, payments
from ..errors import InvalidRequestError
from ..params import Params, merge_metadata, object_param
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context

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
        object_param(ctx, "customer", customer_id, "customer")
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
        seti["customer"] = object_param(ctx, "customer", p.str("customer"), "customer")["id"]
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
        filters={"customer": customer_id, "payment_method": pm_id},
    )
