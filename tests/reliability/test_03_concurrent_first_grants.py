"""Item 3: two concurrent first grants to an organization without a credit account: both land
(the account is created once, neither grant is lost to the race)."""

import pytest

from credits.models import CreditAccount, CreditGrant
from credits.services import credit_grant
from tests.billing.factories import OrganizationFactory

from .helpers import balance, ledger_sum, run_together

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("attempt", range(5))
def test_two_concurrent_first_grants_are_both_applied(attempt):
    org = OrganizationFactory()
    assert not CreditAccount.objects.filter(organization=org).exists()
    results = run_together(2, lambda i: credit_grant(organization=org, amount=5 + i, source="promo"))
    assert [kind for kind, _ in results] == ["ok", "ok"], results
    assert CreditAccount.objects.filter(organization=org).count() == 1
    assert CreditGrant.objects.filter(organization=org).count() == 2
    assert balance(org) == 11 == ledger_sum(org)
