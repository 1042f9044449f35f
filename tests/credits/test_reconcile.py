import importlib
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from credits.models import CreditAccount, CreditGrant
from credits.services import credit_consume, credit_grant

append_only = importlib.import_module("credits.migrations.0002_ledger_append_only")

pytestmark = pytest.mark.django_db


def reconcile(*args) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("reconcile", *args, stdout=out)
    except SystemExit as exc:
        return exc.code, out.getvalue()
    return 0, out.getvalue()


def test_clean_ledger(organization):
    credit_grant(organization=organization, amount=10)
    credit_consume(organization=organization, amount=3)
    code, out = reconcile()
    assert code == 0 and "no drift" in out and "2 ledger rows" in out


def test_a_balance_edited_behind_the_ledger_is_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    CreditAccount.objects.filter(organization=organization).update(balance=12)
    code, out = reconcile()
    assert code == 1
    assert "[balance_is_ledger_sum]" in out and str(organization.pk) in out
    assert "[balance_is_grants_minus_overdraft]" in out


def test_grants_edited_behind_the_ledger_are_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    CreditGrant.objects.filter(organization=organization).update(remaining=4)
    code, out = reconcile("--organization", str(organization.pk))
    assert code == 1 and "grants hold 4, balance 10" in out


def test_missing_trigger_is_drift(organization, allow_ledger_drift):
    with connection.cursor() as cursor:
        cursor.execute(append_only.REMOVE_SQL)
    try:
        code, out = reconcile()
        assert code == 1 and "[append_only]" in out
    finally:
        with connection.cursor() as cursor:
            cursor.execute(append_only.INSTALL_SQL)


def test_a_broken_balance_after_chain_is_drift(organization, allow_ledger_drift):
    credit_grant(organization=organization, amount=10)
    with connection.cursor() as cursor:
        cursor.execute(append_only.REMOVE_SQL)
        cursor.execute("UPDATE credits_credittransaction SET balance_after = 9")
        cursor.execute(append_only.INSTALL_SQL)
    code, out = reconcile()
    assert code == 1 and "[running_balance]" in out and "[balance_after]" in out


def test_reconcile_reports_stripe_drift(billing_org, stripe_emulator):
    """A lost webhook: Stripe canceled the subscription and charged a purchase; nothing here knows."""
    import stripe

    from billing.services import subscription_create
    from credits.services import credit_purchase_create
    from tests.credits.factories import CreditPackFactory
    from tests.stripe_helpers import STRIPE_KEY

    subscription = subscription_create(
        organization=billing_org,
        plan="starter",
        interval="month",
        payment_method="pm_card_visa",
        trial_days=0,
    )
    assert reconcile()[0] == 0
    stripe.Subscription.cancel(subscription.id, **STRIPE_KEY)
    pack = CreditPackFactory(code="p1k", credits=1000, amount=1000)
    purchase, _ = credit_purchase_create(organization=billing_org, pack=pack, idempotency_key="k")
    intent = stripe.PaymentIntent.create(
        amount=1000,
        currency="usd",
        customer=subscription.customer_id,
        payment_method=billing_org_card(billing_org),
        confirm=True,
        off_session=True,
        **STRIPE_KEY,
    )
    purchase.payment_intent_id = intent.id
    purchase.save(update_fields=["payment_intent_id"])
    code, out = reconcile()
    assert code == 1
    assert "'canceled' on Stripe, 'active' here" in out
    assert f"{intent.id} succeeded on Stripe, not granted" in out
    assert reconcile("--no-stripe")[0] == 0


def billing_org_card(org) -> str:
    from billing.selectors import payment_method_list

    return payment_method_list(organization=org)[0]["id"]
