"""The API's JSON parser and body-size guard: what the database or Python cannot take is a 4xx
in the contract's shape before any view runs (issue 17).

- a body over `DATA_UPLOAD_MAX_MEMORY_SIZE` is a 413 `request_too_large`;
- NaN/Infinity, numbers out of range and nesting deeper than 32 levels are a 400;
- a NUL character or a lone surrogate in any string or key is a 400 naming where (a view that
  answers per item, such as a usage batch, sets `checks_own_strings` and refuses the item instead);
- JSON numbers remember how they were written (`json_source`), so `config.inputs` refuses
  `1e3` written as a number as it does as a string.
"""

from __future__ import annotations

import json
import math
import re

from django.conf import settings
from django.http import JsonResponse
from rest_framework import status
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from .exceptions import ApplicationError, ValidationFailed
from .inputs import JSON_MAX_DEPTH, first_bad_string


class RequestTooLarge(ApplicationError):
    code = "request_too_large"
    status = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_message = "The request body is too large."


def body_limit() -> int:
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 2_621_440


def too_large_body() -> dict:
    return {"error": RequestTooLarge.code, "message": f"The request body is over {body_limit()} bytes."}


class JsonFloat(float):
    """A JSON number with a fraction or an exponent, and the text it was written as."""

    __slots__ = ("json_source",)

    def __new__(cls, text: str):
        value = super().__new__(cls, text)
        if not math.isfinite(value):
            raise ValueError(f"number out of range: {text[:20]}")
        value.json_source = text
        return value


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# A string of a JSON text can only hold a NUL character or a lone surrogate through an escape
# (`\u0000`, `\ud800`-`\udfff`): the raw characters are refused by the decoder (a control
# character) or by UTF-8 itself. Without such an escape in the body no string needs a look.
# An escaped backslash before `u0000` is a false alarm, answered by the full walk.
_MAYBE_BAD_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def strings_may_be_bad(raw: bytes) -> bool:
    """False when no string or key of this (valid JSON) body can hold a NUL or a lone surrogate."""
    return _MAYBE_BAD_ESCAPE.search(raw) is not None


def depth_over(data, limit: int) -> bool:
    """Whether parsed JSON nests objects and arrays deeper than `limit` (`json_depth(data) >
    limit`, faster: only containers are visited, a level at a time, and it stops at the first
    level too deep)."""
    kind = type(data)
    if kind is not dict and kind is not list:
        return False
    level = [data]
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper: list = []
        push = deeper.append
        for item in level:
            for value in item.values() if type(item) is dict else item:
                kind = type(value)
                if kind is dict or kind is list:
                    push(value)
        level = deeper
    return False


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        limit = body_limit()
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(too_large_body()["message"])
        try:
            text = raw.decode(encoding)
            data = json.loads(text, parse_float=JsonFloat, parse_constant=_refuse_constant)
        except RecursionError:
            raise ParseError("JSON parse error - the document is nested too deeply.") from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {str(exc)[:200]}") from None
        if depth_over(data, JSON_MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels.")
        view = parser_context.get("view")
        # The raw text proves the strings clean when it is UTF-8 (the JSON default; any other
        # charset walks the parsed document, as before).
        clean = encoding.lower().replace("_", "-") in ("utf-8", "utf8") and not strings_may_be_bad(raw)
        request = parser_context.get("request")
        if request is not None:
            # The views that check their own strings (a usage batch) skip that check when the
            # body cannot hold a bad string.
            request.json_strings_clean = clean
        bad = None if clean or getattr(view, "checks_own_strings", False) else first_bad_string(data)
        if bad is not None:
            raise ValidationFailed(
                fields={bad[:200]: ["Must not contain NUL characters or unpaired surrogates."]}
            )
        return data


class BodyLimitMiddleware:
    """A 413 in the error shape for an API request whose declared body is over the limit,
    before anything reads it (form and multipart bodies included)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith("/api/"):
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                length = 0
            if length > body_limit():
                return JsonResponse(too_large_body(), status=413)
        return self.get_response(request)
