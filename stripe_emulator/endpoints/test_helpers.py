"""Test helpers: `/v1/test_helpers/test_clocks` (rules in `timeline.py`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..params import Params
from ..routing import api
from ..store import paginate
from ..timeline import advance_test_clock, check_advance, delete_test_clock, new_test_clock
from .common import Obj

if TYPE_CHECKING:
    from ..app import Context


def _clock(ctx: Context, clock_id: str) -> Obj:
    return ctx.store.require("test_clock", clock_id)


@api("POST", "/v1/test_helpers/test_clocks", allowed={"frozen_time", "name"})
def test_clock_create(ctx: Context, p: Params) -> Obj:
    frozen_time = p.int("frozen_time", required=True)
    assert frozen_time is not None
    return new_test_clock(ctx, frozen_time, p.str("name"))


@api("GET", "/v1/test_helpers/test_clocks/{clock_id}", allowed=set())
def test_clock_retrieve(ctx: Context, p: Params, clock_id: str) -> Obj:
    return _clock(ctx, clock_id)


@api("GET", "/v1/test_helpers/test_clocks", allowed=set())
def test_clock_list(ctx: Context, p: Params) -> Obj:
    items = list(reversed(ctx.store.all("test_clock")))
    return paginate(items, p, "/v1/test_helpers/test_clocks", "test_clock")


@api("POST", "/v1/test_helpers/test_clocks/{clock_id}/advance", allowed={"frozen_time"})
def test_clock_advance(ctx: Context, p: Params, clock_id: str) -> Obj:
    clock = _clock(ctx, clock_id)
    frozen_time = p.int("frozen_time", required=True)
    assert frozen_time is not None
    check_advance(ctx, clock, frozen_time)
    return advance_test_clock(ctx, clock, frozen_time)


@api("DELETE", "/v1/test_helpers/test_clocks/{clock_id}", allowed=set())
def test_clock_delete(ctx: Context, p: Params, clock_id: str) -> Obj:
    return delete_test_clock(ctx, _clock(ctx, clock_id))
