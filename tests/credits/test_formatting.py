"""credits_str: normalized text of an amount, the same from its cache as computed afresh."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from credits.formatting import _credits_text, credits_str


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("1500.0000"), "1500"),
        (Decimal("1500"), "1500"),
        (1500, "1500"),
        (Decimal("12.5000"), "12.5"),
        (Decimal("-0.0000"), "0"),
        (Decimal("-0"), "0"),
        (Decimal("0.00004"), "0"),
        (Decimal("0.00005"), "0"),  # half to even, as before
        (Decimal("1E+3"), "1000"),
        (Decimal("9999999999999999.9999"), "9999999999999999.9999"),
        (Decimal("-12.34565"), "-12.3456"),
        (None, None),
    ],
)
def test_texts(value, text):
    assert credits_str(value) == text
    assert credits_str(value) == text  # from the cache


def test_a_signalling_nan_is_not_cached_and_answers_as_before():
    with pytest.raises(Exception) as cached:
        credits_str(Decimal("sNaN"))
    with pytest.raises(Exception) as direct:
        _credits_text(Decimal("sNaN"))
    assert type(cached.value) is type(direct.value)


@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**16), max_value=10**16, places=6))
def test_cached_equals_computed(value):
    assert credits_str(value) == _credits_text(value)
    assert credits_str(value) == _credits_text(value)
