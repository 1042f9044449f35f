"""A Hypothesis run of random batches, replays, tracks and clock moves against a plain model:
the rollups always equal the raw events, `GET /usage` equals the model, and the quota counters
equal the database."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.selectors import calendar_month
from usage import counters
from usage.models import UsageRollup
from usage.selectors import floor_hour, metric_get, quota_context
from usage.services import usage_events_record, usage_track

from .conftest import admin_client_of, organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 27, 9, 30, tzinfo=UTC)
METRICS = {"SMS_SENT": "sum", "API_REQUEST": "count", "STORAGE_USED_MB": "max"}

event = st.fixed_dictionaries(
    {
        "metric": st.sampled_from(sorted(METRICS)),
        "quantity": st.integers(min_value=1, max_value=500).map(lambda n: Decimal(n) / 4),
        # minutes relative to now: up to 40 days back (some too old), up to 10 minutes ahead (some too early)
        "offset": st.integers(min_value=-40 * 24 * 60, max_value=10),
    }
)
operation = st.one_of(
    st.tuples(st.just("batch"), st.lists(event, min_size=1, max_size=6)),
    st.tuples(st.just("replay"), st.integers(min_value=0, max_value=50)),
    st.tuples(st.just("track"), st.sampled_from(sorted(METRICS)), st.integers(min_value=1, max_value=9)),
    st.tuples(st.just("clock"), st.integers(min_value=1, max_value=6 * 24 * 60)),
)


class Model:
    def __init__(self):
        self.events: dict[str, tuple[str, Decimal, datetime]] = {}
        self.sent: list[dict] = []

    def accept(self, key, metric, quantity, at, now) -> bool:
        if key in self.events or not (now - timedelta(days=35) <= at <= now + timedelta(minutes=5)):
            return False
        self.events[key] = (metric, quantity, at)
        return True

    def rollups(self) -> dict:
        out = defaultdict(lambda: [Decimal(0), 0, Decimal(0)])
        for metric, quantity, at in self.events.values():
            row = out[(metric, floor_hour(at))]
            row[0] += quantity
            row[1] += 1
            row[2] = max(row[2], quantity)
        return {k: tuple(v) for k, v in out.items()}

    def current(self, metric: str, now: datetime) -> Decimal:
        start, end = calendar_month(now)
        values = [q for m, q, at in self.events.values() if m == metric and start <= floor_hour(at) < end]
        if METRICS[metric] == "count":
            return Decimal(len(values))
        if METRICS[metric] == "max":
            return max(values, default=Decimal(0))
        return sum(values, Decimal(0))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation, min_size=1, max_size=12))
def test_rollups_and_get_usage_follow_a_plain_model(operations):
    org = organization_on(
        plan_with_limits("model", SMS_SENT=10**9, API_REQUEST=10**9, STORAGE_USED_MB=10**9), credits=10**6
    )
    model = Model()
    with time_machine.travel(START, tick=False) as clock:
        for n, op in enumerate(operations):
            now = datetime.now(tz=UTC)
            if op[0] == "batch":
                events = [
                    {
                        "metric": e["metric"],
                        "quantity": str(e["quantity"]),
                        "idempotency_key": f"k{n}-{i}",
                        "occurred_at": (now + timedelta(minutes=e["offset"])).isoformat(),
                    }
                    for i, e in enumerate(op[1])
                ]
                result = usage_events_record(organization=org, events=events)
                accepted = [
                    model.accept(
                        e["idempotency_key"],
                        e["metric"],
                        Decimal(e["quantity"]),
                        datetime.fromisoformat(e["occurred_at"]),
                        now,
                    )
                    for e in events
                ]
                assert result.accepted == sum(accepted)
                model.sent.extend(events)
            elif op[0] == "replay" and model.sent:
                replayed = model.sent[op[1] % len(model.sent)]
                result = usage_events_record(organization=org, events=[replayed])
                if replayed["idempotency_key"] in model.events:
                    assert (result.accepted, result.duplicates) == (0, 1)
                else:  # it was rejected the first time: checked again against the clock now
                    at = datetime.fromisoformat(replayed["occurred_at"])
                    assert result.accepted == int(
                        model.accept(
                            replayed["idempotency_key"],
                            replayed["metric"],
                            Decimal(replayed["quantity"]),
                            at,
                            now,
                        )
                    )
            elif op[0] == "track":
                usage_track(organization=org, metric=op[1], quantity=op[2], idempotency_key=f"t{n}")
                model.accept(f"t{n}", op[1], Decimal(op[2]), now, now)
            elif op[0] == "clock":
                clock.shift(timedelta(minutes=op[1]))

        now = datetime.now(tz=UTC)
        stored = {
            (r.metric.code, r.hour): (r.quantity, r.events, r.quantity_max)
            for r in UsageRollup.objects.filter(organization_id=org.pk).select_related("metric")
        }
        assert stored == model.rollups()
        body = admin_client_of(org).get(url(org)).json()
        shown = {row["metric"]: Decimal(row["current"]) for row in body["usage"] if row["metric"] in METRICS}
        assert shown == {metric: model.current(metric, now) for metric in METRICS}
        ctx = quota_context(organization=org, now=now)
        for metric in METRICS:
            info = metric_get(code=metric)
            (cached,) = counters.get_many([counters.key(org.pk, info.id, ctx.hour_from)])
            assert cached in (None, model.current(metric, now)), metric
