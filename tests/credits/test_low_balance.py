from decimal import Decimal

import pytest
from django.core import mail

from credits.models import CreditAccount
from credits.services import credit_account_settings_update, credit_consume, credit_grant
from credits.tasks import low_balance_alerts_task
from tests.billing.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def watched(organization):
    MembershipFactory(organization=organization, role="owner", user=UserFactory(username="own@example.com"))
    credit_grant(organization=organization, amount=100)
    credit_account_settings_update(organization=organization, low_balance_threshold=50)
    return organization


def test_one_email_per_crossing(watched, after_commit):
    with after_commit():
        credit_consume(organization=watched, amount=40)  # 60
    assert mail.outbox == []
    with after_commit():
        credit_consume(organization=watched, amount=20)  # 40: crossed
        credit_consume(organization=watched, amount=5)  # 35: still below, same crossing
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [watched.billing_email, "own@example.com"] and "low" in message.subject
    # The mail says the balance when it is sent (both consumptions ran before the block ended).
    assert "is 35 credits" in message.body and "threshold of 50" in message.body
    assert "<strong>35</strong>" in message.alternatives[0][0]

    with after_commit():
        credit_grant(organization=watched, amount=100)  # 140: recovered, re-armed
        credit_consume(organization=watched, amount=100)  # 40: second crossing
    assert len(mail.outbox) == 2


def test_the_alert_task_sends_once_even_if_run_twice(watched, after_commit):
    from credits.tasks import low_balance_alert_task

    with after_commit():
        credit_consume(organization=watched, amount=60)
    account = CreditAccount.objects.get(organization=watched)
    assert low_balance_alert_task.apply(args=[account.pk]).get() is False
    assert len(mail.outbox) == 1


def test_beat_task_alerts_accounts_a_new_threshold_puts_below(organization, after_commit):
    MembershipFactory(organization=organization, role="owner", user=UserFactory(username="o2@example.com"))
    credit_grant(organization=organization, amount=10)
    credit_account_settings_update(organization=organization, low_balance_threshold=25)
    with after_commit():
        assert low_balance_alerts_task.apply().get() == 1
        assert low_balance_alerts_task.apply().get() == 0
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [organization.billing_email, "o2@example.com"]


def test_no_threshold_no_alert(organization, after_commit):
    credit_grant(organization=organization, amount=10)
    with after_commit():
        credit_consume(organization=organization, amount=10)
        low_balance_alerts_task.apply()
    assert mail.outbox == []


def test_alert_goes_to_billing_email_without_owners(organization, after_commit):
    credit_grant(organization=organization, amount=10)
    credit_account_settings_update(organization=organization, low_balance_threshold=5)
    with after_commit():
        credit_consume(organization=organization, amount=6)
    assert mail.outbox[0].to == [organization.billing_email]
