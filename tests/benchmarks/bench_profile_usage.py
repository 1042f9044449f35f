"""Where the usage API spends its time (`make bench ARGS=tests/benchmarks/bench_profile_usage.py`;
printed, never asserted): cProfile of `POST /usage/events` (batches of 100 and 1,000),
`POST /usage/track` and `GET /usage` through Django's WSGI handler as a WSGI server calls it
(every middleware, DRF, the services; `bench_profile_hot_path.Caller`) with an organization API
key, DEBUG off, the product's per-caller throttle, plus the SQL statements and Redis round trips
per call, the Python function calls per call, and the wall and CPU time per call without the
profiler.

BENCH_PROFILE_CALLS (200) calls per path (events: 20,000 events per batch size) after a warm-up;
BENCH_PROFILE_LINES (25) lines each.
"""

from __future__ import annotations

import cProfile
import io
import json
import os
import pstats
import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.models import Organization, Plan
from billing.services import api_key_create
from credits.services import credit_grant
from tests.benchmarks.bench_profile_hot_path import THROTTLES, Caller, seed_catalogue, sent
from usage import counters

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = int(os.environ.get("BENCH_PROFILE_CALLS", "200"))
LINES = int(os.environ.get("BENCH_PROFILE_LINES", "25"))
METRICS = ["SMS_SENT", "SMS_RECEIVED", "API_REQUEST", "AI_TOKENS", "CONTACT_CREATED"]


def events_body(prefix: str, count: int) -> bytes:
    now = timezone.now()
    return json.dumps(
        {
            "events": [
                {
                    "metric": METRICS[i % len(METRICS)],
                    "quantity": 1 + i % 4,
                    "idempotency_key": f"{prefix}-{i}",
                    "occurred_at": (now - timedelta(minutes=i % 2880)).isoformat(),
                    "user_id": f"u{i % 50}",
                    "resource_type": "message",
                    "resource_id": f"r{i}",
                    "dimensions": {"platform": ("ios", "android", "web")[i % 3]},
                }
                for i in range(count)
            ]
        }
    ).encode()


