"""What every list endpoint uses: newest first, `created` and cursor pagination, `filters=`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..params import Params
from ..store import created_filter, paginate

if TYPE_CHECKING:
    from ..app import Context

Obj = dict[str, Any]


def newest_first(ctx: Context, kind: str, keep: Callable[[Obj], bool] | None = None) -> list[Obj]:
    return [o for o in reversed(ctx.store.all(kind)) if keep is None or keep(o)]


def list_of(
    ctx: Context,
    kind: str,
    p: Params,
    url: str,
    *,
    filters: Mapping[str, Any] | None = None,
    keep: Callable[[Obj], bool] | None = None,
) -> Obj:
    """A list endpoint's page, newest first, with `created[gt|gte|lt|lte]` and the cursor.

    `filters` maps an object's key to the value the request asked for (`{"customer":
    p.str("customer")}`): a `None` value does not filter, any other must equal the object's value.
    `keep` is for what a plain equality cannot say."""
    wanted = {key: value for key, value in (filters or {}).items() if value is not None}

    def matches(obj: Obj) -> bool:
        if any(obj.get(key) != value for key, value in wanted.items()):
            return False
        return keep is None or keep(obj)

    return paginate(created_filter(newest_first(ctx, kind, matches), p), p, url, kind)
