"""Operational views: the health check and the landing page."""

from __future__ import annotations

import time

from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import cache as resilient_cache
from config import task_outbox, throttling
from config.celery import app as celery_app


def _timed(check) -> dict:
    started = time.perf_counter()
    try:
        detail = check() or {}
        ok = True
    except Exception as exc:  # a failing dependency is reported, not raised
        detail, ok = {"error": f"{type(exc).__name__}: {exc}"[:300]}, False
    return {"ok": ok, "latency_ms": round((time.perf_counter() - started) * 1000, 1), **detail}


def _database() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {}


def _redis() -> dict:
    client = cache._cache.get_client(write=True)  # the redis-py client behind the default cache
    if not client.ping():
        raise RuntimeError("PING failed")
    return {}


def _celery() -> dict:
    replies = celery_app.control.ping(timeout=1.0)
    workers = sorted(name for reply in replies for name in reply)
    if not workers:
        raise RuntimeError("no Celery worker answered a ping within 1s")
    return {"workers": workers}


def _degradation() -> dict:
    """What this process did instead of failing while a dependency was away (counters since start)."""
    try:
        pending = task_outbox.task_outbox_pending()
    except Exception:  # the database is what is down: reported by its own check
        pending = None
    return {
        "throttle": {**throttling.STATS, "counting_locally": throttling.in_outage()},
        "cache_errors": resilient_cache.STATS["errors"],
        "tasks_kept": task_outbox.STATS["kept"],
        "task_outbox_pending": pending,
    }


@never_cache
@require_GET
def healthz(request):
    """200 when the database, Redis and at least one Celery worker answer; 503 otherwise, with the
    parts that are down in `down` (the API keeps serving what PostgreSQL can while Redis is away)."""
    checks = {"database": _timed(_database), "redis": _timed(_redis)}
    if checks["redis"]["ok"]:
        checks["celery"] = _timed(_celery)
    else:  # no broker: a ping would only wait for its connection retries
        checks["celery"] = {"ok": False, "latency_ms": 0.0, "error": "the broker (Redis) is down"}
    down = [name for name, check in checks.items() if not check["ok"]]
    return JsonResponse(
        {
            "status": "unhealthy" if down else "ok",
            "down": down,
            "checks": checks,
            "degradation": _degradation(),
        },
        status=503 if down else 200,
    )


def home(request):
    return render(request, "home.html")
