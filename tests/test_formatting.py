"""`config.formatting.moment_str` writes a moment as DRF's DateTimeField does in the project's time
zone, for every aware moment in any zone (Hypothesis), and refuses a naive one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rest_framework import serializers

from config.formatting import moment_str

ZONES = st.one_of(
    st.just(UTC),
    st.timezones(),
    st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m))),
)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=ZONES))
def test_a_moment_is_written_as_drf_writes_it(value):
    assert moment_str(value) == serializers.DateTimeField().to_representation(value)
    assert moment_str(value).endswith("Z")


def test_none_and_naive():
    assert moment_str(None) is None
    with pytest.raises(ValueError, match="aware"):
        moment_str(datetime(2026, 12, 1, 4, 5, 6))
