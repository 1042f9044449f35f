"""Concurrent tracks and reservations on PostgreSQL: real threads, one connection each, a barrier."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from credits.exceptions import InsufficientCredits
from credits.models import CreditAccount, CreditHold, CreditTransaction
from usage import counters
from usage.exceptions import QuotaExceeded
from usage.models import UsageEvent, UsageRollup
from usage.selectors import metric_get, quota_context, usage_current
from usage.services import usage_reservation_create, usage_track

from .conftest import organization_on, plan_with_limits

pytestmark = pytest.mark.django_db(transaction=True)


def run_together(count: int, work) -> list[tuple[str, object]]:
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = ("ok", work(i))
        except Exception as exc:
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def _check(org, results, *, ok: int, refused_with: type, metric: str = "SMS_SENT"):
    good = [r for kind, r in results if kind == "ok"]
    errors = [r for kind, r in results if kind == "error"]
    assert len(good) == ok, errors[:3]
    assert len(errors) == len(results) - ok and all(isinstance(e, refused_with) for e in errors), errors[:3]
    assert UsageEvent.objects.filter(organization_id=org.pk).count() == ok
    assert UsageRollup.objects.filter(organization_id=org.pk).aggregate(e=Sum("events"))["e"] == ok
    assert CreditTransaction.objects.filter(organization_id=org.pk, kind="consume").count() == ok
    return errors


def test_forty_concurrent_tracks_against_a_limit_of_25_record_exactly_25():
    org = organization_on(plan_with_limits(SMS_SENT=25), credits=1000)
    results = run_together(
        40, lambda i: usage_track(organization=org, metric="SMS_SENT", idempotency_key=f"t{i}")
    )
    errors = _check(org, results, ok=25, refused_with=QuotaExceeded)
    body = errors[0].as_body()
    assert (
        body["error"] == "quota_exceeded"
        and body["quota"]["limit"] == "25"
        and body["quota"]["current"] == "25"
    )
    assert body["upgrade_url"].endswith(f"/billing/{org.pk}/upgrade/")
    assert CreditAccount.objects.get(organization=org).balance == 1000 - 25


def test_forty_concurrent_tracks_against_credits_for_25_record_exactly_25():
    org = organization_on(plan_with_limits(SMS_SENT=1000), credits=25)  # SMS_SENT costs 1 credit
    results = run_together(
        40, lambda i: usage_track(organization=org, metric="SMS_SENT", idempotency_key=f"t{i}")
    )
    errors = _check(org, results, ok=25, refused_with=InsufficientCredits)
    assert errors[0].as_body()["error"] == "insufficient_credits"
    assert CreditAccount.objects.get(organization=org).balance == 0
    # The refused ones did not stay on the quota counter: it says 25, as the database does.
    ctx = quota_context(organization=org, now=timezone.now())
    metric = metric_get(code="SMS_SENT")
    assert counters.get_many([counters.key(org.pk, metric.id, ctx.hour_from)]) == [Decimal(25)]
    assert (
        usage_current(organization_id=org.pk, metric=metric, hour_from=ctx.hour_from, hour_to=ctx.hour_to)
        == 25
    )


def test_twenty_concurrent_reservations_against_a_balance_that_covers_ten_hold_ten():
    org = organization_on(plan_with_limits(AI_MESSAGE_GENERATED=None), credits=50)  # 5 credits each
    results = run_together(
        20,
        lambda i: usage_reservation_create(
            organization=org, metric="AI_MESSAGE_GENERATED", estimated_quantity=1, idempotency_key=f"r{i}"
        ),
    )
    good = [r for kind, r in results if kind == "ok"]
    errors = [r for kind, r in results if kind == "error"]
    assert len(good) == 10 and len(errors) == 10
    assert all(isinstance(e, InsufficientCredits) for e in errors), errors[:3]
    account = CreditAccount.objects.get(organization=org)
    assert account.balance == 50 and account.held == 50
    assert CreditHold.objects.filter(organization=org, status="held").count() == 10
    assert CreditHold.objects.filter(organization=org).aggregate(a=Sum("amount"))["a"] == Decimal(50)
