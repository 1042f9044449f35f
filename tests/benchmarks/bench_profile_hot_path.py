"""Where one API call spends its time (`make bench ARGS=tests/benchmarks/bench_profile_hot_path.py`;
printed, never asserted): `POST /credits/consume` (and the service `credit_consume` alone:
`consume-service`), `POST /usage/track`, `GET /credits`, `GET /subscription` and `GET /usage` (a
subscribed organization; and the selectors those three call alone: `credits-service`, ...)
through Django's WSGI handler exactly as gunicorn calls it
(`request_started`, so persistent connections and their health check behave as served; every
middleware, DRF, the services) with an organization API key, DEBUG off.

For each path: the CPU time this process spends per call (no profiler; the client part is a few
dictionaries), the wall time, Python function calls per call (cProfile), every SQL statement and
every Redis round trip one call sends, then the cProfile tables.

BENCH_PROFILE_CALLS (400) calls per path after a warm-up; BENCH_PROFILE_LINES (22) lines each;
BENCH_PROFILE_DUMP, a directory, keeps each path's pstats file.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import os
import pstats
import time
import uuid

import psycopg
import pytest
import redis
from django.core.handlers.wsgi import WSGIHandler
from django.test import RequestFactory
from django.utils import timezone

from billing.models import Organization, Plan
from billing.selectors import subscription_summary_get
from billing.services import api_key_create, organization_create, subscription_create
from config.postgres import prepared
from credits.selectors import credit_summary_get
from credits.services import credit_consume, credit_grant
from usage.selectors import usage_summary_get

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = int(os.environ.get("BENCH_PROFILE_CALLS", "400"))
LINES = int(os.environ.get("BENCH_PROFILE_LINES", "22"))
# The product's per-caller limit (so the throttle's Redis leases show as they are served); the
# per-address one raised, since every path here calls from one address.
THROTTLES = {"anon": "120/min", "user": "6000/min", "address": "100000000/min"}


def seed_catalogue() -> None:
    """The credit prices and usage metrics the migrations seed (a transactional test before this
    one flushed them)."""
    import importlib

    from django.apps import apps

    from usage.selectors import catalog_cache_clear

    importlib.import_module("credits.migrations.0003_seed_catalogue").seed(apps, None)
    importlib.import_module("usage.migrations.0002_seed_metrics").seed(apps, None)
    catalog_cache_clear()


@contextlib.contextmanager
def sent():
    """Every SQL statement sent on any psycopg cursor or connection (Django's, the hot path's own,
    the health check's, the prepared reads' on the libpq handle) and every Redis round trip (a
    pipeline is one)."""
    out: dict[str, list[str]] = {"sql": [], "redis": []}
    original_cursor = psycopg.Cursor.execute
    original_redis = redis.connection.AbstractConnection.send_packed_command
    original_direct = prepared._direct  # the hot reads' statements on the libpq handle

    def execute(self, query, params=None, **kwargs):
        out["sql"].append(query if isinstance(query, str) else repr(query))
        return original_cursor(self, query, params, **kwargs)

    def send(self, command, check_health=True):
        chunks = command if isinstance(command, list) else [command]
        text = b"".join(c if isinstance(c, bytes) else bytes(c) for c in chunks)
        out["redis"].append(" ".join(text.decode("latin-1").split("\r\n"))[:150])
        return original_redis(self, command, check_health)

    def direct(conn, sql, params, many):
        out["sql"].append(sql)
        return original_direct(conn, sql, params, many)

    psycopg.Cursor.execute = execute
    redis.connection.AbstractConnection.send_packed_command = send
    prepared._direct = direct
    try:
        yield out
    finally:
        psycopg.Cursor.execute = original_cursor
        redis.connection.AbstractConnection.send_packed_command = original_redis
        prepared._direct = original_direct


class Caller:
    """Calls Django's WSGI application as a WSGI server does (request_started and
    request_finished fire: connections are checked and kept as in gunicorn)."""

    def __init__(self, key: str):
        self.app = WSGIHandler()
        self.factory = RequestFactory(HTTP_AUTHORIZATION=f"Bearer {key}")

    def __call__(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        if method == "POST":
            request = self.factory.post(path, json.dumps(body), content_type="application/json")
        else:
            request = self.factory.get(path)
        status: list[str] = []
        result = self.app(request.environ, lambda s, headers, exc_info=None: status.append(s))
        try:
            content = b"".join(result)
        finally:
            result.close()
        return int(status[0].split()[0]), content


def _setup(path: str, owner) -> tuple[Caller, str, Organization]:
    seed_catalogue()
    if path.removesuffix("-service") in ("subscription", "usage"):
        org = organization_create(name="Reader", billing_email="reader@bench.test", owner=owner)
        subscription_create(organization=org, plan="starter", interval="month", payment_method="pm_card_visa")
    else:
        plan, _ = Plan.objects.update_or_create(
            code="bench-profile", defaults={"name": "bench", "limits": {"SMS_SENT": 10**12}}
        )
        org = Organization.objects.create(
            name="profile", billing_email="p@bench.test", plan=plan, subscription_status="active"
        )
    credit_grant(organization=org, amount=10**7, source="purchase", reference="bench-profile")
    key = api_key_create(organization=org, name="bench").raw_key
    return Caller(key), f"/api/v1/organizations/{org.pk}", org


PATHS = ["consume", "consume-service", "credits", "subscription", "usage", "track"]
READ_SERVICES = {  # the selectors the read views call, as bench_hot_path.py's "service" rows
    "credits-service": lambda org: credit_summary_get(organization=org),
    "subscription-service": lambda org: subscription_summary_get(organization=org),
    "usage-service": lambda org: usage_summary_get(organization=org, now=timezone.now()),
}


@pytest.mark.parametrize("path", [*PATHS, *READ_SERVICES])
def test_profile(path, settings, catalogue, billing_owner):
    from django.conf import settings as dj

    settings.DEBUG = False
    settings.REST_FRAMEWORK = {**dj.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": THROTTLES}
    settings.THROTTLE_RATES = THROTTLES
    caller, base, org = _setup(path, billing_owner)

    def call(i: int):
        if path == "consume-service":  # the service alone, as bench_hot_path.py's "consume service"
            credit_consume(
                organization=org, amount=1, reason="bench", idempotency_key=f"s-{i}-{uuid.uuid4().hex}"
            )
        elif path in READ_SERVICES:
            READ_SERVICES[path](org)
        elif path == "consume":
            body = {"amount": 1, "reason": "bench", "idempotency_key": f"p-{i}-{uuid.uuid4().hex}"}
            status, content = caller("POST", f"{base}/credits/consume", body)
            assert status == 200, content
        elif path == "track":
            body = {"metric": "SMS_SENT", "idempotency_key": f"t-{i}-{uuid.uuid4().hex}"}
            status, content = caller("POST", f"{base}/usage/track", body)
            assert status == 201, content
        else:
            status, content = caller("GET", f"{base}/{path}")
            assert status == 200, content

    for i in range(20):
        call(-1 - i)
    with sent() as one:
        call(-100)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for i in range(CALLS):
        call(i)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    profile = cProfile.Profile()
    with sent() as many:
        profile.enable()
        for i in range(CALLS):
            call(CALLS + i)
        profile.disable()
    if os.environ.get("BENCH_PROFILE_DUMP"):  # a directory: one pstats file per path
        profile.dump_stats(os.path.join(os.environ["BENCH_PROFILE_DUMP"], f"{path}.pstats"))
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(LINES)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(LINES)
    print()
    print(
        f"=== {path}: {CALLS} calls, one client, load {os.getloadavg()[0]:.1f}: "
        f"CPU {1000 * cpu / CALLS:.2f} ms per call, wall {1000 * wall / CALLS:.2f} ms per call, "
        f"{stats.total_calls / CALLS:.0f} Python function calls per call, "
        f"{len(one['sql'])} SQL statements, {len(one['redis'])} Redis round trips "
        f"(over {CALLS} calls: {len(many['sql']) / CALLS:.2f} SQL statements and "
        f"{len(many['redis']) / CALLS:.3f} Redis round trips per call)"
    )
    for q in one["sql"]:
        print("    SQL  ", " ".join(q.split())[:150])
    for q in one["redis"]:
        print("    Redis", q)
    print(out.getvalue())
