"""Search: `GET /v1/{customers,prices,products,subscriptions,invoices,payment_intents,charges}/search`."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..errors import InvalidRequestError, invalid
from ..params import Params
from ..routing import api
from ..store import public
from .common import Obj, newest_first

if TYPE_CHECKING:
    from ..app import Context

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
        page = [ctx.render(o) for o in found[offset : offset + limit]]
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
