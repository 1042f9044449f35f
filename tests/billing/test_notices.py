import pytest
from django.core import mail

from billing.models import BillingNotice, Role
from billing.services import billing_notice_queue, billing_notice_send
from tests.billing.factories import MembershipFactory, OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    organization = OrganizationFactory(name="Acme", billing_email="ap@acme.test")
    MembershipFactory(organization=organization, role=Role.OWNER, user__username="boss@acme.test")
    MembershipFactory(organization=organization, role=Role.MEMBER, user__username="dev@acme.test")
    return organization


@pytest.mark.parametrize(
    ("kind", "context", "subject_part", "body_part"),
    [
        (BillingNotice.Kind.TRIAL_ENDING, {"plan_name": "Starter"}, "trial", "ends in three days"),
        (
            BillingNotice.Kind.PAYMENT_FAILED,
            {
                "hosted_invoice_url": "https://pay.test/in_1",
                "amount_due": 2900,
                "currency": "usd",
                "next_payment_attempt": 123,
            },
            "Payment failed",
            "https://pay.test/in_1",
        ),
        (BillingNotice.Kind.SUBSCRIPTION_CANCELED, {}, "has ended", "Free plan"),
    ],
)
def test_each_notice_sends_html_and_text_once(
    org, celery_eager, django_capture_on_commit_callbacks, kind, context, subject_part, body_part
):
    with django_capture_on_commit_callbacks(execute=True):
        assert billing_notice_queue(organization=org, kind=kind, key=f"{kind}:x", context=context) is True
        assert billing_notice_queue(organization=org, kind=kind, key=f"{kind}:x", context=context) is False
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert subject_part.lower() in message.subject.lower()
    assert body_part in message.body
    html = message.alternatives[0][0]
    assert body_part in html and "<html" in html
    assert set(message.to) == {"ap@acme.test", "boss@acme.test"}  # billing e-mail and owner, not members
    assert "http://" in message.body  # a link to act on it
    notice = BillingNotice.objects.get(key=f"{kind}:x")
    assert notice.sent_at is not None
    assert billing_notice_send(notice_id=notice.pk) is False  # a second run sends nothing
    assert len(mail.outbox) == 1
