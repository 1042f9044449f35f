"""Customer portal: `/v1/billing_portal/sessions` and `/configurations` (rules in `portal.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import objects
from ..errors import InvalidRequestError, missing
from ..params import Params, object_param
from ..portal import apply_configuration, default_configuration, page_url
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


def _flow(ctx: Context, p: Params, customer_id: str) -> Obj | None:
    if "flow_data" not in p:
        return None
    data = p.dict("flow_data")
    kind = data.enum(
        "type",
        [
            "payment_method_update",
            "subscription_cancel",
            "subscription_update",
            "subscription_update_confirm",
        ],
    )
    if kind is None:
        raise missing("flow_data[type]")
    after = data.dict("after_completion")
    after_type = after.enum("type", ["hosted_confirmation", "portal_homepage", "redirect"], "portal_homepage")
    flow: Obj = {
        "after_completion": {
            "hosted_confirmation": {"custom_message": after.dict("hosted_confirmation").str("custom_message")}
            if after_type == "hosted_confirmation"
            else None,
            "redirect": {"return_url": after.dict("redirect").str("return_url", required=True)}
            if after_type == "redirect"
            else None,
            "type": after_type,
        },
        "subscription_cancel": None,
        "subscription_update": None,
        "subscription_update_confirm": None,
        "type": kind,
    }
    if kind != "payment_method_update":
        section = data.dict(kind)
        sub_id = section.str("subscription", required=True)
        sub = object_param(ctx, "subscription", sub_id, f"flow_data[{kind}][subscription]")
        if sub["customer"] != customer_id:
            raise InvalidRequestError(
                "The subscription does not belong to this customer.", param=f"flow_data[{kind}][subscription]"
            )
        entry: Obj = {"subscription": sub_id}
        if kind == "subscription_cancel":
            entry["retention"] = None
        if kind == "subscription_update_confirm":
            entry["discounts"] = None
            entry["items"] = [
                {"id": item.str("id"), "price": item.str("price"), "quantity": item.int("quantity")}
                for item in section.list_of_dicts("items")
            ]
        flow[kind] = entry
    return flow


@api(
    "POST",
    "/v1/billing_portal/sessions",
    allowed={
        "customer",
        "return_url",
        "configuration",
        "flow_data",
        "locale",
        "on_behalf_of",
        "customer_account",
    },
)
def portal_session_create(ctx: Context, p: Params) -> Obj:
    customer = object_param(ctx, "customer", p.str("customer", required=True), "customer")
    if p.str("configuration"):
        config = object_param(ctx, "portal_configuration", p.str("configuration"), "configuration")
    else:
        config = default_configuration(ctx)
    return_url = p.str("return_url") or config["default_return_url"]
    session = objects.portal_session(
        ctx.store.new_id("portal_session", 24),
        ctx.now(customer),
        customer["id"],
        config["id"],
        return_url,
        "",
    )
    session["url"] = page_url(ctx.base_url, session["id"])
    session["locale"] = p.str("locale")
    session["flow"] = _flow(ctx, p, customer["id"])
    ctx.store.add("portal_session", session)
    ctx.emit("billing_portal.session.created", session)
    return session


CONFIG_FIELDS = {
    "business_profile",
    "default_return_url",
    "features",
    "login_page",
    "metadata",
    "name",
    "active",
}


@api("POST", "/v1/billing_portal/configurations", allowed=CONFIG_FIELDS)
def portal_configuration_create(ctx: Context, p: Params) -> Obj:
    default_configuration(ctx)  # the account's default exists first
    config = objects.portal_configuration(ctx.store.new_id("portal_configuration", 24), ctx.now())
    config["is_default"] = False
    config["name"] = p.str("name")
    apply_configuration(config, p)
    ctx.store.add("portal_configuration", config)
    ctx.emit("billing_portal.configuration.created", config)
    return config


@api("GET", "/v1/billing_portal/configurations/{config_id}", allowed=set())
def portal_configuration_retrieve(ctx: Context, p: Params, config_id: str) -> Obj:
    return ctx.store.require("portal_configuration", config_id)


@api("POST", "/v1/billing_portal/configurations/{config_id}", allowed=CONFIG_FIELDS)
def portal_configuration_update(ctx: Context, p: Params, config_id: str) -> Obj:
    config = ctx.store.require("portal_configuration", config_id)
    apply_configuration(config, p)
    if "name" in p:
        config["name"] = p.str("name")
    config["updated"] = ctx.now()
    ctx.emit("billing_portal.configuration.updated", config)
    return config


@api("GET", "/v1/billing_portal/configurations", allowed=LIST | {"active", "is_default"})
def portal_configuration_list(ctx: Context, p: Params) -> Obj:
    default_configuration(ctx)
    active, is_default = p.bool("active"), p.bool("is_default")
    return list_of(
        ctx,
        "portal_configuration",
        p,
        "/v1/billing_portal/configurations",
        filters={"active": active, "is_default": is_default},
    )
