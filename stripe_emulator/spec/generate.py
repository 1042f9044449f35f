"""Generates `requests.json` and `responses.json` from stripe-python's generated types.

stripe-python (pinned in pyproject.toml) is generated from Stripe's OpenAPI spec for one API
version. Its request-parameter TypedDicts (`stripe/params/...`) and its resource classes
(`stripe/_subscription.py`, ...) are the source of truth for what Stripe accepts and what it
serves. This script turns them into two JSON tables that the emulator reads at start, so the
emulator's runtime does not import stripe-python:

- `requests.json`: for every endpoint the emulator routes, the parameter tree Stripe accepts there
  (names, types, enums, required keys), keyed by `"METHOD /v1/path/{}"`.
- `responses.json`: for every object type, the keys Stripe serves, with types, nullability and
  enums (used by the conformance check, `stripe_emulator.spec.conformance`).

Run it after upgrading stripe-python: `.venv/bin/python -m stripe_emulator.spec.generate`.
`tests/stripe_emulator/test_spec.py` fails while the committed tables differ from a fresh run.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import json
import pkgutil
import re
import sys
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NotRequired, Required

import stripe
from stripe._expandable_field import ExpandableField
from stripe._list_object import ListObject
from stripe._object_classes import OBJECT_CLASSES
from stripe._request_options import RequestOptions
from stripe._search_result_object import SearchResultObject
from stripe._stripe_object import StripeObject, UntypedStripeObject
from typing_extensions import is_typeddict

HERE = Path(__file__).parent
OPTIONS = set(RequestOptions.__annotations__)
_NAMES = {
    "Literal": Literal,
    "List": typing.List,  # noqa: UP006
    "Dict": typing.Dict,  # noqa: UP006
    "Union": typing.Union,
    "Optional": typing.Optional,
    "Any": typing.Any,
    "NotRequired": NotRequired,
    "Required": Required,
    "Decimal": Decimal,
    "UntypedStripeObject": UntypedStripeObject,
    "ListObject": ListObject,
    "SearchResultObject": SearchResultObject,
    "ExpandableField": ExpandableField,
}


class Builder:
    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}
        self._imports: dict[str, dict[str, Any]] = {}

    # -------------------------------------------------------------- name resolution
    def _module_names(self, module: types.ModuleType) -> dict[str, Any]:
        """The module's globals plus what it imports only under TYPE_CHECKING."""
        if module.__name__ in self._imports:
            return self._imports[module.__name__]
        names = dict(_NAMES)
        names.update(vars(module))
        try:
            tree = ast.parse(inspect.getsource(module))
        except (OSError, TypeError):
            tree = ast.Module(body=[], type_ignores=[])
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("stripe"):
                for alias in node.names:
                    local = alias.asname or alias.name
                    if local in names:
                        continue
                    with contextlib.suppress(ImportError, AttributeError):
                        names[local] = getattr(importlib.import_module(node.module), alias.name)
        self._imports[module.__name__] = names
        return names

    def _eval(self, text: str, owner: type) -> Any:
        module = sys.modules[owner.__module__]
        scope = dict(self._module_names(module))
        # nested classes of the owner and of its enclosing classes
        parts = owner.__qualname__.split(".")
        obj: Any = module
        for part in parts:
            obj = getattr(obj, part)
            scope.update({k: v for k, v in vars(obj).items() if inspect.isclass(v)})
        return eval(text, scope)  # noqa: S307  (stripe-python's own annotations)

    # -------------------------------------------------------------- conversion
    def node(self, t: Any, owner: type) -> dict[str, Any]:
        if isinstance(t, str):
            t = self._eval(t, owner)
        if isinstance(t, typing.ForwardRef):
            t = self._eval(t.__forward_arg__, owner)
        origin = typing.get_origin(t)
        args = typing.get_args(t)
        if origin in (NotRequired, Required):
            return self.node(args[0], owner)
        if origin is typing.Union or origin is types.UnionType:
            nullable = type(None) in args
            options = [self.node(a, owner) for a in args if a is not type(None)]
            node = self._merge(options)
            if nullable:
                node = {**node, "null": True}
            return node
        if origin is Literal:
            return {"t": "enum", "v": list(args)}
        if origin in (list, typing.List):  # noqa: UP006
            return {"t": "list", "of": self.node(args[0], owner) if args else {"t": "any"}}
        if origin in (dict, typing.Dict):  # noqa: UP006
            return {"t": "map"}
        if origin is UntypedStripeObject or t is UntypedStripeObject:
            return {"t": "map"}
        if origin is ListObject or t is ListObject:
            return {"t": "listobj", "of": self.node(args[0], owner) if args else {"t": "any"}}
        if origin is SearchResultObject:
            return {"t": "any"}
        if t is str:
            return {"t": "str"}
        if t is bool:
            return {"t": "bool"}
        if t is int:
            return {"t": "int"}
        if t is float:
            return {"t": "num"}
        if t is Decimal:
            return {"t": "dec"}  # a decimal string on the wire, both ways
        if t is typing.Any or t is object:
            return {"t": "any"}
        if inspect.isclass(t) and is_typeddict(t):
            return self._typeddict(t)
        if inspect.isclass(t) and issubclass(t, StripeObject):
            return self._stripe_object(t)
        return {"t": "any"}

    @staticmethod
    def _merge(options: list[dict[str, Any]]) -> dict[str, Any]:
        """`Literal[...] | str` stays an enum (Stripe checks it; the `str` is for forward
        compatibility of the client); `Literal[''] | X` means X or an empty string (unset)."""
        enums = [o for o in options if o["t"] == "enum"]
        others = [o for o in options if o["t"] != "enum"]
        empty = any("" in o["v"] for o in enums)
        values = [v for o in enums for v in o["v"] if v != ""]
        if values:
            others = [o for o in others if o["t"] != "str"]
            others.insert(0, {"t": "enum", "v": values})
        if not others:
            node: dict[str, Any] = {"t": "enum", "v": []}
        elif len(others) == 1:
            node = dict(others[0])
        else:
            node = {"t": "union", "of": others}
        if empty:
            node["empty"] = True
        return node

    def _typeddict(self, cls: type) -> dict[str, Any]:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key not in self.defs:
            self.defs[key] = None
            hints = {k: v for k, v in cls.__annotations__.items() if k not in OPTIONS}
            fields = {name: self.node(t, cls) for name, t in hints.items()}
            required = sorted(k for k in cls.__required_keys__ if k not in OPTIONS)
            self.defs[key] = {"t": "obj", "f": fields, "req": required}
        return {"t": "ref", "r": key}

    def _stripe_object(self, cls: type) -> dict[str, Any]:
        key = f"{cls.__module__}.{cls.__qualname__}"
        if key not in self.defs:
            self.defs[key] = None
            fields = {}
            for name, t in _own_annotations(cls).items():
                if name.startswith("_") or typing.get_origin(t) is typing.ClassVar:
                    continue
                fields[name] = self.node(t, cls)
            self.defs[key] = {"t": "obj", "f": fields}
        return {"t": "ref", "r": key}


