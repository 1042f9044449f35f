"""The strict input rules of the whole API, in one place (issue 17, "Input rules" in the README).

- Numbers (credits, money, quantities, thresholds): `parse_decimal` / `parse_integer`. ASCII
  digits, an optional sign and one point; no exponent, no underscores, no other digits, no
  NaN/Infinity; at most as many digits before and after the point as the column the value lands
  in holds. JSON numbers are checked as they were written (see `config.parsers`), so `1e3` is
  refused whether it arrives as a string or a number.
- Text: no NUL characters and no lone surrogates anywhere (PostgreSQL stores neither);
  `check_text` is applied to every string of a JSON body by the parser.
- Metadata: Stripe's model (`parse_metadata`): a flat object of at most 50 keys of at most
  40 characters, values strings of at most 500 characters, numbers, booleans or null.

A refusal is a `InputInvalid(message)`; the DRF fields below turn it into a 400
`validation_error` naming the field.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# `12`, `-3`, `+0.5`, `12.`, `.5`: ASCII only (re.ASCII makes \d mean [0-9]).
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", re.ASCII)
_INTEGER = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
MAX_NUMBER_TEXT = 64

METADATA_MAX_KEYS = 50
METADATA_MAX_KEY = 40
METADATA_MAX_VALUE = 500
JSON_MAX_DEPTH = 32
SAFE_INTEGER = 2**53


class InputInvalid(ValueError):
    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


def _number_text(value: Any, name: str) -> str:
    """The text a number was written as: JSON numbers keep theirs (`config.parsers`)."""
    if isinstance(value, bool) or value is None:
        raise InputInvalid(f"{name} must be a number.")
    source = getattr(value, "json_source", None)
    if source is not None:
        text = source
    elif isinstance(value, int):
        text = str(value) if abs(value) < 10**MAX_NUMBER_TEXT else "9" * (MAX_NUMBER_TEXT + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InputInvalid(f"{name} must be a finite number.")
        text = repr(value)
    elif isinstance(value, Decimal):
        if not value.is_finite():
            raise InputInvalid(f"{name} must be a finite number.")
        text = format(value, "f")
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InputInvalid(f"{name} must be a number.")
    if len(text) > MAX_NUMBER_TEXT:
        raise InputInvalid(f"{name} is too long.")
    return text


def parse_decimal(
    value: Any,
    *,
    name: str = "value",
    integer_digits: int,
    places: int,
    min_value: Decimal | int | None = None,
    max_value: Decimal | int | None = None,
    positive: bool = False,
) -> Decimal:
    """A Decimal with exactly `places` places, or `InputInvalid`. `integer_digits` and `places`
    are the column's (a DecimalField(max_digits=20, decimal_places=4) has 16 and 4)."""
    text = _number_text(value, name)
    if not _NUMBER.fullmatch(text):
        raise InputInvalid(
            f"{name} must be a decimal number written with digits 0-9, an optional sign and point."
        )
    unsigned = text.lstrip("+-")
    whole, _, fraction = unsigned.partition(".")
    fraction = fraction.rstrip("0")
    if len(fraction) > places:
        raise InputInvalid(f"{name} has more than {places} decimal places.")
    if len(whole.lstrip("0")) > integer_digits:
        raise InputInvalid(f"{name} has more than {integer_digits} digits before the point.")
    number = Decimal(text).quantize(Decimal(1).scaleb(-places))
    if positive and number <= 0:
        raise InputInvalid(f"{name} must be greater than zero.")
    if min_value is not None and number < min_value:
        raise InputInvalid(f"{name} must be at least {min_value}.")
    if max_value is not None and number > max_value:
        raise InputInvalid(f"{name} must be at most {max_value}.")
    return number


def parse_integer(
    value: Any, *, name: str = "value", min_value: int | None = None, max_value: int | None = None
) -> int:
    """An integer (`12`, `"12"`, `12.0`), ASCII digits only, within the bounds, or `InputInvalid`."""
    text = _number_text(value, name)
    if not _INTEGER.fullmatch(text):
        raise InputInvalid(f"{name} must be a whole number written with digits 0-9.")
    number = int(text.partition(".")[0])
    if abs(number) > SAFE_INTEGER * 1024:
        raise InputInvalid(f"{name} is too large.")
    if min_value is not None and number < min_value:
        raise InputInvalid(f"{name} must be at least {min_value}.")
    if max_value is not None and number > max_value:
        raise InputInvalid(f"{name} must be at most {max_value}.")
    return number


def check_text(value: str, name: str = "text") -> str:
    """Refuse what PostgreSQL cannot store: NUL characters and lone surrogates."""
    if _BAD_TEXT.search(value):
        raise InputInvalid(f"{name} must not contain NUL characters or unpaired surrogates.")
    return value


