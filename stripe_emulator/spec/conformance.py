"""Checks what the emulator serves against Stripe's types (`responses.json`).

`violations(payload)` lists, for a response body or a webhook event, every place where it differs
from the stripe-python type of its object: a key Stripe declares and always serves that is missing
(stripe-python's types do not say which keys may be absent; a key counts as always served when
Stripe's own example object carries it, see `generate._mark_always_present`; keys that Stripe serves
only when expanded, `render.EXPANDABLE_EXTRAS`, may be absent), a key Stripe does not declare,
a `null` where the type is not nullable, a value of the wrong type or outside the enum. Objects
nested in untyped places (an event's `data.object`, `previous_attributes`) are checked as their own
type. Deleted-object stubs (`{"id", "object", "deleted": true}`) are checked for those keys only.

`Recorder` collects the violations of everything an emulator serves while it is installed (the test
suite turns it on for the whole session: `tests/conftest.py`).
"""

from __future__ import annotations

import re
import threading
from typing import Any

from . import responses_table

_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
# A page of a list or of a search: the same everywhere, items checked as their own type.
LIST_SHAPES = {
    "list": {"object", "data", "has_more", "url"},
    "search_result": {"object", "data", "has_more", "next_page", "url"},
}
LIST_EXTRA = {"total_count"}  # Stripe sends it on embedded lists; stripe-python does not declare it


def _includable() -> set[tuple[str | None, str]]:
    from ..render import EXPANDABLE_EXTRAS

    return set(EXPANDABLE_EXTRAS)


def violations(payload: Any, where: str = "") -> list[str]:
    table = responses_table()
    out: list[str] = []
    _value(payload, {"t": "any"}, where or "$", table, out)
    return out


def _object_schema(data: dict[str, Any], table: dict[str, Any]) -> dict[str, Any] | None:
    name = data.get("object")
    return table["objects"].get(name) if isinstance(name, str) else None


def _value(value: Any, node: dict[str, Any], where: str, table: dict[str, Any], out: list[str]) -> None:
    defs = table["defs"]
    nullable = bool(node.get("null"))
    while node.get("t") == "ref":
        node = defs[node["r"]]
    if value is None:
        if not (nullable or node.get("null")) and node["t"] != "any":
            out.append(f"{where}: null, but the type is not nullable")
        return
    kind = node["t"]
    if kind == "union":
        best: list[str] | None = None
        for option in node["of"]:
            found: list[str] = []
            _value(value, {**option, "null": nullable or node.get("null")}, where, table, found)
            if not found:
                return
            if best is None or len(found) < len(best):
                best = found
        out.extend(best or [f"{where}: matches no alternative"])
    elif kind in ("any", "map"):
        if kind == "map" and not isinstance(value, dict):
            out.append(f"{where}: expected a hash, got {type(value).__name__}")
            return
        _untyped(value, where, table, out)
    elif kind == "obj":
        if not isinstance(value, dict):
            out.append(f"{where}: expected an object, got {type(value).__name__}")
            return
        _fields(value, node, where, table, out)
    elif kind == "listobj":
        if not isinstance(value, dict) or value.get("object") != "list":
            out.append(f"{where}: expected a list object")
            return
        extra = set(value) - {"object", "data", "has_more", "url"} - LIST_EXTRA
        missing = {"object", "data", "has_more", "url"} - set(value)
        for key in sorted(extra):
            out.append(f"{where}.{key}: not declared by Stripe's type")
        for key in sorted(missing):
            out.append(f"{where}.{key}: missing")
        for i, item in enumerate(value.get("data") or []):
            _value(item, node["of"], f"{where}.data[{i}]", table, out)
    elif kind == "list":
        if not isinstance(value, list):
            out.append(f"{where}: expected an array, got {type(value).__name__}")
            return
        for i, item in enumerate(value):
            _value(item, node["of"], f"{where}[{i}]", table, out)
    elif kind == "enum":
        if value not in node["v"]:
            out.append(f"{where}: {value!r} is not one of {node['v']}")
    elif kind == "str":
        if not isinstance(value, str):
            out.append(f"{where}: expected a string, got {type(value).__name__}")
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            out.append(f"{where}: expected an integer, got {type(value).__name__}")
    elif kind == "num":
        if not isinstance(value, int | float) or isinstance(value, bool):
            out.append(f"{where}: expected a number, got {type(value).__name__}")
    elif kind == "dec":
        if not isinstance(value, str) or not _DECIMAL.match(value):
            out.append(f"{where}: expected a decimal string, got {value!r}")
    elif kind == "bool" and not isinstance(value, bool):
        out.append(f"{where}: expected a boolean, got {type(value).__name__}")


def _untyped(value: Any, where: str, table: dict[str, Any], out: list[str]) -> None:
    """A value whose type Stripe leaves open: Stripe objects inside are checked as their type."""
    if isinstance(value, dict):
        schema = _object_schema(value, table)
        if schema is not None:
            _value(value, schema, where, table, out)
        elif value.get("object") in LIST_SHAPES and isinstance(value.get("data"), list):
            keys = LIST_SHAPES[value["object"]]
            for key in sorted(set(value) - keys - LIST_EXTRA):
                out.append(f"{where}.{key}: not declared by Stripe's type")
            for key in sorted(keys - set(value)):
                out.append(f"{where}.{key}: missing")
            for i, item in enumerate(value["data"]):
                _untyped(item, f"{where}.data[{i}]", table, out)
        elif "object" not in value:
            for key, item in value.items():
                if isinstance(item, dict | list):
                    _untyped(item, f"{where}.{key}", table, out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _untyped(item, f"{where}[{i}]", table, out)


def _fields(
    value: dict[str, Any], node: dict[str, Any], where: str, table: dict[str, Any], out: list[str]
) -> None:
    fields = node["f"]
    if value.get("deleted") is True:
        for key in value:
            if key not in fields:
                out.append(f"{where}.{key}: not declared by Stripe's type")
        return
    object_name = value.get("object") if isinstance(value.get("object"), str) else None
    includable = _includable()
    for key in sorted(set(node.get("must", [])) - set(value)):
        if (object_name, key) in includable or (None, key) in includable:
            continue
        out.append(f"{where}.{key}: missing (Stripe's type declares it)")
    for key in sorted(set(value) - set(fields)):
        out.append(f"{where}.{key}: not declared by Stripe's type")
    for key, item in value.items():
        if key in fields:
            _value(item, fields[key], f"{where}.{key}", table, out)


class Recorder:
    """Collects violations of every response and webhook payload; each distinct one once, with a
    count and the first request that showed it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.found: dict[str, dict[str, Any]] = {}
        self.checked = 0

    def check(self, source: str, payload: Any) -> None:
        found = violations(payload)
        with self.lock:
            self.checked += 1
            for violation in found:
                entry = self.found.setdefault(violation, {"count": 0, "first": source})
                entry["count"] += 1

    def report(self, limit: int = 60) -> str:
        lines = [f"{len(self.found)} distinct violations in {self.checked} payloads:"]
        ordered = sorted(self.found.items(), key=lambda kv: -kv[1]["count"])
        for violation, entry in ordered[:limit]:
            lines.append(f"  {violation}  (x{entry['count']}, first: {entry['first']})")
        return "\n".join(lines)


RECORDER: Recorder | None = None


def enable() -> Recorder:
    """Every emulator from now on reports what it serves to one recorder (`RECORDER`)."""
    global RECORDER
    if RECORDER is None:
        RECORDER = Recorder()
    return RECORDER


def observe(source: str, payload: Any) -> None:
    if RECORDER is not None:
        RECORDER.check(source, payload)
