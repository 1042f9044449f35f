"""Where one API call spends its time (`make bench ARGS=tests/benchmarks/bench_profile_hot_path.py`;
printed, never asserted): cProfile of `POST /credits/consume`, `POST /usage/track` and
`GET /credits` through Django's full WSGI handler (every middleware, DRF, the services) with an
organization API key, DEBUG off, plus the SQL statements one call sends.

BENCH_PROFILE_CALLS (400) calls per path after a warm-up; BENCH_PROFILE_LINES (22) lines each.
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
from django.test import Client
from django.test.utils import override_settings

from billing.models import Organization, Plan
from billing.services import api_key_create
from credits.services import credit_grant

pytestmark = pytest.mark.django_db(transaction=True)

CALLS = int(os.environ.get("BENCH_PROFILE_CALLS", "400"))
LINES = int(os.environ.get("BENCH_PROFILE_LINES", "22"))
THROTTLES_OFF = {"anon": "100000000/min", "user": "100000000/min"}


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
def statements():
    """Every statement sent on any psycopg cursor (Django's and the hot path's own)."""
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        sent.append(query if isinstance(query, str) else repr(query))
        return original(self, query, params, **kwargs)

    psycopg.Cursor.execute = execute
    try:
        yield sent
    finally:
        psycopg.Cursor.execute = original


def _client_and_org():
    seed_catalogue()
    plan, _ = Plan.objects.update_or_create(
        code="bench-profile", defaults={"name": "bench", "limits": {"SMS_SENT": 10**12}}
    )
    org = Organization.objects.create(
        name="profile", billing_email="p@bench.test", plan=plan, subscription_status="active"
    )
    credit_grant(organization=org, amount=10**7, source="purchase", reference="bench-profile")
    key = api_key_create(organization=org, name="bench").raw_key
    return Client(HTTP_AUTHORIZATION=f"Bearer {key}"), org


@pytest.mark.parametrize(
    "path",
    ["consume", "track", "credits"],
)
def test_profile(path, settings):
    from django.conf import settings as dj

    settings.DEBUG = False
    settings.REST_FRAMEWORK = {**dj.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": THROTTLES_OFF}
    client, org = _client_and_org()
    base = f"/api/v1/organizations/{org.pk}"

    def call(i: int):
        if path == "consume":
            body = {"amount": 1, "reason": "bench", "idempotency_key": f"p-{i}-{uuid.uuid4().hex}"}
            response = client.post(
                f"{base}/credits/consume", json.dumps(body), content_type="application/json"
            )
            assert response.status_code == 200, response.content
        elif path == "track":
            body = {"metric": "SMS_SENT", "idempotency_key": f"t-{i}-{uuid.uuid4().hex}"}
            response = client.post(f"{base}/usage/track", json.dumps(body), content_type="application/json")
            assert response.status_code == 201, response.content
        else:
            response = client.get(f"{base}/credits")
            assert response.status_code == 200, response.content

    with override_settings():
        for i in range(20):
            call(-1 - i)
        with statements() as sent:
            call(-100)
        profile = cProfile.Profile()
        start = time.perf_counter()
        profile.enable()
        for i in range(CALLS):
            call(i)
        profile.disable()
        seconds = time.perf_counter() - start
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(LINES)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(LINES)
    print()
    print(f"=== {path}: {CALLS} calls, {1000 * seconds / CALLS:.2f} ms per call under cProfile (one client)")
    print(f"SQL statements per call: {len(sent)}")
    for q in sent:
        print("   ", " ".join(q.split())[:150])
    print(out.getvalue())
