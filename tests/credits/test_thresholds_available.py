"""The low-balance alert, its `low_balance` flag and the auto-refill trigger compare the available
balance (balance minus the active holds, issue 11 item 5: "everywhere a balance is checked"), on
the hot path and the general path alike: credits held for long work are spoken for."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail

from credits.models import CreditAccount, CreditPurchase, PurchaseKind
from credits.selectors import credit_summary_get
from credits.services import (
    auto_refill_set,
    credit_account_settings_update,
    credit_consume,
    credit_grant,
    credit_hold_create,
    credit_hold_release,
    credit_hold_settle,
    credit_holds_expire,
)
from credits.tasks import low_balance_alerts_task
from tests.billing.factories import MembershipFactory, UserFactory
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db
D = Decimal
HOUR = timedelta(hours=1)


def account(org) -> CreditAccount:
    return CreditAccount.objects.get(organization=org)


def refills(org):
    return CreditPurchase.objects.filter(organization=org, kind=PurchaseKind.AUTO_REFILL)


@pytest.fixture
def watched(organization):
    MembershipFactory(organization=organization, role="owner", user=UserFactory(username="own@example.com"))
    credit_grant(organization=organization, amount=100)
    credit_account_settings_update(organization=organization, low_balance_threshold=50)
    return organization


def test_a_consumption_that_leaves_the_available_balance_below_alerts(watched, after_commit):
    credit_hold_create(organization=watched, amount=45, idempotency_key="h1", expires_in=HOUR)  # 55 free
    assert mail.outbox == [] and not credit_summary_get(organization=watched).low_balance
    with after_commit():
        credit_consume(organization=watched, amount=10)  # balance 90 (above 50), available 45 (below)
    assert len(mail.outbox) == 1
    assert "is 45 credits (45 more are held for work in progress)" in mail.outbox[0].body
    summary = credit_summary_get(organization=watched)
    assert (summary.balance, summary.available, summary.low_balance) == (D(90), D(45), True)


def test_a_hold_arms_the_alert_and_its_release_re_arms_it(watched, after_commit):
    with after_commit():
        hold = credit_hold_create(organization=watched, amount=60, idempotency_key="h1", expires_in=HOUR).hold
    assert len(mail.outbox) == 1 and account(watched).low_balance_alerted_at is not None
    assert credit_summary_get(organization=watched).low_balance
    with after_commit():
        credit_hold_release(organization=watched, hold_id=hold.pk)
    assert account(watched).low_balance_alerted_at is None
    assert not credit_summary_get(organization=watched).low_balance
    with after_commit():
        credit_hold_create(organization=watched, amount=70, idempotency_key="h2", expires_in=HOUR)
    assert len(mail.outbox) == 2  # a second crossing, a second notice


def test_expiry_and_settle_below_the_estimate_recover_the_available_balance(watched, after_commit, clock):
    with after_commit():
        held = credit_hold_create(organization=watched, amount=60, idempotency_key="h1", expires_in=HOUR).hold
    assert account(watched).low_balance_alerted_at is not None
    credit_hold_settle(organization=watched, hold_id=held.pk, amount=5)  # 95 left, nothing held
    assert account(watched).low_balance_alerted_at is None
    credit_hold_create(organization=watched, amount=60, idempotency_key="h2", expires_in=HOUR)
    assert account(watched).low_balance_alerted_at is not None
    clock.shift(2 * HOUR)
    assert credit_holds_expire() == 1
    assert account(watched).low_balance_alerted_at is None and account(watched).held == 0


def test_the_beat_task_finds_accounts_below_on_the_available_balance(organization, after_commit):
    MembershipFactory(organization=organization, role="owner", user=UserFactory(username="o@example.com"))
    credit_grant(organization=organization, amount=100)
    credit_hold_create(organization=organization, amount=80, idempotency_key="h", expires_in=HOUR)
    credit_account_settings_update(organization=organization, low_balance_threshold=30)  # 20 free
    with after_commit():
        assert low_balance_alerts_task.apply().get() == 1
        assert low_balance_alerts_task.apply().get() == 0
    assert len(mail.outbox) == 1


@pytest.fixture
def refilling(organization):
    pack = CreditPackFactory(code="p1k", credits=D(1000), amount=1000)
    credit_grant(organization=organization, amount=100, source="purchase", reference="pi_seed")
    auto_refill_set(
        organization=organization,
        enabled=True,
        threshold=50,
        pack=pack,
        payment_method="pm_card_visa",
        max_refills_per_day=2,
    )
    return organization


def test_auto_refill_starts_when_holds_take_the_available_balance_below(
    refilling, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        credit_hold_create(organization=refilling, amount=30, idempotency_key="h1", expires_in=HOUR)
    assert callbacks == [] and not refills(refilling).exists()  # 70 free
    with django_capture_on_commit_callbacks() as callbacks:
        credit_consume(organization=refilling, amount=25)  # balance 75, available 45: refill
    assert refills(refilling).count() == 1 and len(callbacks) == 1


def test_a_hold_itself_starts_the_refill(refilling, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        credit_hold_create(organization=refilling, amount=60, idempotency_key="h1", expires_in=HOUR)
    assert refills(refilling).count() == 1 and len(callbacks) == 1
    assert account(refilling).balance == 100  # nothing consumed: the credits are only held


def test_the_dashboard_alert_and_the_api_flag_say_the_available_balance(watched, owner, client):
    credit_hold_create(organization=watched, amount=60, idempotency_key="h1", expires_in=HOUR)
    client.force_login(owner)
    html = client.get(f"/billing/{watched.pk}/").content.decode()
    assert (
        "Your available credits (40, with 60 held for work in progress) are below your alert threshold (50)"
        in html
    )
    body = client.get(f"/api/v1/organizations/{watched.pk}/credits").json()
    assert (body["balance"], body["held"], body["available"], body["low_balance"]) == (
        "100",
        "60",
        "40",
        True,
    )
