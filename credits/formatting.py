"""Decimal credits in and out: 4 places in, normalized strings out (`"1500"`, `"12.5"`)."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

QUANTUM = Decimal("0.0001")
MAX_CREDITS = Decimal("9999999999999999.9999")  # max_digits=20, decimal_places=4
CREDITS_INTEGER_DIGITS = 16  # the ledger's columns: DecimalField(max_digits=20, decimal_places=4)
CREDITS_PLACES = 4


def quantize(value) -> Decimal:
    """A Decimal with exactly 4 places. Floats go through `str` so 0.1 stays 0.1."""
    if isinstance(value, float):
        value = str(value)
    try:
        return Decimal(value).quantize(QUANTUM, rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError) as exc:
        raise ValueError(f"not a decimal amount: {value!r}") from exc


def credits_str(value: Decimal | None) -> str | None:
    """`Decimal("1500.0000")` -> `"1500"`, `Decimal("12.5000")` -> `"12.5"`, never exponents."""
    if value is None:
        return None
    try:
        return _credits_str(value)  # equal values (1500, 1500.0000, -0) give the same text
    except TypeError:  # unhashable: a signalling NaN
        return _credits_text(value)


def _credits_text(value) -> str:
    text = format(Decimal(value).quantize(QUANTUM), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


# Answers show the same few amounts (limits, prices, balances) over and over.
_credits_str = functools.lru_cache(maxsize=8192)(_credits_text)


# The largest single charge: Stripe's limit for most currencies (99,999,999 minor units, i.e.
# 999,999.99 USD), well inside the purchase's amount column.
MAX_CHARGE_MINOR_UNITS = 99_999_999
