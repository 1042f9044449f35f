"""Presentation: an object as the API serves it, and `expand[]`.

The store keeps objects with internal keys (`_seq`, `_items`, `_lines`, ...); `render()` returns the
public keys plus the parts Stripe composes from other objects (a subscription's `items`, an
invoice's first ten `lines`, a charge's `refunds`, ...). `present()` renders an endpoint's result and
applies `expand[]`, including the keys that appear only when expanded (`EXPANDABLE_EXTRAS`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import objects
from .errors import InvalidRequestError
from .store import clone, public

if TYPE_CHECKING:
    from .app import Emulator

Obj = dict[str, Any]


def _compose_subscription(emu: Emulator, obj: Obj, data: Obj) -> None:
    items = [
        emu.render(emu.store.objects["subscription_item"][i])
        for i in obj["_items"]
        if i in emu.store.objects["subscription_item"]
    ]
    data["items"] = {
        "object": "list",
        "data": items,
        "has_more": False,
        "total_count": len(items),
        "url": f"/v1/subscription_items?subscription={obj['id']}",
    }


def _compose_subscription_item(emu: Emulator, obj: Obj, data: Obj) -> None:
    price = emu.store.get("price", obj["price"])
    if price is not None:
        data["price"] = emu.render(price)
        data["plan"] = objects.plan_from_price(price)


def _compose_invoice(emu: Emulator, obj: Obj, data: Obj) -> None:
    lines = [emu.store.objects["line_item"][i] for i in obj["_lines"] if i in emu.store.objects["line_item"]]
    data["lines"] = {
        "object": "list",
        "data": [public(line) for line in lines[:10]],
        "has_more": len(lines) > 10,
        "total_count": len(lines),
        "url": f"/v1/invoices/{obj['id']}/lines",
    }


def _compose_charge(emu: Emulator, obj: Obj, data: Obj) -> None:
    refunds = [public(r) for r in reversed(emu.store.all("refund")) if r["charge"] == obj["id"]]
    data["refunds"] = {
        "object": "list",
        "data": refunds,
        "has_more": False,
        "total_count": len(refunds),
        "url": f"/v1/charges/{obj['id']}/refunds",
    }


def _compose_checkout_item(emu: Emulator, obj: Obj, data: Obj) -> None:
    price = emu.store.get("price", obj["price"])
    if price is not None:
        data["price"] = emu.render(price)


def _checkout_line_items(emu: Emulator, data: Obj) -> Obj:
    session = emu.store.get("checkout_session", data["id"])
    items = [emu.store.objects["checkout_item"].get(i) for i in (session or {}).get("_items", [])]
    return {
        "object": "list",
        "data": [emu.render(i) for i in items if i is not None],
        "has_more": False,
        "url": f"/v1/checkout/sessions/{data['id']}/line_items",
    }


COMPOSERS = {
    "subscription": _compose_subscription,
    "subscription_item": _compose_subscription_item,
    "invoice": _compose_invoice,
    "charge": _compose_charge,
    "item": _compose_checkout_item,
}


def _invoice_payments(emu: Emulator, data: Obj) -> Obj:
    inv = emu.store.get("invoice", data["id"])
    ids = inv.get("_payments", []) if inv else []
    return objects.list_object(
        f"/v1/invoice_payments?invoice={data['id']}",
        [public(emu.store.objects["invoice_payment"][i]) for i in ids],
    )


def _invoice_confirmation_secret(emu: Emulator, data: Obj) -> Obj | None:
    inv = emu.store.get("invoice", data["id"])
    pi = emu.store.get("payment_intent", (inv or {}).get("_payment_intent"))
    return {"client_secret": pi["client_secret"], "type": "payment_intent"} if pi else None


def _customer_subscriptions(emu: Emulator, data: Obj) -> Obj:
    subs = [emu.render(s) for s in reversed(emu.store.all("subscription")) if s["customer"] == data["id"]]
    return objects.list_object(f"/v1/customers/{data['id']}/subscriptions", subs)


def _price_currency_options(emu: Emulator, data: Obj) -> Obj:
    return {
        data["currency"]: {
            "custom_unit_amount": data["custom_unit_amount"],
            "tax_behavior": data["tax_behavior"],
            "unit_amount": data["unit_amount"],
            "unit_amount_decimal": data["unit_amount_decimal"],
        }
    }


# Keys that appear only when expanded (Stripe's "includable" fields).
EXPANDABLE_EXTRAS = {
    ("invoice", "payments"): _invoice_payments,
    ("invoice", "confirmation_secret"): _invoice_confirmation_secret,
    ("customer", "sources"): lambda emu, data: objects.list_object(f"/v1/customers/{data['id']}/sources"),
    ("customer", "tax_ids"): lambda emu, data: objects.list_object(f"/v1/customers/{data['id']}/tax_ids"),
    ("customer", "subscriptions"): _customer_subscriptions,
    ("price", "currency_options"): _price_currency_options,
    ("price", "tiers"): lambda emu, data: None,
    ("checkout.session", "line_items"): _checkout_line_items,
    (None, "breakdown"): lambda emu, data: {"discounts": [], "taxes": []},
    ("item", "discounts"): lambda emu, data: [],
    ("item", "taxes"): lambda emu, data: [],
}


def render(emu: Emulator, obj: Obj) -> Obj:
    """The object as the API serves it: public keys plus the parts composed from other objects."""
    data = public(obj)
    composer = COMPOSERS.get(obj.get("object", ""))
    if composer is not None:
        composer(emu, obj, data)
    return data


def present(emu: Emulator, result: Any, expand: list[str]) -> Any:
    """An endpoint's result as the response body: stored objects rendered, `expand[]` applied."""
    if isinstance(result, dict) and result.get("object") == "list" and isinstance(result.get("data"), list):
        data = {**result, "data": [render(emu, i) if "_seq" in i else i for i in result["data"]]}
    elif isinstance(result, dict) and "_seq" in result:
        data = render(emu, result)
    else:
        data = clone(result)
    for path in expand:
        if not isinstance(path, str) or not path:
            raise InvalidRequestError("Invalid array", param="expand")
        data = _expand(emu, data, path.split("."), path)
    return data


def _expand(emu: Emulator, node: Any, parts: list[str], full: str) -> Any:
    if not parts or node is None:
        return node
    key, rest = parts[0], parts[1:]
    if isinstance(node, dict) and node.get("object") == "list" and key == "data":
        node["data"] = [_expand(emu, item, rest, full) for item in node["data"]]
        return node
    if not isinstance(node, dict):
        raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
    if node.get("deleted") is True:
        return node  # a deleted object's stub has nothing to expand
    if key not in node:
        extra = EXPANDABLE_EXTRAS.get((node.get("object"), key))
        if extra is None:
            raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
        node[key] = extra(emu, node)
    value = node[key]
    if isinstance(value, str):
        value = _expand_id(emu, value, full)
    elif isinstance(value, list):
        value = [_expand_id(emu, v, full) if isinstance(v, str) else v for v in value]
        node[key] = [_expand(emu, v, rest, full) for v in value]
        return node
    node[key] = _expand(emu, value, rest, full)
    return node


def _expand_id(emu: Emulator, object_id: str, full: str) -> Obj:
    if object_id == emu.account["id"]:
        return clone(emu.account)
    found = emu.store.find(object_id)
    if found is None:
        raise InvalidRequestError(f"This property cannot be expanded ({full}).", param="expand")
    return render(emu, found[1])
