"""The emulator's state: every object by type and id, in creation order, as plain JSON data.

Objects are stored as dicts shaped like Stripe's. Keys that start with `_` are the emulator's
own bookkeeping (links Stripe keeps out of the object, secrets shown once) and are never served.
"""

from __future__ import annotations

import random
import string
from typing import Any

from .errors import InvalidRequestError, ResourceMissing

PREFIXES: dict[str, str] = {
    "account": "acct",
    "balance_transaction": "txn",
    "charge": "ch",
    "checkout_item": "li",
    "checkout_session": "cs_test",
    "customer": "cus",
    "dispute": "dp",
    "event": "evt",
    "invoice": "in",
    "invoice_payment": "inpay",
    "invoiceitem": "ii",
    "line_item": "il",
    "meter": "mtr",
    "meter_event": "mev",  # stored by `identifier`; the prefix is only for generated identifiers
    "payment_intent": "pi",
    "payment_method": "pm",
    "payout": "po",
    "portal_configuration": "bpc",
    "portal_session": "bps",
    "price": "price",
    "product": "prod",
    "refund": "re",
    "setup_intent": "seti",
    "subscription": "sub",
    "subscription_item": "si",
    "test_clock": "clock",
    "webhook_endpoint": "we",
}
TYPE_BY_PREFIX = {prefix: kind for kind, prefix in PREFIXES.items()}
TYPE_BY_PREFIX["cs"] = "checkout_session"
# The name Stripe uses in "No such ..." messages.
HUMAN_NAMES = {
    "invoiceitem": "invoiceitem",
    "payment_method": "PaymentMethod",
    "payment_intent": "payment_intent",
    "setup_intent": "setupintent",
    "webhook_endpoint": "webhook endpoint",
    "subscription_item": "subscription item",
    "balance_transaction": "balance transaction",
    "payout": "payout",
    "checkout_session": "checkout.session",
    "portal_configuration": "billing_portal.configuration",
    "portal_session": "billing_portal.session",
    "meter": "billing.meter",
    "test_clock": "test_helpers.test_clock",
}
_ALPHABET = string.ascii_letters + string.digits


