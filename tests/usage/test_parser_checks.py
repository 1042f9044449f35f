"""The request parser's faster checks (issue 11's speed work) against the walks they replace:
`depth_over` answers `json_depth(data) > limit`, and a body `strings_may_be_bad` calls clean holds
no string or key that `first_bad_string` would refuse; the per-event checks with
`strings_checked` answer as without it on clean events. No database."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from config.inputs import first_bad_string, json_depth
from config.parsers import depth_over, strings_may_be_bad
from usage.validation import EventInvalid, parse_event

TEXT = st.text(
    alphabet=st.sampled_from(["a", '"', "\\", "[", "{", "]", "}", "\x00", "\ud800", "é", "u", "0"])
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=40,
)


@settings(max_examples=400, deadline=None)
@given(JSON, st.integers(min_value=0, max_value=6))
def test_depth_over_is_json_depth_over_the_limit(data, limit):
    assert depth_over(data, limit) == (json_depth(data) > limit)


def test_depth_over_deep_documents():
    for depth in (31, 32, 33, 5000):
        nested: object = 1
        for _ in range(depth):
            nested = [nested]
        assert depth_over(nested, 32) == (depth > 32)


@settings(max_examples=400, deadline=None)
@given(JSON)
def test_a_body_called_clean_has_no_bad_string(data):
    raw = json.dumps(data).encode()  # escapes every NUL and surrogate, as clients send them
    if first_bad_string(data) is not None:
        assert strings_may_be_bad(raw)
    assert not strings_may_be_bad(json.dumps("plain \\u0001 text").encode())


NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
EVENT = st.fixed_dictionaries(
    {"metric": TEXT, "idempotency_key": TEXT},
    optional={
        "quantity": st.integers(min_value=-3, max_value=10**13) | st.decimals(allow_nan=False) | TEXT,
        "user_id": TEXT | st.integers(),
        "resource_type": TEXT,
        "resource_id": TEXT,
        "dimensions": st.dictionaries(TEXT, st.none() | TEXT | st.integers(), max_size=3),
        "occurred_at": st.just("2026-05-01T11:00:00+00:00"),
    },
)


def _outcome(data, checked: bool):
    try:
        return parse_event(data, NOW, strings_checked=checked)
    except EventInvalid as exc:
        return (exc.code, exc.message)


@settings(max_examples=400, deadline=None)
@given(EVENT)
def test_strings_checked_changes_nothing_on_clean_events(data):
    if first_bad_string(data) is None:
        assert _outcome(data, True) == _outcome(data, False)
    else:
        # Unchecked strings are refused as before.
        assert isinstance(_outcome(data, False), tuple)
