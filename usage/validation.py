"""Checking one usage event, for the API and for in-process callers alike.

Plain functions, not DRF serializers, because a batch answers per index: one bad event is
rejected with its reason and the others are still recorded. Every bound is explicit (numbers,
string lengths, the size and shape of `dimensions`), so no input can reach the database in a
form it would refuse. Kept small on purpose: the shared strict decimal parser can replace
`parse_quantity` without touching the rest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import ClassVar

from django.utils.dateparse import parse_datetime

from config.inputs import _BAD_TEXT as _BAD_TEXT_RE
from config.inputs import InputInvalid, check_text, parse_decimal

MAX_BATCH = 1000
MAX_QUANTITY = Decimal("1000000000000")  # 10^12 units in one event
QUANTITY_PLACES = 4
QUANTITY_INTEGER_DIGITS = 13
MAX_KEY = 255
MAX_USER = 255
MAX_RESOURCE_TYPE = 64
MAX_RESOURCE_ID = 255
MAX_DIMENSIONS = 20
MAX_DIMENSION_KEY = 64
MAX_DIMENSION_VALUE = 255
MAX_AGE = timedelta(days=35)
MAX_AHEAD = timedelta(minutes=5)
FIELDS = {
    "metric",
    "quantity",
    "idempotency_key",
    "occurred_at",
    "user_id",
    "resource_type",
    "resource_id",
    "dimensions",
}


# One encoder for all (json.dumps with options builds a new one per call).
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def _dimensions_json(dimensions: dict) -> str:
    """Compact JSON with sorted keys, as `_JSON` writes it; flat string maps (the usual
    dimensions) are joined directly, which is several times faster."""
    if not dimensions:
        return "{}"
    parts = []
    for key in sorted(dimensions):
        value = dimensions[key]
        if not isinstance(value, str):
            return _JSON.encode(dimensions)
        parts.append(f"{encode_basestring_ascii(key)}:{encode_basestring_ascii(value)}")
    return "{" + ",".join(parts) + "}"


class EventInvalid(Exception):
    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


@dataclass
class EventInput:
    """One event, checked and normalized."""

    metric: str
    quantity: Decimal
    idempotency_key: str
    occurred_at: datetime
    user_id: str = ""
    resource_type: str = ""
    resource_id: str = ""
    dimensions: dict = field(default_factory=dict)
    occurred_at_given: bool = True  # False: it is the time of recording (not part of the request)
    # Set by parse_event(late_ok=True): the event is valid but outside the window of what may be
    # recorded now (too_old / in_future); a replay of a recorded key is still a duplicate.
    window_error: EventInvalid | None = None

    # The dimensions as stored, once computed (a plain attribute, not through `__dict__`, which
    # would give every event a dict of its own).
    _dimensions_json: ClassVar[str | None] = None
    # `occurred_at.isoformat()` when `plain_event` wrote it already (for the statement).
    occurred_text: ClassVar[str | None] = None

    @property
    def dimensions_json(self) -> str:
        """The dimensions as stored (compact JSON, keys sorted), computed once."""
        cached = self._dimensions_json
        if cached is None:
            cached = _dimensions_json(self.dimensions)
            self._dimensions_json = cached
        return cached

    def fingerprint(self) -> str:
        """A hash of the request's event: a replay without `occurred_at` matches the first."""
        when = self.occurred_at.isoformat() if self.occurred_at_given else ""
        body = "\x1f".join(
            (
                self.metric,
                _normalized(self.quantity),
                when,
                self.user_id,
                self.resource_type,
                self.resource_id,
                self.dimensions_json,
            )
        )
        return _blake2b(body.encode(), digest_size=16).hexdigest()


_blake2b = hashlib.blake2b
_NORMALIZED: dict[Decimal, str] = {}


def _normalized(quantity: Decimal) -> str:
    """`str(quantity.normalize())`, remembered for the common quantities (equal Decimals
    normalize to the same text; zero, whose sign would be lost, is never remembered)."""
    text = _NORMALIZED.get(quantity)
    if text is None:
        text = str(quantity.normalize())
        if quantity and len(_NORMALIZED) < 4096:
            _NORMALIZED[quantity] = text
    return text


