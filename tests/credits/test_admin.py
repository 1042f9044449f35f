from decimal import Decimal

import pytest
from django.contrib.messages import get_messages

from credits.models import CreditAccount, CreditTransaction
from credits.services import credit_consume, credit_grant
from tests.billing.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db
D = Decimal


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(user)
    return user


def test_ledger_and_grants_are_read_only_with_filters(client, staff, organization):
    credit_grant(organization=organization, amount=10, source="promo")
    row = credit_consume(organization=organization, amount=3).transaction
    page = client.get("/admin/credits/credittransaction/", {"kind": "consume"})
    assert page.status_code == 200 and b"-3" in page.content
    assert client.get("/admin/credits/credittransaction/", {"grant__source": "promo"}).status_code == 200
    assert (
        client.get(
            "/admin/credits/creditgrant/", {"source": "promo", "organization__id__exact": organization.pk}
        ).status_code
        == 200
    )
    detail = client.get(f"/admin/credits/credittransaction/{row.pk}/change/")
    assert detail.status_code == 200 and b'name="amount"' not in detail.content
    assert client.get("/admin/credits/credittransaction/add/").status_code == 403
    assert (
        client.post(f"/admin/credits/credittransaction/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    )
    assert CreditTransaction.objects.filter(pk=row.pk).exists()


def test_grant_action_asks_for_a_reason_then_records_the_staff_user(client, staff):
    orgs = [OrganizationFactory(), OrganizationFactory()]
    for org in orgs:
        credit_grant(organization=org, amount=1)
    accounts = [str(a.pk) for a in CreditAccount.objects.filter(organization__in=orgs)]
    form = client.post(
        "/admin/credits/creditaccount/", {"action": "grant_credits", "_selected_action": accounts}
    )
    assert form.status_code == 200 and b'name="reason"' in form.content
    missing = client.post(
        "/admin/credits/creditaccount/",
        {
            "action": "grant_credits",
            "_selected_action": accounts,
            "apply": "1",
            "amount": "5",
            "source": "promo",
        },
    )
    assert missing.status_code == 200 and b"This field is required" in missing.content
    assert CreditTransaction.objects.filter(actor__startswith="staff:").count() == 0
    done = client.post(
        "/admin/credits/creditaccount/",
        {
            "action": "grant_credits",
            "_selected_action": accounts,
            "apply": "1",
            "amount": "5",
            "source": "promo",
            "reason": "outage credit",
        },
        follow=True,
    )
    assert "done for 2 account(s)" in " ".join(str(m) for m in get_messages(done.wsgi_request))
    rows = CreditTransaction.objects.filter(actor=f"staff:{staff.pk}")
    assert rows.count() == 2 and {r.reason for r in rows} == {"outage credit"}
    assert [a.balance for a in CreditAccount.objects.filter(organization__in=orgs)] == [D(6), D(6)]


def test_adjust_action_reports_service_errors(client, staff, organization):
    credit_grant(organization=organization, amount=2)
    account = CreditAccount.objects.get(organization=organization)
    response = client.post(
        "/admin/credits/creditaccount/",
        {
            "action": "adjust_credits",
            "_selected_action": [account.pk],
            "apply": "1",
            "amount": "-5",
            "reason": "fix",
        },
        follow=True,
    )
    texts = " ".join(str(m) for m in get_messages(response.wsgi_request))
    assert "below the overdraft limit" in texts
    client.post(
        "/admin/credits/creditaccount/",
        {
            "action": "adjust_credits",
            "_selected_action": [account.pk],
            "apply": "1",
            "amount": "-1.5",
            "reason": "fix",
        },
    )
    row = CreditTransaction.objects.get(organization=organization, kind="adjust")
    assert (row.amount, row.reason, row.actor) == (D("-1.5"), "fix", f"staff:{staff.pk}")


def test_account_settings_saved_through_the_service(client, staff, organization):
    credit_grant(organization=organization, amount=2)
    account = CreditAccount.objects.get(organization=organization)
    client.post(
        f"/admin/credits/creditaccount/{account.pk}/change/",
        {"overdraft_limit": "50", "low_balance_threshold": "5"},
    )
    account.refresh_from_db()
    assert (account.overdraft_limit, account.low_balance_threshold, account.balance) == (D(50), D(5), D(2))
