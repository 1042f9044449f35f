"""Reservations: hold, settle below / at / above the estimate, release, expiry, replays; the
available balance (balance - held) everywhere a balance is checked or shown."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum
from django.utils import timezone

from credits.exceptions import CreditHoldClosed, InsufficientCredits
from credits.models import CreditAccount, CreditHold, CreditTransaction
from credits.services import credit_consume
from usage.exceptions import QuotaExceeded
from usage.models import UsageEvent
from usage.services import (
    usage_reservation_create,
    usage_reservation_release,
    usage_reservation_settle,
    usage_reservations_expire,
    usage_track,
)

from .conftest import admin_client_of, organization_on, plan_with_limits, url

pytestmark = pytest.mark.django_db
D = Decimal
METRIC = "AI_MESSAGE_GENERATED"  # 5 credits per unit


def account(org) -> CreditAccount:
    return CreditAccount.objects.get(organization=org)


def reserve(org, quantity, key="r", **kwargs):
    return usage_reservation_create(
        organization=org, metric=METRIC, estimated_quantity=quantity, idempotency_key=key, **kwargs
    )


def used(org) -> Decimal:
    return UsageEvent.objects.filter(organization_id=org.pk).aggregate(q=Sum("quantity"))["q"] or D(0)


def test_a_hold_is_not_spendable_and_shows_in_get_credits():
    org = organization_on(plan_with_limits(**{METRIC: None}), credits=100)
    reserve(org, 12)  # 60 credits
    assert (account(org).balance, account(org).held) == (100, 60)
    with pytest.raises(InsufficientCredits) as refused:
        credit_consume(organization=org, amount=41)  # 40 are available
    assert refused.value.as_body()["available"] == "40"
    credit_consume(organization=org, amount=40)
    body = admin_client_of(org).get(f"/api/v1/organizations/{org.pk}/credits").json()
    assert (body["balance"], body["held"], body["available"]) == ("60", "60", "0")


@pytest.mark.parametrize(("actual", "consumed", "balance"), [(2, 10, 90), (4, 20, 80), (0, 0, 100)])
def test_settle_at_or_below_the_estimate_consumes_the_actual_and_releases_the_rest(actual, consumed, balance):
    org = organization_on(plan_with_limits(**{METRIC: 100}), credits=100)
    hold = reserve(org, 4).hold
    result = usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=actual)
    assert result.hold.status == "settled" and result.hold.consumed == consumed
    assert result.released == 20 - consumed
    assert (account(org).balance, account(org).held) == (balance, 0)
    assert used(org) == actual
    assert (result.event_id is not None) == (actual > 0)
    row = {r["metric"]: r for r in admin_client_of(org).get(url(org)).json()["usage"]}[METRIC]
    assert row["current"] == str(actual)


def test_settle_above_the_estimate_takes_the_extra_when_it_is_there():
    org = organization_on(plan_with_limits(**{METRIC: 100}), credits=100)
    hold = reserve(org, 4).hold
    result = usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=6)
    assert result.hold.consumed == 30 and account(org).balance == 70 and account(org).held == 0
    assert used(org) == 6


def test_settle_above_what_the_balance_allows_refuses_and_keeps_the_hold():
    org = organization_on(plan_with_limits(**{METRIC: 100}), credits=30)
    hold = reserve(org, 4).hold  # 20 held, 10 free
    with pytest.raises(InsufficientCredits):
        usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=7)  # 35 > 30
    hold.refresh_from_db()
    assert hold.status == "held" and account(org).held == 20 and account(org).balance == 30 and used(org) == 0
    usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=6)  # 30: just fits
    assert account(org).balance == 0 and account(org).held == 0


def test_settle_above_the_quota_refuses_and_keeps_the_hold():
    org = organization_on(plan_with_limits(**{METRIC: 5}), credits=100)
    hold = reserve(org, 4).hold
    with pytest.raises(QuotaExceeded):
        usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=6)
    assert CreditHold.objects.get(pk=hold.pk).status == "held" and used(org) == 0


def test_a_reservation_holds_quota_too():
    org = organization_on(plan_with_limits(**{METRIC: 5}), credits=100)
    reserve(org, 4)
    with pytest.raises(QuotaExceeded) as refused:
        usage_track(organization=org, metric=METRIC, quantity=2, idempotency_key="t")
    assert refused.value.current == 4
    usage_track(organization=org, metric=METRIC, quantity=1, idempotency_key="t2")


def test_release_gives_everything_back_and_a_replay_changes_nothing():
    org = organization_on(plan_with_limits(**{METRIC: 5}), credits=100)
    hold = reserve(org, 4).hold
    first = usage_reservation_release(organization=org, reservation_id=hold.pk)
    again = usage_reservation_release(organization=org, reservation_id=hold.pk)
    assert first.hold.status == again.hold.status == "released" and again.replayed
    assert (account(org).balance, account(org).held) == (100, 0)
    usage_track(organization=org, metric=METRIC, quantity=5, idempotency_key="full")  # the quota is back
    with pytest.raises(CreditHoldClosed):
        usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=1)


def test_a_replayed_settle_is_one_effect_and_another_quantity_conflicts():
    org = organization_on(plan_with_limits(**{METRIC: 100}), credits=100)
    hold = reserve(org, 4).hold
    client = admin_client_of(org)
    path = url(org, f"/reservations/{hold.pk}/settle")
    first = client.post(path, {"actual_quantity": 3}, format="json")
    again = client.post(path, {"actual_quantity": 3}, format="json")
    assert first.status_code == again.status_code == 200
    assert again["Idempotent-Replayed"] == "true" and again.json()["event_id"] == first.json()["event_id"]
    assert first.json()["credits_consumed"] == "15" and first.json()["credits_released"] == "5"
    assert client.post(path, {"actual_quantity": 2}, format="json").status_code == 409
    assert account(org).balance == 85 and used(org) == 3
    assert CreditTransaction.objects.filter(organization_id=org.pk, kind="consume").count() == 1
    assert client.post(url(org, f"/reservations/{hold.pk}/release")).status_code == 409


def test_expiry_gives_the_credits_and_quota_back():
    org = organization_on(plan_with_limits(**{METRIC: 5}), credits=100)
    hold = reserve(org, 4, expires_in=timedelta(minutes=2)).hold
    assert usage_reservations_expire() == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=3), tick=False):
        with pytest.raises(CreditHoldClosed):
            usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=1)
        assert usage_reservations_expire() == 1
        assert usage_reservations_expire() == 0
        assert CreditHold.objects.get(pk=hold.pk).status == "expired"
        assert (account(org).balance, account(org).held) == (100, 0)
        usage_track(organization=org, metric=METRIC, quantity=5, idempotency_key="after-expiry")


def test_the_reservations_api(organization):
    org = organization_on(plan_with_limits(**{METRIC: 100}), credits=100)
    client = admin_client_of(org)
    created = client.post(
        url(org, "/reservations"),
        {"metric": METRIC, "estimated_quantity": "2.5", "idempotency_key": "job-1", "expires_in": 600},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["metric"] == METRIC and body["credits_held"] == "12.5" and body["status"] == "held"
    assert body["estimated_quantity"] == "2.5" and body["available"] == "87.5"
    replay = client.post(
        url(org, "/reservations"),
        {"metric": METRIC, "estimated_quantity": "2.5", "idempotency_key": "job-1", "expires_in": 600},
        format="json",
    )
    assert replay.status_code == 200 and replay.json()["id"] == body["id"]
    listed = client.get(url(org, "/reservations")).json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == body["id"]
    assert client.get(url(org, "/reservations?status=settled")).json()["count"] == 0
    broke = client.post(
        url(org, "/reservations"), {"metric": METRIC, "estimated_quantity": 20, "idempotency_key": "job-2"}
    )
    assert broke.status_code == 402 and broke.json()["error"] == "insufficient_credits"
    over = client.post(
        url(org, "/reservations"), {"metric": METRIC, "estimated_quantity": 98, "idempotency_key": "job-3"}
    )
    assert over.status_code == 402 and over.json()["error"] == "quota_exceeded"
    missing = client.post(
        url(org, "/reservations/00000000-0000-4000-8000-000000000000/settle"), {"actual_quantity": 1}
    )
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    for bad in (
        {},
        {"metric": METRIC},
        {"metric": METRIC, "estimated_quantity": -1, "idempotency_key": "x"},
        {"metric": METRIC, "estimated_quantity": 1, "idempotency_key": "x", "expires_in": 5},
        {"metric": "NOPE", "estimated_quantity": 1, "idempotency_key": "x"},
    ):
        response = client.post(url(org, "/reservations"), bad, format="json")
        assert response.status_code == 400, (bad, response.content)
    # Another organization's reservation is a 404.
    other = organization_on(plan_with_limits(**{METRIC: 100}), credits=100)
    theirs = reserve(other, 1).hold
    assert client.post(url(org, f"/reservations/{theirs.pk}/release")).status_code == 404
    assert CreditHold.objects.get(pk=theirs.pk).status == "held"


def test_a_count_metric_settled_at_zero_gives_its_quota_back():
    org = organization_on(plan_with_limits(WEBHOOK_TRIGGERED=1), credits=100)
    hold = usage_reservation_create(
        organization=org, metric="WEBHOOK_TRIGGERED", estimated_quantity=1, idempotency_key="w"
    ).hold
    with pytest.raises(QuotaExceeded):
        usage_track(organization=org, metric="WEBHOOK_TRIGGERED", idempotency_key="t1")
    usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=0)
    usage_track(organization=org, metric="WEBHOOK_TRIGGERED", idempotency_key="t2")


def test_a_max_metric_reservation_is_checked_at_settle_like_a_track():
    org = organization_on(plan_with_limits(STORAGE_USED_MB=100), credits=100)
    hold = usage_reservation_create(
        organization=org, metric="STORAGE_USED_MB", estimated_quantity=150, idempotency_key="s"
    ).hold  # a max metric's quota cannot be set aside: only the credits are held
    with pytest.raises(QuotaExceeded):
        usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=120)
    assert CreditHold.objects.get(pk=hold.pk).status == "held"
    result = usage_reservation_settle(organization=org, reservation_id=hold.pk, actual_quantity=80)
    assert result.hold.consumed == D("1.6") and account(org).held == 0