def first_bad_string(data: Any) -> str | None:
    """The path of the first string (or key) in parsed JSON that `check_text` refuses; iterative,
    so a deep document cannot exhaust the stack."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if _BAD_TEXT.search(item):
                return path or "body"
        elif isinstance(item, dict):
            for key, sub in item.items():
                if isinstance(key, str) and _BAD_TEXT.search(key):
                    return f"{path}.(key)" if path else "(key)"
                stack.append((f"{path}.{key}" if path else str(key), sub))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", sub) for i, sub in enumerate(item))
    return None


def json_depth(data: Any) -> int:
    """How deeply objects and arrays nest (a scalar: 0)."""
    deepest = 0
    stack: list[tuple[int, Any]] = [(0, data)]
    while stack:
        depth, item = stack.pop()
        if isinstance(item, dict):
            stack.extend((depth + 1, sub) for sub in item.values())
            deepest = max(deepest, depth + 1)
        elif isinstance(item, list):
            stack.extend((depth + 1, sub) for sub in item)
            deepest = max(deepest, depth + 1)
    return deepest


def parse_metadata(value: Any, *, name: str = "metadata") -> dict:
    """Stripe's metadata model, the one rule for `metadata` on consume, grant, usage and
    reservations: a flat object, at most 50 keys of 1 to 40 characters; values are strings of at
    most 500 characters, finite numbers, booleans or null."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputInvalid(f"{name} must be an object.")
    if len(value) > METADATA_MAX_KEYS:
        raise InputInvalid(f"{name} may have at most {METADATA_MAX_KEYS} keys.")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not 1 <= len(key) <= METADATA_MAX_KEY:
            raise InputInvalid(f"{name} keys are 1 to {METADATA_MAX_KEY} characters.")
        check_text(key, f"{name} keys")
        if isinstance(item, str):
            if len(item) > METADATA_MAX_VALUE:
                raise InputInvalid(f"{name} values are at most {METADATA_MAX_VALUE} characters.")
            check_text(item, f"{name} values")
        elif isinstance(item, bool) or item is None:
            pass
        elif isinstance(item, int):
            if abs(item) > SAFE_INTEGER:
                raise InputInvalid(f"{name} numbers must be at most 2^53.")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputInvalid(f"{name} numbers must be finite.")
            item = float(item)  # drop the JSON source text
        else:
            raise InputInvalid(f"{name} values must be strings, numbers, booleans or null (no nesting).")
        out[key] = item
    return out


# ------------------------------------------------------------------ DRF fields built on the rules
@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "pattern": r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$", "maxLength": 64},
            {"type": "number"},
        ]
    }
)
class StrictDecimalField(serializers.Field):
    """A decimal in (a JSON number or a decimal string), as `parse_decimal` allows; out, a
    normalized decimal string (`"1500"`, `"12.5"`)."""

    def __init__(
        self,
        *,
        integer_digits: int = 16,
        places: int = 4,
        min_value=None,
        max_value=None,
        positive: bool = False,
        **kwargs,
    ):
        self.integer_digits = integer_digits
        self.places = places
        self.min_value = min_value
        self.max_value = max_value
        self.positive = positive
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> Decimal:
        try:
            return parse_decimal(
                data,
                name=self.field_name or "value",
                integer_digits=self.integer_digits,
                places=self.places,
                min_value=self.min_value,
                max_value=self.max_value,
                positive=self.positive,
            )
        except InputInvalid as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value) -> str | None:
        if value is None:
            return None
        text = format(Decimal(value), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return "0" if text in ("-0", "") else text


@extend_schema_field(OpenApiTypes.INT)
class StrictIntegerField(serializers.IntegerField):
    """DRF's IntegerField takes `1_000` and non-ASCII digits (Python's `int()` does); this one
    takes ASCII digits only."""

    def to_internal_value(self, data) -> int:
        try:
            return parse_integer(
                data, name=self.field_name or "value", min_value=self.min_value, max_value=self.max_value
            )
        except InputInvalid as exc:
            raise serializers.ValidationError(exc.message) from None


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": METADATA_MAX_KEYS,
        "propertyNames": {"maxLength": METADATA_MAX_KEY, "minLength": 1},
        "additionalProperties": {
            "oneOf": [
                {"type": "string", "maxLength": METADATA_MAX_VALUE},
                {"type": "number"},
                {"type": "boolean"},
            ],
            "nullable": True,
        },
        "description": "At most 50 keys of 1 to 40 characters; values: strings (at most 500 "
        "characters), numbers, booleans or null; no nesting.",
    }
)
class MetadataField(serializers.Field):
    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("default", dict)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> dict:
        try:
            return parse_metadata(data, name=self.field_name or "metadata")
        except InputInvalid as exc:
            raise serializers.ValidationError(exc.message) from None

    def to_representation(self, value):
        return value


# ------------------------------------------------------------------ Django form fields (pages, admin)
class StrictDecimalFormField(forms.DecimalField):
    """The page and admin forms' decimal: the same rules as the API (`parse_decimal`), bounded by
    the form's `max_digits` / `decimal_places` (those of the column)."""

    def __init__(self, *, max_digits: int = 20, decimal_places: int = 4, **kwargs):
        super().__init__(max_digits=max_digits, decimal_places=decimal_places, **kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_decimal(
                value,
                name="The number",
                integer_digits=self.max_digits - self.decimal_places,
                places=self.decimal_places,
            )
        except InputInvalid as exc:
            raise DjangoValidationError(exc.message, code="invalid") from None


class StrictIntegerFormField(forms.IntegerField):
    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return parse_integer(value, name="The number")
        except InputInvalid as exc:
            raise DjangoValidationError(exc.message, code="invalid") from None


def strict_number_overrides() -> dict:
    """`ModelAdmin.formfield_overrides` that give the admin's number inputs the same rules."""
    from django.db import models

    return {
        models.DecimalField: {"form_class": StrictDecimalFormField},
        models.IntegerField: {"form_class": StrictIntegerFormField},
    }