def _own_annotations(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for base in reversed(cls.__mro__):
        if base is StripeObject or not issubclass(base, StripeObject) or base is ListObject:
            continue
        out.update(getattr(base, "__annotations__", {}))
    return out


# ---------------------------------------------------------------------- requests
_REQUEST = re.compile(r'_request\(\s*"(\w+)",\s*"([^"]+)"', re.S)


def service_endpoints() -> dict[str, type]:
    """`"POST /v1/subscriptions/{}"` -> its params TypedDict, from stripe-python's services."""
    found: dict[str, type] = {}
    for info in pkgutil.walk_packages(stripe.__path__, "stripe."):
        if not info.name.endswith("_service") or ".v2." in info.name:
            continue
        module = importlib.import_module(info.name)
        for _cls_name, cls in vars(module).items():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            for name, fn in vars(cls).items():
                if name.startswith("_") or name.endswith("_async") or not inspect.isfunction(fn):
                    continue
                source = inspect.getsource(fn)
                match = _REQUEST.search(source)
                param = inspect.signature(fn).parameters.get("params")
                if match is None or param is None:
                    continue
                annotation = param.annotation
                text = annotation if isinstance(annotation, str) else str(annotation)
                params_name = re.search(r"(\w+Params)\b", text)
                if params_name is None:
                    continue
                names = Builder()._module_names(module)
                params_cls = names.get(params_name.group(1))
                if params_cls is None:
                    continue
                method, path = match.group(1).upper(), re.sub(r"\{\w+\}", "{}", match.group(2))
                found[f"{method} {path}"] = params_cls
    return found


def build() -> tuple[dict[str, Any], dict[str, Any]]:
    import stripe_emulator  # noqa: F401  (registers the routes)
    from stripe_emulator.routing import ROUTES

    builder = Builder()
    endpoints = service_endpoints()
    requests: dict[str, Any] = {}
    for route in ROUTES:
        key = route.method + " " + re.sub(r"\{\w+\}", "{}", route.path)
        if key in endpoints:
            requests[key] = builder.node(endpoints[key], endpoints[key])
    request_defs = _reachable(builder.defs, requests)

    responses_builder = Builder()
    objects: dict[str, Any] = {}
    for object_name, (module_name, class_name) in sorted(OBJECT_CLASSES.items()):
        if object_name.startswith("v2.") or object_name in ("list", "search_result"):
            continue
        cls = getattr(importlib.import_module(module_name), class_name)
        objects[object_name] = responses_builder.node(cls, cls)
    objects = {name: node for name, node in objects.items() if name in served_objects()}
    response_defs = _reachable(responses_builder.defs, objects)
    _mark_always_present(objects, response_defs)
    api_version = stripe.api_version
    return (
        {"api_version": api_version, "stripe": stripe.VERSION, "endpoints": requests, "defs": request_defs},
        {"api_version": api_version, "stripe": stripe.VERSION, "objects": objects, "defs": response_defs},
    )


def served_objects() -> set[str]:
    """The object types the emulator serves (`"object": "..."` in its sources)."""
    root = HERE.parent
    names: set[str] = set()
    for path in [*root.glob("*.py"), *root.glob("endpoints/*.py")]:
        names.update(re.findall(r'"object": "([a-z_.]+)"', path.read_text()))
    return names


def _mark_always_present(objects: dict[str, Any], defs: dict[str, Any]) -> None:
    """stripe-python's types do not say which keys may be absent (`Optional` means nullable *or*
    absent). Stripe's own example objects (`tests/fixtures/stripe/fixtures3.json`, from Stripe's
    OpenAPI repository) do: a declared key that an example carries is marked `must` (the
    conformance check requires it); other declared keys may be absent."""
    fixtures = json.loads((HERE.parents[1] / "tests/fixtures/stripe/fixtures3.json").read_text())["resources"]

    def walk(node: dict[str, Any], example: Any) -> None:
        while node.get("t") == "ref":
            node = defs[node["r"]]
        if node["t"] == "union":
            for option in node["of"]:
                walk(option, example)
        elif node["t"] == "obj" and isinstance(example, dict):
            must = set(node.get("must", []))
            # a hash per type (`payment_method.card`, `payment_method_details.us_bank_account`):
            # present only for its own type, whatever the example shows
            kinds = set(_resolve(node["f"].get("type", {}), defs).get("v", [])) | {example.get("type")}
            for key, value in example.items():
                if key in kinds:
                    walk(node["f"][key], value)
                    continue
                if key in node["f"]:
                    must.add(key)
                    walk(node["f"][key], value)
            node["must"] = sorted(must)
        elif node["t"] in ("list", "listobj"):
            items = example.get("data") if isinstance(example, dict) else example
            for item in items if isinstance(items, list) else []:
                walk(node["of"], item)

    for name, node in objects.items():
        if name in fixtures:
            walk(node, fixtures[name])


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    while node.get("t") == "ref":
        node = defs[node["r"]]
    return node


def _reachable(defs: dict[str, Any], roots: dict[str, Any]) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("t") == "ref" and node["r"] not in seen:
                seen[node["r"]] = defs[node["r"]]
                walk(defs[node["r"]])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(roots)
    return dict(sorted(seen.items()))


def dump(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n"


def main() -> None:
    requests, responses = build()
    (HERE / "requests.json").write_text(dump(requests))
    (HERE / "responses.json").write_text(dump(responses))
    print(f"{len(requests['endpoints'])} endpoints, {len(responses['objects'])} object types")


if __name__ == "__main__":
    main()
