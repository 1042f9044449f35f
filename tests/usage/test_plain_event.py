"""The one-step check of the usual event (`usage.validation.plain_event`, used by
`usage.services.recording.prepare`) against the general path it shortcuts: for any input it
either gives the very event and fingerprint `parse_event` gives, or declines (None) and the
general path answers (and words any refusal). Then `POST /usage/events` end to end: the same
batch answers byte for byte the same, and stores the same rows, with the shortcut and without.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from billing.services import api_key_create
from config.inputs import first_bad_string
from config.parsers import JsonFloat
from usage.models import UsageEvent
from usage.selectors import MetricInfo
from usage.services import recording
from usage.validation import MAX_AGE, MAX_AHEAD, EventInput, EventInvalid, parse_event, plain_event

from .conftest import organization_on, plan_with_limits, url

NOW = datetime(2026, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)

TEXT = st.text(
    alphabet=st.sampled_from(
        ["a", "Z", '"', "\\", "é", "漢", "😀", "\x00", "\ud800", "\x1e", "\x1f", " ", "0"]
    ),
    max_size=6,
)
LONG = st.sampled_from(["x" * 64, "x" * 65, "y" * 255, "y" * 256, ""])
WHEN = st.sampled_from(
    [
        "2026-05-01T11:00:00+00:00",
        "2026-05-01T11:00:00Z",
        "2026-05-01T13:00:00+02:00",
        "2026-05-01T11:00:00.5-03:30",
        "2026-05-01 11:00:00+00:00",
        "2026-05-01T11:00:00",  # no offset: refused
        "2026-05-01T12:34:00+00:00",  # 3.75 minutes ahead: taken
        "2026-05-01T12:36:00+00:00",  # in the future: refused (or late)
        "2026-03-27T12:30:15.123456+00:00",  # exactly 35 days back: taken
        "2026-03-27T12:30:15.123455+00:00",  # a microsecond before: too old
        "2026-02-01T00:00:00+00:00",
        "20260501T110000Z",
        "2026-05-01",
        "not a date",
        "",
        "2026-05-01T11:00:00+00:00" + " " * 50,
    ]
)
NUMBER = (
    st.integers(min_value=-3, max_value=10**13)
    | st.sampled_from([10**12, 10**12 + 1, 2**63, 10**30, 0, 1, True, False])
    | st.decimals(allow_nan=False, allow_infinity=False, places=5).map(lambda d: JsonFloat(str(d)))
    | st.sampled_from(["1", "12.5", "0.0001", "0.00001", "1e3", "1E+1", " 1", "-1", "\uff11"])
    | st.floats(allow_nan=True, allow_infinity=True)
)
VALUE = st.none() | TEXT | LONG | st.integers(min_value=-(2**60), max_value=2**60) | st.booleans() | NUMBER
EVENT = st.fixed_dictionaries(
    {},
    optional={
        "metric": st.sampled_from(["SMS_SENT", "UNIQUE_M", "NOPE", "", None, 5]) | TEXT,
        "idempotency_key": TEXT | LONG | st.none() | st.integers(),
        "quantity": NUMBER | st.none() | TEXT,
        "occurred_at": WHEN | st.none() | st.integers(),
        "user_id": TEXT | LONG | st.none() | st.integers(min_value=-(10**20), max_value=10**20),
        "resource_type": TEXT | LONG | st.none() | st.integers(),
        "resource_id": TEXT | LONG | st.none() | st.integers(),
        "dimensions": st.none()
        | st.dictionaries(TEXT | LONG, VALUE, max_size=4)
        | st.sampled_from([{f"k{i}": "v" for i in range(21)}, {"k": {"nested": 1}}, {"k": [1]}, [], "x"]),
        "extra": st.just(1),
    },
)
# Mostly good events with one or two odd fields: the cases where the shortcut must not go wrong.
CLEAN = st.text(alphabet=st.sampled_from(["a", "Z", "é", "漢", "😀", " ", "0", '"', "\\"]), max_size=8)
NEAR = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(["SMS_SENT", "SMS_SENT", "UNIQUE_M"]) | TEXT,
        "idempotency_key": CLEAN.filter(bool) | TEXT | LONG,
    },
    optional={
        "quantity": st.integers(min_value=1, max_value=10**12) | NUMBER,
        "occurred_at": WHEN
        | st.integers(min_value=-35 * 86400, max_value=400).map(
            lambda s: (NOW + timedelta(seconds=s)).isoformat()
        ),
        "user_id": CLEAN | st.none() | st.integers(),
        "resource_type": CLEAN | LONG | st.none(),
        "resource_id": CLEAN | LONG | st.none(),
        "dimensions": st.none()
        | st.dictionaries(CLEAN, CLEAN, max_size=4)
        | st.dictionaries(TEXT | LONG, VALUE, max_size=3),
    },
)
CATALOG = {
    "SMS_SENT": MetricInfo(1, "SMS_SENT", "SMS", "message", "sum", Decimal("0.5"), "sms_sent", True),
    "UNIQUE_M": MetricInfo(2, "UNIQUE_M", "U", "thing", "unique", None, "unique_m", True),
}


def _general(data, checked: bool):
    try:
        event = parse_event(data, NOW, strings_checked=checked, late_ok=True)
    except EventInvalid as exc:
        return ("refused", exc.code, exc.message)
    return event


@settings(max_examples=3000, deadline=None)
@given(NEAR | EVENT, st.booleans())
def test_plain_event_is_parse_event_or_declines(data, checked):
    if checked and first_bad_string(data) is not None:
        checked = False  # strings_checked is only ever claimed for clean data
    plain = plain_event(data, NOW, NOW - MAX_AGE, NOW + MAX_AHEAD, checked)
    general = _general(data, checked)
    if plain is None:
        return
    event, fingerprint = plain
    assert isinstance(general, EventInput), general
    assert general.window_error is None
    assert event == general
    assert type(event.quantity) is Decimal and str(event.quantity) == str(general.quantity)
    assert event.dimensions_json == general.dimensions_json
    assert fingerprint == general.fingerprint()
    # The text the statement binds for occurred_at, when the shortcut kept it.
    assert event.occurred_text in (None, general.occurred_at.isoformat())


def test_plain_event_takes_the_usual_events():
    usual = {
        "metric": "SMS_SENT",
        "quantity": 2,
        "idempotency_key": "k-1",
        "occurred_at": "2026-05-01T11:00:00+00:00",
        "user_id": "u1",
        "resource_type": "message",
        "resource_id": "r1",
        "dimensions": {"platform": "ios", "a": "é"},
    }
    for data in (usual, {"metric": "SMS_SENT", "idempotency_key": "k"}, {**usual, "quantity": "1.5"}):
        assert plain_event(data, NOW, NOW - MAX_AGE, NOW + MAX_AHEAD, True) is not None


def _prepared(events, monkeypatch, *, plain: bool, late: list):
    if not plain:
        monkeypatch.setattr(recording, "plain_event", lambda *args: None)
    try:
        good, bad = recording.prepare(
            events, catalog=CATALOG, now=NOW, charge=True, strings_checked=False, late=late
        )
    finally:
        monkeypatch.undo()
    rows = [(r.index, r.event, r.metric, r.credits, r.fingerprint) for r in good]
    return rows, bad, [(i, k, f, e.code) for i, k, f, e in late]


@settings(max_examples=300, deadline=None)
@given(st.lists(NEAR | EVENT | st.sampled_from([None, 1, "x", []]), min_size=1, max_size=8))
def test_prepare_answers_the_same_with_and_without_the_shortcut(events):
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _prepared(events, monkeypatch, plain=True, late=[]) == _prepared(
            events, monkeypatch, plain=False, late=[]
        )


# --------------------------------------------------------------------------- through the API
def _body(now: datetime) -> bytes:
    """A batch of usual and unusual events, written as raw JSON (duplicate keys, escapes, big
    numbers, nulls)."""
    at = (now - timedelta(hours=2)).isoformat()
    parts = [
        json.dumps({"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "a", "occurred_at": at}),
        json.dumps({"metric": "SMS_SENT", "quantity": 3, "idempotency_key": "a", "occurred_at": at}),  # dup
        json.dumps(
            {"metric": "SMS_SENT", "quantity": 4, "idempotency_key": "a", "occurred_at": at}
        ),  # conflict
        json.dumps(
            {
                "metric": "AI_TOKENS",
                "quantity": "12.5",
                "idempotency_key": "ü-漢-😀",
                "user_id": "ユーザー",
                "resource_type": "message",
                "resource_id": "r\u00e9",
                "dimensions": {
                    "platform": "ios",
                    "model": "gpt\u00e9",
                    "n": 3,
                    "f": 1.5,
                    "b": True,
                    "z": None,
                },
            }
        ),
        '{"metric": "SMS_SENT", "metric": "API_REQUEST", "idempotency_key": "dupkey", "quantity": 1}',
        '{"metric": "SMS_SENT", "idempotency_key": "big", "quantity": 1000000000000}',
        '{"metric": "SMS_SENT", "idempotency_key": "too-big", "quantity": 1000000000001}',
        '{"metric": "SMS_SENT", "idempotency_key": "huge", "quantity": 123456789012345678901234567890}',
        '{"metric": "SMS_SENT", "idempotency_key": "float", "quantity": 2.50}',
        '{"metric": "SMS_SENT", "idempotency_key": "exp", "quantity": 1e3}',
        '{"metric": "SMS_SENT", "idempotency_key": "nulls", "quantity": null, "occurred_at": null,'
        ' "user_id": null, "resource_type": null, "resource_id": null, "dimensions": null}',
        '{"metric": "SMS_SENT", "quantity": 1}',
        '{"idempotency_key": "no-metric"}',
        '{"metric": "NOPE", "idempotency_key": "unknown"}',
        '{"metric": "SMS_SENT", "idempotency_key": "nul\\u0000"}',
        '{"metric": "SMS_SENT", "idempotency_key": "lone\\ud800"}',
        '{"metric": "SMS_SENT", "idempotency_key": "sep\\u001e", "user_id": 12345}',
        '{"metric": "SMS_SENT", "idempotency_key": "old", "occurred_at": "2020-01-01T00:00:00Z"}',
        '{"metric": "SMS_SENT", "idempotency_key": "ahead", "occurred_at": "2099-01-01T00:00:00Z"}',
        '{"metric": "SMS_SENT", "idempotency_key": "naive", "occurred_at": "2026-01-01T00:00:00"}',
        '{"metric": "SMS_SENT", "idempotency_key": "z", "occurred_at": "'
        + now.strftime("%Y-%m-%dT%H:%M:%SZ")
        + '"}',
        '{"metric": "SMS_SENT", "idempotency_key": "extra", "colour": "red"}',
        '{"metric": "SMS_SENT", "idempotency_key": "deep", "dimensions": {"a": {"b": 1}}}',
        '{"metric": "SMS_SENT", "idempotency_key": "many", "dimensions": {'
        + ", ".join(f'"k{i}": "v"' for i in range(21))
        + "}}",
        '{"metric": "SMS_SENT", "idempotency_key": "dimdup", "dimensions": {"a": "1", "a": "2"}}',
        '{"metric": "STORAGE_USED_MB", "idempotency_key": "max", "quantity": 7}',
        '{"metric": "WEBHOOK_TRIGGERED", "idempotency_key": "count", "quantity": 9}',
        '{"metric": "SMS_SENT", "idempotency_key": "' + "k" * 256 + '"}',
        '"not an object"',
        "null",
        "[]",
    ]
    return ('{"events": [' + ", ".join(parts) + "]}").encode()


@pytest.mark.django_db
def test_the_api_answers_byte_for_byte_the_same_with_and_without_the_shortcut(monkeypatch):
    from django.utils import timezone

    plan = plan_with_limits(SMS_SENT=10**9, AI_TOKENS=10**9, STORAGE_USED_MB=10**6, WEBHOOK_TRIGGERED=10**6)
    answers, stored = [], []
    for plain in (True, False, True):
        org = organization_on(plan)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_create(organization=org, name='k').raw_key}")
        if not plain:
            monkeypatch.setattr(recording, "plain_event", lambda *args: None)
        body = _body(timezone.now().replace(microsecond=0))
        first = client.generic("POST", url(org, "/events"), body, content_type="application/json")
        again = client.generic("POST", url(org, "/events"), body, content_type="application/json")
        monkeypatch.undo()
        assert first.status_code == again.status_code == 200, first.content
        answers.append((first.content, again.content))
        stored.append(
            sorted(
                UsageEvent.objects.filter(organization=org).values_list(
                    "idempotency_key",
                    "metric__code",
                    "quantity",
                    "user_id",
                    "resource_type",
                    "resource_id",
                    "dimensions",
                    "credits",
                )
            )
        )
    assert answers[0] == answers[1] == answers[2]
    answer = json.loads(answers[0][0])
    assert answer["accepted"] > 5 and answer["duplicates"] and answer["rejected"]
    assert json.loads(answers[0][1])["duplicates"] > 5
    # The rows stored are the same too (the rollups are checked against them after every test).
    assert stored[0] == stored[1] == stored[2]
