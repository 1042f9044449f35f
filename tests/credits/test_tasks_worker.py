"""The credits tasks through Redis and a real Celery worker process on the test database."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from credits.models import CreditAccount, CreditTransaction
from credits.services import credit_account_settings_update, credit_consume, credit_grant
from credits.tasks import credit_grants_expire_task, low_balance_alert_task, low_balance_alerts_task
from tests.billing.factories import MembershipFactory, OrganizationFactory, UserFactory
from tests.processes import celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_expiry_and_low_balance_tasks_in_a_real_worker(tmp_path):
    mail_dir = tmp_path / "mail"
    org = OrganizationFactory()
    MembershipFactory(organization=org, role="owner", user=UserFactory(username="owner@worker.test"))
    # Due in 5 s, not 1: a grant already due when it is made (a stall on a loaded machine) expires
    # at once, and the sweep below would find nothing. Starting the worker takes most of it.
    due = timezone.now() + timedelta(seconds=5)
    credit_grant(organization=org, amount=5, source="promo", expires_at=due)
    credit_grant(organization=org, amount=20, source="purchase", reference="pi_w")
    credit_account_settings_update(organization=org, low_balance_threshold=10)
    # django-environ drops one slash of the path: four make it absolute.
    with celery_worker(log_path=tmp_path / "worker.log", EMAIL_URL=f"filemail:///{mail_dir}"):
        wait_until(lambda: timezone.now() > due, timeout=30, what="the promo grant to be due")
        assert credit_grants_expire_task.delay().get(timeout=120) == 1
        assert credit_grants_expire_task.delay().get(timeout=120) == 0
        expired = CreditTransaction.objects.get(organization=org, kind="expire")
        assert expired.amount == Decimal(-5) and expired.actor == "system:expiry"

        credit_consume(organization=org, amount=15)  # 5 left: crosses 10, the alert is enqueued on commit
        account = CreditAccount.objects.get(organization=org)
        wait_until(
            lambda: mail_dir.exists() and any(mail_dir.iterdir()), timeout=120, what="the alert e-mail"
        )
        assert low_balance_alert_task.delay(account.pk).get(timeout=120) is False  # run again: no second mail
        assert low_balance_alerts_task.delay().get(timeout=120) == 0
    sent = [p.read_text() for p in mail_dir.iterdir()]
    assert len(sent) == 1
    assert "owner@worker.test" in sent[0] and "is 5 credits" in sent[0]