def parse_quantity(value, *, name: str = "quantity", allow_zero: bool = False) -> Decimal:
    """A number or a decimal string through the one strict parser (`config.inputs`): ASCII
    digits, sign and point, at most 4 places, greater than zero (or zero when allowed), at most
    10^12."""
    try:
        number = parse_decimal(
            value, name=name, integer_digits=QUANTITY_INTEGER_DIGITS, places=QUANTITY_PLACES
        )
    except InputInvalid as exc:
        raise EventInvalid("invalid_quantity", exc.message) from None
    if number < 0 or (number == 0 and not allow_zero):
        raise EventInvalid("invalid_quantity", f"{name} must be greater than zero.")
    if number > MAX_QUANTITY:
        raise EventInvalid("invalid_quantity", f"{name} must be at most {MAX_QUANTITY}.")
    return number


def _text(data: dict, name: str, limit: int, *, required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise EventInvalid("missing_field", f"{name} is required.")
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and name in ("user_id", "resource_id"):
        value = str(value)
    if not isinstance(value, str):
        raise EventInvalid("invalid_field", f"{name} must be a string.")
    if len(value) > limit:
        raise EventInvalid("invalid_field", f"{name} must be at most {limit} characters.")
    try:
        return check_text(value, name)
    except InputInvalid as exc:
        raise EventInvalid("invalid_field", exc.message) from None


def _bad_text(value: str) -> bool:
    try:
        check_text(value)
    except InputInvalid:
        return True
    return False


def parse_dimensions(value, strings_checked: bool = False) -> dict:
    """A flat object: at most 20 keys of at most 64 characters; values are strings (at most 255
    characters), numbers, booleans or null. No nesting."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventInvalid("invalid_dimensions", "dimensions must be an object.")
    if len(value) > MAX_DIMENSIONS:
        raise EventInvalid("invalid_dimensions", f"dimensions may have at most {MAX_DIMENSIONS} keys.")
    out = {}
    for key, item in value.items():
        # The usual dimension: a short name and a string value.
        if (
            type(key) is str
            and type(item) is str
            and 0 < len(key) <= MAX_DIMENSION_KEY
            and len(item) <= MAX_DIMENSION_VALUE
            and (strings_checked or not (_BAD_TEXT_RE.search(key) or _BAD_TEXT_RE.search(item)))
        ):
            out[key] = item
            continue
        if not isinstance(key, str) or not key or len(key) > MAX_DIMENSION_KEY or _bad_text(key):
            raise EventInvalid(
                "invalid_dimensions", f"dimension keys are 1 to {MAX_DIMENSION_KEY} characters."
            )
        if isinstance(item, str):
            if len(item) > MAX_DIMENSION_VALUE or _bad_text(item):
                raise EventInvalid(
                    "invalid_dimensions", f"dimension values are at most {MAX_DIMENSION_VALUE} characters."
                )
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                raise EventInvalid("invalid_dimensions", "dimension values must be finite numbers.")
            item = float(item)  # as a plain float (a JSON number keeps its source text)
        elif isinstance(item, int) and not isinstance(item, bool):
            if abs(item) > 2**53:
                raise EventInvalid("invalid_dimensions", "dimension numbers must be at most 2^53.")
        elif item is not None and not isinstance(item, bool):
            raise EventInvalid(
                "invalid_dimensions", "dimension values must be strings, numbers, booleans or null."
            )
        out[key] = item
    return out


def parse_occurred_at(value, now: datetime, *, window: bool = True) -> datetime:
    if value is None or value == "":
        return now
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and len(value) <= 64:
        try:
            moment = datetime.fromisoformat(value)  # the common shape, in C
        except ValueError:
            try:
                moment = parse_datetime(value)
            except ValueError:
                moment = None
        if moment is None:
            raise EventInvalid("invalid_occurred_at", "occurred_at must be an ISO 8601 date-time.")
    else:
        raise EventInvalid("invalid_occurred_at", "occurred_at must be an ISO 8601 date-time.")
    if moment.tzinfo is None:
        raise EventInvalid("invalid_occurred_at", "occurred_at needs a UTC offset.")
    return check_window(moment, now) if window else moment


def check_window(moment: datetime, now: datetime) -> datetime:
    """`moment`, or `too_old` / `in_future` when it is outside what may be recorded now."""
    if moment < now - MAX_AGE:
        raise EventInvalid("too_old", "occurred_at is more than 35 days in the past.")
    if moment > now + MAX_AHEAD:
        raise EventInvalid("in_future", "occurred_at is more than 5 minutes in the future.")
    return moment


_Q4 = Decimal(1).scaleb(-QUANTITY_PLACES)
_MAX_INT_QUANTITY = int(MAX_QUANTITY)


def _quantity(value) -> Decimal:
    """`parse_quantity`, with the common whole-number quantity answered without the text parser
    (the same Decimal: the number with 4 places)."""
    if type(value) is int and 0 < value <= _MAX_INT_QUANTITY:
        return Decimal(value).quantize(_Q4)
    return parse_quantity(value)


def _fast_text(value, limit: int, strings_checked: bool) -> str | None:
    """A string field's value when it is a plain good string (None: let `_text` decide and
    word the refusal)."""
    if type(value) is str and len(value) <= limit and (strings_checked or not _BAD_TEXT_RE.search(value)):
        return value
    return None


def parse_event(data, now: datetime, *, strings_checked: bool = False, late_ok: bool = False) -> EventInput:
    """One event from JSON-like data, or `EventInvalid` with a code and a reason.

    `strings_checked`: the caller knows no string of `data` holds a NUL character or a lone
    surrogate (`config.parsers` proves it from the request body); the same checks otherwise.
    `late_ok`: an event whose only fault is its time (too old, in the future) is answered with
    `window_error` set instead of raised (a batch still answers a replay of it as a duplicate)."""
    if type(data) is not dict and not isinstance(data, dict):
        raise EventInvalid("invalid_event", "Each event must be an object.")
    if not data.keys() <= FIELDS:  # every field known: no key can be a bad string either
        if any(not isinstance(k, str) or _bad_text(k) for k in data):
            raise EventInvalid(
                "unknown_field", "Field names must not contain NUL characters or unpaired surrogates."
            )
        unknown = sorted(k for k in data if k not in FIELDS) if len(data) <= 50 else ["(too many fields)"]
        raise EventInvalid("unknown_field", f"Unknown field(s): {', '.join(map(str, unknown))[:200]}.")
    get = data.get
    metric = get("metric")
    if not metric or _fast_text(metric, 64, strings_checked) is None:
        metric = _text(data, "metric", 64, required=True)
    quantity = get("quantity")
    quantity = _quantity(1 if quantity is None else quantity)
    key = get("idempotency_key")
    if not key or _fast_text(key, MAX_KEY, strings_checked) is None:
        key = _text(data, "idempotency_key", MAX_KEY, required=True)
    when = get("occurred_at")
    window_error = None
    try:
        occurred_at = parse_occurred_at(when, now)
    except EventInvalid as exc:
        if not late_ok or exc.code not in ("too_old", "in_future"):
            raise
        window_error, occurred_at = exc, parse_occurred_at(when, now, window=False)
    if window_error is not None:
        try:
            return _rest(data, get, metric, quantity, key, occurred_at, when, strings_checked, window_error)
        except EventInvalid:
            raise window_error from None
    return _rest(data, get, metric, quantity, key, occurred_at, when, strings_checked, None)


def _rest(data, get, metric, quantity, key, occurred_at, when, strings_checked, window_error) -> EventInput:
    texts = []
    for name, limit in _OPTIONAL_TEXTS:
        value = get(name)
        if value is None:
            texts.append("")
        elif _fast_text(value, limit, strings_checked) is None:
            texts.append(_text(data, name, limit))
        else:
            texts.append(value)
    dimensions = get("dimensions")
    return EventInput(
        metric=metric,
        quantity=quantity,
        idempotency_key=key,
        occurred_at=occurred_at,
        user_id=texts[0],
        resource_type=texts[1],
        resource_id=texts[2],
        dimensions={} if dimensions is None else parse_dimensions(dimensions, strings_checked),
        occurred_at_given=when is not None and when != "",
        window_error=window_error,
    )


_OPTIONAL_TEXTS = (
    ("user_id", MAX_USER),
    ("resource_type", MAX_RESOURCE_TYPE),
    ("resource_id", MAX_RESOURCE_ID),
)


_fromisoformat = datetime.fromisoformat
_QUANTITIES: dict[int, Decimal] = {}


def plain_event(
    data: dict, now: datetime, oldest: datetime, newest: datetime, strings_checked: bool
) -> tuple[EventInput, str] | None:
    """`parse_event(data, now, ...)` and its `fingerprint()` in one step for the usual event (a
    plain dict of known fields, good strings, a quantity that parses, an `occurred_at` inside
    [`oldest`, `newest`] (`now - MAX_AGE`, `now + MAX_AHEAD`) or none, dimensions that parse);
    None for anything else, and the caller asks `parse_event`, which gives the same event or
    words the refusal. Never raises `EventInvalid`; the same checks, in fewer calls."""
    if not data.keys() <= FIELDS:
        return None
    get = data.get
    metric = get("metric")
    if type(metric) is not str or not 0 < len(metric) <= 64:
        return None
    key = get("idempotency_key")
    if type(key) is not str or not 0 < len(key) <= MAX_KEY:
        return None
    user_id = get("user_id")
    if user_id is None:
        user_id = ""
    elif type(user_id) is not str or len(user_id) > MAX_USER:
        return None
    resource_type = get("resource_type")
    if resource_type is None:
        resource_type = ""
    elif type(resource_type) is not str or len(resource_type) > MAX_RESOURCE_TYPE:
        return None
    resource_id = get("resource_id")
    if resource_id is None:
        resource_id = ""
    elif type(resource_id) is not str or len(resource_id) > MAX_RESOURCE_ID:
        return None
    if not strings_checked:
        search = _BAD_TEXT_RE.search
        if search(metric) or search(key) or search(user_id) or search(resource_type) or search(resource_id):
            return None
    quantity = get("quantity")
    if type(quantity) is int:
        number = _QUANTITIES.get(quantity)
        if number is None:
            if not 0 < quantity <= _MAX_INT_QUANTITY:
                return None
            number = Decimal(quantity).quantize(_Q4)
            if len(_QUANTITIES) < 4096:
                _QUANTITIES[quantity] = number
    elif quantity is None:
        number = _Q1
    else:
        try:
            number = parse_quantity(quantity)
        except EventInvalid:
            return None
    when = get("occurred_at")
    if when is None:
        occurred_at, when_text = now, ""
    elif type(when) is str and len(when) <= 64 and when:
        try:
            occurred_at = _fromisoformat(when)
        except ValueError:  # parse_event decides (django's parser, or the refusal)
            return None
        if occurred_at.tzinfo is None or not oldest <= occurred_at <= newest:
            return None
        when_text = occurred_at.isoformat()
    else:
        return None
    dimensions = get("dimensions")
    if dimensions is None:
        dimensions, dimensions_json = {}, "{}"
    elif type(dimensions) is dict and len(dimensions) <= MAX_DIMENSIONS:
        # `parse_dimensions` and `_dimensions_json` of a flat map of good strings, in one pass.
        for name, value in dimensions.items():
            if (
                type(name) is not str
                or type(value) is not str
                or not 0 < len(name) <= MAX_DIMENSION_KEY
                or len(value) > MAX_DIMENSION_VALUE
                or not (strings_checked or not (_BAD_TEXT_RE.search(name) or _BAD_TEXT_RE.search(value)))
            ):
                return None
        # (The request's own dict: nothing changes it, and a copy would be one more object.)
        dimensions_json = (
            "{"
            + ",".join(
                [
                    f"{encode_basestring_ascii(name)}:{encode_basestring_ascii(dimensions[name])}"
                    for name in sorted(dimensions)
                ]
            )
            + "}"
            if dimensions
            else "{}"
        )
    else:
        try:
            dimensions = parse_dimensions(dimensions, strings_checked)
        except EventInvalid:
            return None
        dimensions_json = _dimensions_json(dimensions)
    event = EventInput(
        metric, number, key, occurred_at, user_id, resource_type, resource_id, dimensions, when is not None
    )
    event._dimensions_json = dimensions_json
    if when_text:
        event.occurred_text = when_text
    body = "\x1f".join(
        (metric, _normalized(number), when_text, user_id, resource_type, resource_id, dimensions_json)
    )
    return event, _blake2b(body.encode(), digest_size=16).hexdigest()


_Q1 = Decimal(1).quantize(_Q4)
