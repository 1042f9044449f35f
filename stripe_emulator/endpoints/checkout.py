"""Checkout Sessions: `/v1/checkout/sessions` (rules in `checkout.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..checkout import SESSION_FIELDS, create_session, expire_session, items_of
from ..params import Params, merge_metadata
from ..routing import LIST, api
from ..store import paginate
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


def _session(ctx: Context, session_id: str) -> Obj:
    return ctx.store.require("checkout_session", session_id)


@api("POST", "/v1/checkout/sessions", allowed=SESSION_FIELDS)
def checkout_session_create(ctx: Context, p: Params) -> Obj:
    return create_session(ctx, p)


@api("GET", "/v1/checkout/sessions/{session_id}", allowed=set())
def checkout_session_retrieve(ctx: Context, p: Params, session_id: str) -> Obj:
    return _session(ctx, session_id)


@api(
    "POST",
    "/v1/checkout/sessions/{session_id}",
    allowed={"metadata", "collected_information", "shipping_options"},
)
def checkout_session_update(ctx: Context, p: Params, session_id: str) -> Obj:
    session = _session(ctx, session_id)
    session["metadata"] = merge_metadata(session["metadata"], p.metadata())
    return session


@api("POST", "/v1/checkout/sessions/{session_id}/expire", allowed=set())
def checkout_session_expire(ctx: Context, p: Params, session_id: str) -> Obj:
    return expire_session(ctx, _session(ctx, session_id))


@api("GET", "/v1/checkout/sessions/{session_id}/line_items", allowed=set())
def checkout_session_line_items(ctx: Context, p: Params, session_id: str) -> Obj:
    session = _session(ctx, session_id)
    return paginate(
        items_of(ctx.emulator, session), p, f"/v1/checkout/sessions/{session_id}/line_items", "checkout_item"
    )


@api(
    "GET",
    "/v1/checkout/sessions",
    allowed=LIST
    | {"customer", "customer_details", "payment_intent", "payment_link", "status", "subscription"},
)
def checkout_session_list(ctx: Context, p: Params) -> Obj:
    customer_id, pi_id, sub_id = p.str("customer"), p.str("payment_intent"), p.str("subscription")
    status = p.enum("status", ["open", "complete", "expired"])
    email = p.dict("customer_details").str("email")

    def keep(s: Obj) -> bool:
        return (
            customer_id in (None, s["customer"])
            and pi_id in (None, s["payment_intent"])
            and sub_id in (None, s["subscription"])
            and status in (None, s["status"])
            and email in (None, (s["customer_details"] or {}).get("email"))
        )

    return list_of(ctx, "checkout_session", p, "/v1/checkout/sessions", keep=keep)