class BodyCaller(Caller):
    """`Caller` with the body given as bytes (built before the clock starts)."""

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        request = self.factory.post(path, body, content_type="application/json")
        status: list[str] = []
        result = self.app(request.environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            content = b"".join(result)
        finally:
            result.close()
        return int(status[0].split()[0]), content


@pytest.mark.parametrize("path", ["events100", "events1000", "events1", "track", "summary"])
def test_profile_usage(path, settings):
    from django.conf import settings as dj

    settings.DEBUG = False
    settings.REST_FRAMEWORK = {**dj.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": THROTTLES}
    settings.THROTTLE_RATES = THROTTLES
    seed_catalogue()
    counters.reset()
    plan, _ = Plan.objects.update_or_create(
        code="bench-profile-usage", defaults={"name": "bench", "limits": {m: 10**12 for m in METRICS}}
    )
    org = Organization.objects.create(
        name="profile", billing_email="p@bench.test", plan=plan, subscription_status="active"
    )
    credit_grant(organization=org, amount=10**7, source="purchase", reference="bench-profile")
    caller = BodyCaller(api_key_create(organization=org, name="bench").raw_key)
    base = f"/api/v1/organizations/{org.pk}"
    batch = {"events100": 100, "events1000": 1000, "events1": 1}.get(path, 0)
    calls = max(4, min(CALLS, 20_000 // batch)) if batch else CALLS
    warm = 5 if batch else 20
    bodies = (
        [events_body(f"{path}-{i}-{uuid.uuid4().hex[:8]}", batch) for i in range(2 * calls + warm + 1)]
        if batch
        else []
    )

    def call(i: int):
        if batch:
            status, content = caller.post(f"{base}/usage/events", bodies[i])
            assert status == 200, content[:300]
            assert json.loads(content)["accepted"] == batch, content[:300]
        elif path == "track":
            body = {"metric": "SMS_SENT", "idempotency_key": f"t-{i}-{uuid.uuid4().hex}"}
            status, content = caller("POST", f"{base}/usage/track", body)
            assert status == 201, content
        else:
            status, content = caller("GET", f"{base}/usage")
            assert status == 200, content

    for i in range(warm):
        call(2 * calls + i)
    with sent() as one:
        call(2 * calls + warm)
    # Without the profiler: wall and CPU of this process (Django, no database) per call.
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        call(i)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    # CPU time, not wall: the database's answers are not this process's cost.
    profile = cProfile.Profile(time.process_time)
    with sent() as many:
        profile.enable()
        for i in range(calls, 2 * calls):
            call(i)
        profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(LINES)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(LINES)
    print()
    per = f", {1e6 * cpu / (calls * batch):.1f} us CPU per event" if batch else ""
    print(
        f"=== {path}: {calls} calls unprofiled, one client, load {os.getloadavg()[0]:.1f}: "
        f"{1000 * wall / calls:.2f} ms wall, {1000 * cpu / calls:.2f} ms CPU per call{per}; "
        f"{stats.total_calls / calls:.0f} Python function calls per call; "
        f"{len(one['sql'])} SQL statements, {len(one['redis'])} Redis round trips in one call "
        f"(over {calls}: {len(many['sql']) / calls:.2f} SQL and "
        f"{len(many['redis']) / calls:.3f} Redis per call)"
    )
    for q in one["sql"]:
        print("    SQL  ", " ".join(q.split())[:150])
    for q in one["redis"]:
        print("    Redis", q)
    print(out.getvalue())


@pytest.mark.parametrize("batch", [1, 100, 1000])
def test_gunicorn_cpu_per_request(batch, monkeypatch):
    """Server CPU (user and system, all workers) per `POST /usage/events` on the bench's gunicorn,
    one client sending one request at a time after a warm-up, against this process's CPU for the
    same requests through the test client above."""
    import psutil

    from tests.benchmarks.bench_usage import Connection, Server, http_post

    seed_catalogue()
    counters.reset()
    plan, _ = Plan.objects.update_or_create(
        code="bench-profile-usage", defaults={"name": "bench", "limits": {m: 10**12 for m in METRICS}}
    )
    org = Organization.objects.create(
        name="gunicorn", billing_email="g@bench.test", plan=plan, subscription_status="active"
    )
    key = api_key_create(organization=org, name="bench").raw_key
    calls = min(400, max(10, 20_000 // batch))
    warm = 20  # every worker thread sees a few requests first
    bodies = [events_body(f"g{batch}-{i}-{uuid.uuid4().hex[:8]}", batch) for i in range(calls + warm)]
    # BENCH_PROFILE_GUNICORN=<file>: the worker runs under cProfile (tests/benchmarks/profiled_wsgi.py)
    # and writes its top functions there.
    monkeypatch.setenv("BENCH_GUNICORN_WORKERS", "1")
    server = Server()
    try:
        conn = Connection("127.0.0.1", server.port, timeout=120)
        target = f"/api/v1/organizations/{org.pk}/usage/events"

        def times():
            procs = [
                psutil.Process(server.proc.pid),
                *psutil.Process(server.proc.pid).children(recursive=True),
            ]
            return [sum(getattr(p.cpu_times(), f) for p in procs) for f in ("user", "system")]

        for body in bodies[:warm]:
            assert http_post(conn, target, body, key)[0] == 200
        before, wall = times(), time.perf_counter()
        for body in bodies[warm:]:
            status, answer = http_post(conn, target, body, key)
            assert status == 200, answer[:300]
        after, wall = times(), time.perf_counter() - wall
        conn.close()
    finally:
        server.stop()
    user, system = ((a - b) * 1000 / calls for a, b in zip(after, before, strict=True))
    per_event = 1000 * (user + system) / batch
    print(
        f"\n=== gunicorn (1 gthread worker), batch {batch}: {1000 * wall / calls:.1f} ms wall, "
        f"{user:.1f} ms user + {system:.1f} ms system CPU per request ({per_event:.1f} us an event), "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    if os.environ.get("BENCH_PROFILE_GUNICORN"):
        with open(os.environ["BENCH_PROFILE_GUNICORN"]) as f:
            print(f.read()[:12000])
