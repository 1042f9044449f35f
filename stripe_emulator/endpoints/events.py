"""Events: `/v1/events`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..params import Params
from ..routing import LIST, api
from .common import Obj, list_of

if TYPE_CHECKING:
    from ..app import Context


@api("GET", "/v1/events", allowed=LIST | {"type", "types", "delivery_success"})
def event_list(ctx: Context, p: Params) -> Obj:
    kind, kinds = p.str("type"), p.list("types")

    def match(event: Obj) -> bool:
        if kind:
            if kind.endswith("*"):
                return event["type"].startswith(kind[:-1])
            return event["type"] == kind
        return not kinds or event["type"] in kinds

    return list_of(ctx, "event", p, "/v1/events", keep=match)


@api("GET", "/v1/events/{evt_id}", allowed=set())
def event_retrieve(ctx: Context, p: Params, evt_id: str) -> Obj:
    return ctx.store.require("event", evt_id)
