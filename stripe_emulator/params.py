"""Stripe's form-encoded wire format: `items[0][price]=x&metadata[k]=v&expand[]=a` <-> nested dicts.

Stripe accepts both `a[]=x` and `a[0]=x` for lists; stripe-python sends the indexed form.
Every value arrives as a string; `Params` converts and validates with Stripe's messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import InvalidRequestError, missing
from .store import HUMAN_NAMES

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_PART = re.compile(r"\[([^\[\]]*)\]")


def decode_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested dicts from flat form pairs; dicts whose keys are all integers become lists."""
    root: dict[str, Any] = {}
    for raw_key, value in pairs:
        match = _KEY.match(raw_key)
        if not match:
            raise InvalidRequestError(f"Invalid parameter name: {raw_key}", code="parameter_unknown")
        parts = [match.group(1), *_PART.findall(match.group(2))]
        node: Any = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # a[] appends
                part = str(len(node))
            if last:
                node[part] = value
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return _listify(root)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        return [converted[k] for k in sorted(converted, key=int)]
    return converted


def encode_form(data: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The inverse of `decode_form`, for tests and tools that speak the wire format by hand."""
    pairs: list[tuple[str, str]] = []
    for key, value in data.items():
        name = f"{prefix}[{key}]" if prefix else key
        if isinstance(value, dict):
            pairs += encode_form(value, name)
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    pairs += encode_form(item, f"{name}[{i}]")
                else:
                    pairs.append((f"{name}[{i}]", _scalar(item)))
        elif value is not None:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


class Params:
    """The parameters of one request, read with Stripe's validation messages.

    `path` is the parameter's name as Stripe reports it in `param` (`items[0][price]`).
    """

    def __init__(self, data: dict[str, Any] | None, path: str = ""):
        self.data = data if isinstance(data, dict) else {}
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}[{key}]" if self.path else key

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def check_known(self, allowed: Iterable[str]) -> None:
        allowed = set(allowed) | {"expand"}
        for key in self.data:
            if key not in allowed:
                raise InvalidRequestError(
                    f"Received unknown parameter: {self.name(key)}",
                    code="parameter_unknown",
                    param=self.name(key),
                )

    def str(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return default if value is None else None
        if not isinstance(value, str):
            raise InvalidRequestError(
                f"Invalid string: {value!r}", code="parameter_invalid_string", param=self.name(key)
            )
        return value

    def int(
        self, key: str, default: int | None = None, *, required: bool = False, minimum: int | None = None
    ) -> int | None:
        value = self.data.get(key)
        if value is None or value == "":
            if required:
                raise missing(self.name(key))
            return default
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=self.name(key)
            ) from None
        if minimum is not None and number < minimum:
            raise InvalidRequestError(
                f"This value must be greater than or equal to {minimum}.",
                code="parameter_invalid_integer",
                param=self.name(key),
            )
        return number

    def bool(self, key: str, default: bool | None = None) -> bool | None:
        value = self.data.get(key)
        if value is None or value == "":
            return default
        if value in ("true", True):
            return True
        if value in ("false", False):
            return False
        raise InvalidRequestError(
            f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=self.name(key)
        )

    def enum(self, key: str, choices: Iterable[str], default: str | None = None) -> str | None:
        value = self.str(key, default)
        choices = list(choices)
        if value is not None and value not in choices:
            raise InvalidRequestError(
                f"Invalid {self.name(key)}: must be one of {', '.join(choices)}",
                param=self.name(key),
            )
        return value

    def timestamp_or_now(self, key: str, now: int) -> int | None:
        value = self.data.get(key)
        if value == "now":
            return now
        return self.int(key)

    def dict(self, key: str) -> Params:
        value = self.data.get(key)
        if value not in (None, "") and not isinstance(value, dict):
            raise InvalidRequestError(
                f"Invalid object: {self.name(key)} must be a hash",
                code="parameter_invalid_object",
                param=self.name(key),
            )
        return Params(value if isinstance(value, dict) else {}, self.name(key))

    def list(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return value
        if isinstance(value, str):
            return [value]
        raise InvalidRequestError(
            f"Invalid array: {self.name(key)} must be an array",
            code="parameter_invalid_array",
            param=self.name(key),
        )

    def list_of_dicts(self, key: str) -> list[Params]:
        items = self.list(key)
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise InvalidRequestError(
                    f"Invalid object: {self.name(key)}[{i}] must be a hash",
                    code="parameter_invalid_object",
                    param=f"{self.name(key)}[{i}]",
                )
            out.append(Params(item, f"{self.name(key)}[{i}]"))
        return out

    def metadata(self, key: str = "metadata") -> dict[str, str] | None:
        """`None` when absent; `{}` for `metadata=""` (which clears on update)."""
        if key not in self.data:
            return None
        value = self.data[key]
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise InvalidRequestError(
                "Invalid object: metadata must be a hash",
                code="parameter_invalid_object",
                param=self.name(key),
            )
        return {str(k): "" if v is None else str(v) for k, v in value.items()}


def merge_metadata(current: dict[str, str], update: dict[str, str] | None) -> dict[str, str]:
    """Stripe's update rule: keys merge, an empty value deletes its key, an empty hash clears all."""
    if update is None:
        return current
    if update == {}:
        return {}
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def object_param(ctx: Any, kind: str, object_id: str | None, param: str) -> dict[str, Any]:
    """The object a parameter names (`customer=cus_...`), or 400 `resource_missing` on that parameter."""
    obj = ctx.store.get(kind, object_id)
    if obj is None:
        raise InvalidRequestError(
            f"No such {HUMAN_NAMES.get(kind, kind)}: '{object_id}'", code="resource_missing", param=param
        )
    return obj


def price_param(ctx: Any, p: Params, key: str = "price") -> dict[str, Any]:
    """An active price named by a parameter."""
    price_id = p.str(key, required=True)
    price = ctx.store.get("price", price_id)
    if price is None:
        raise InvalidRequestError(f"No such price: '{price_id}'", code="resource_missing", param=p.name(key))
    if not price["active"]:
        raise InvalidRequestError(
            f"The price specified ({price_id}) is inactive. This field only accepts active prices.",
            param=p.name(key),
        )
    return price
