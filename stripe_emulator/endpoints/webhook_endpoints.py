"""Webhook endpoints: `/v1/webhook_endpoints`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import InvalidRequestError, missing
from ..params import Params, merge_metadata
from ..routing import api
from ..webhooks import webhook_endpoint_create
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


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