class Store:
    """Objects by type; `seq` orders them (lists answer newest first)."""

    def __init__(self, seed: int | None = None):
        # Ids and secrets of a test-mode emulator; a seed makes a run reproducible.
        self.rng = random.Random(seed)  # noqa: S311
        self.objects: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in PREFIXES}
        self.deleted: dict[str, str] = {}  # id -> type, for `{"deleted": true}` answers
        self.seq = 0
        self.extra: dict[str, Any] = {}  # counters and settings that belong to no object

    # ------------------------------------------------------------------ ids
    def random_string(self, length: int) -> str:
        return "".join(self.rng.choice(_ALPHABET) for _ in range(length))

    def new_id(self, kind: str, length: int = 24) -> str:
        prefix = PREFIXES[kind]
        while True:
            candidate = f"{prefix}_1{self.random_string(length - 1)}"
            if candidate not in self.objects[kind]:
                return candidate

    # ------------------------------------------------------------------ objects
    def add(self, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        obj["_seq"] = self.seq
        self.objects[kind][obj["id"]] = obj
        return obj

    def get(self, kind: str, object_id: str | None) -> dict[str, Any] | None:
        if not object_id:
            return None
        return self.objects[kind].get(object_id)

    def require(self, kind: str, object_id: str | None, param: str | None = "id") -> dict[str, Any]:
        obj = self.get(kind, object_id)
        if obj is None:
            raise ResourceMissing(HUMAN_NAMES.get(kind, kind), object_id or "", param=param)
        return obj

    def remove(self, kind: str, object_id: str) -> None:
        self.objects[kind].pop(object_id, None)
        self.deleted[object_id] = kind

    def all(self, kind: str) -> list[dict[str, Any]]:
        return list(self.objects[kind].values())

    def find(self, object_id: str) -> tuple[str, dict[str, Any]] | None:
        """The object behind an id, whatever its type: the type its prefix names first, then every
        type (a product made with a custom id such as `plan_starter`). Meter events, stored by their
        free-form `identifier`, are not looked up here."""
        kind = TYPE_BY_PREFIX.get(object_id.split("_", 1)[0])
        if kind is not None:
            obj = self.objects[kind].get(object_id)
            if obj is not None:
                return kind, obj
        for other, objects in self.objects.items():
            if other != kind and other != "meter_event" and object_id in objects:
                return other, objects[object_id]
        return None

    def count(self, kind: str) -> int:
        return len(self.objects[kind])

    # ------------------------------------------------------------------ persistence
    def to_json(self) -> dict[str, Any]:
        return {
            "objects": self.objects,
            "deleted": self.deleted,
            "seq": self.seq,
            "extra": self.extra,
            "rng": _encode_rng(self.rng.getstate()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Store:
        store = cls()
        for kind, objects in data.get("objects", {}).items():
            store.objects.setdefault(kind, {}).update(objects)
        store.deleted = dict(data.get("deleted", {}))
        store.seq = int(data.get("seq", 0))
        store.extra = dict(data.get("extra", {}))
        if data.get("rng"):
            store.rng.setstate(_decode_rng(data["rng"]))
        return store


def _encode_rng(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _decode_rng(data: list) -> tuple:
    version, internal, gauss = data
    return (version, tuple(internal), gauss)


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """A deep copy without the emulator's `_` keys."""
    return {k: clone(v) for k, v in obj.items() if not k.startswith("_")}


def clone(value: Any) -> Any:
    """A deep copy of JSON data (several times faster than `copy.deepcopy`)."""
    if isinstance(value, dict):
        return {k: clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) for v in value]
    return value


def paginate(items: list[dict[str, Any]], params: Any, url: str, kind: str) -> dict[str, Any]:
    """Stripe's cursor pagination over `items`, which are already newest first.

    `limit` 1..100 (default 10), `starting_after` / `ending_before` name an object of the list.
    """
    limit = params.int("limit", 10)
    if limit < 1 or limit > 100:
        raise InvalidRequestError(
            "Invalid limit: must be between 1 and 100", code="parameter_invalid_integer", param="limit"
        )
    starting_after = params.str("starting_after")
    ending_before = params.str("ending_before")
    if starting_after and ending_before:
        raise InvalidRequestError(
            "You may only specify one of these parameters: ending_before, starting_after.",
            param="ending_before",
        )
    ids = [item["id"] for item in items]
    if starting_after:
        if starting_after not in ids:
            raise ResourceMissing(HUMAN_NAMES.get(kind, kind), starting_after, param="starting_after")
        start = ids.index(starting_after) + 1
        page = items[start : start + limit]
        has_more = start + limit < len(items)
    elif ending_before:
        if ending_before not in ids:
            raise ResourceMissing(HUMAN_NAMES.get(kind, kind), ending_before, param="ending_before")
        end = ids.index(ending_before)
        start = max(0, end - limit)
        page = items[start:end]
        has_more = start > 0
    else:
        page = items[:limit]
        has_more = len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}


def created_filter(items: list[dict[str, Any]], params: Any, key: str = "created") -> list[dict[str, Any]]:
    """`created=<ts>` or `created[gt|gte|lt|lte]=<ts>` on list endpoints."""
    if key not in params:
        return items
    raw = params.raw(key)
    if not isinstance(raw, dict):
        exact = params.int(key)
        return [i for i in items if i.get(key) == exact]
    bounds = params.dict(key)
    checks = {
        "gt": lambda v, b: v > b,
        "gte": lambda v, b: v >= b,
        "lt": lambda v, b: v < b,
        "lte": lambda v, b: v <= b,
    }
    out = items
    for op, check in checks.items():
        bound = bounds.int(op)
        if bound is not None:
            out = [i for i in out if i.get(key) is not None and check(i[key], bound)]
    return out
