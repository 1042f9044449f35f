"""The hot path of a consumption (`credits.hot_path`: the SQL function of migration 0011) against the
general path it shortcuts (`credits.services.ledger.Ledger`, the reference).

For any account (grants of every source, size and expiry, an overdraft limit, a low-balance
threshold, a consumption order) and any amount, twin organizations consume, one as the service
does (the hot path first), the other through the general path alone: both write the same rows and
answer the same, or both refuse. The hot path answers (rather than leaving it to the general path)
exactly when there is nothing for the general path to decide.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.models import Organization
from credits import hot_path
from credits.exceptions import InsufficientCredits
from credits.models import CreditAccount, CreditGrant, CreditSource, CreditTransaction
from credits.services import credit_account_settings_update, credit_consume, credit_grant

D = Decimal
SOURCES = list(CreditSource.values)
credits = st.decimals(min_value=D("0.0001"), max_value=D(60), places=4)

grant = st.tuples(st.sampled_from(SOURCES), credits, st.one_of(st.none(), st.integers(1, 40)))
scenario = st.fixed_dictionaries(
    {
        "grants": st.lists(grant, max_size=4),
        "overdraft": st.sampled_from([D(0), D("2.5"), D(30)]),
        "threshold": st.one_of(st.none(), st.decimals(min_value=D(0), max_value=D(50), places=2)),
        "required": st.decimals(min_value=D("0.0001"), max_value=D(150), places=4),
        "order": st.permutations(SOURCES).flatmap(lambda p: st.integers(1, len(p)).map(lambda n: p[:n])),
    }
)


class Rollback(Exception):
    pass


def account_of(org, scenario, clock) -> list[CreditGrant]:
    """The scenario's account for `org`: its grants one second apart (the order's last key is
    the creation time, then the id, which differs between twins)."""
    grants = []
    for source, amount, days in scenario["grants"]:
        clock.shift(timedelta(seconds=1))
        expires = None if days is None else timezone.now() + timedelta(days=days)
        grants.append(credit_grant(organization=org, amount=amount, source=source, expires_at=expires).grant)
    clock.shift(timedelta(seconds=1))
    CreditAccount.objects.get_or_create(organization=org)
    credit_account_settings_update(
        organization=org, overdraft_limit=scenario["overdraft"], low_balance_threshold=scenario["threshold"]
    )
    return grants


def effect(org, grants, consume) -> tuple:
    """What a consumption answered and wrote, with grants named by their place in the scenario."""
    place = {str(g.pk): i for i, g in enumerate(grants)}
    try:
        result = consume()
    except InsufficientCredits as refused:
        answer = ("refused", refused.balance, refused.required, str(refused))
    else:
        row = CreditTransaction.objects.get(pk=result.transaction.pk)
        fields = [f.attname for f in CreditTransaction._meta.concrete_fields]
        # The hot path builds the answered row itself: it must be the row it wrote.
        assert [getattr(result.transaction, f) for f in fields] == [getattr(row, f) for f in fields]
        answer = (
            "consumed", result.consumed, result.balance, row.sequence, row.amount, row.balance_after,
            [(place[g], D(amount)) for g, amount in row.allocations], row.reason, row.metadata,
            row.request_fingerprint,
        )  # fmt: skip
    account = CreditAccount.objects.get(organization=org)
    remaining = [CreditGrant.objects.get(pk=g.pk).remaining for g in grants]
    return answer, account.balance, account.sequence, account.low_balance_alerted_at is not None, remaining


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenario)
def test_the_hot_path_writes_what_the_general_path_writes(scenario, clock, monkeypatch):
    answered = []
    hot = hot_path.consume

    def hot_answer(**kwargs):
        done = hot(**kwargs)
        answered.append(done is not None)
        return done

    def consume(org, path):
        return lambda: credit_consume(
            organization=org, amount=scenario["required"], reason=path, metadata={"path": "same"},
            idempotency_key=f"k-{uuid.uuid4().hex}",
        )  # fmt: skip

    try:
        with transaction.atomic(), override_settings(CREDITS_CONSUMPTION_ORDER=list(scenario["order"])):
            fast, slow = (Organization.objects.create(name=n, billing_email=f"{n}@x.test") for n in "ab")
            fast_grants, slow_grants = account_of(fast, scenario, clock), account_of(slow, scenario, clock)
            monkeypatch.setattr(hot_path, "consume", hot_answer)
            via_hot = effect(fast, fast_grants, consume(fast, "same"))
            monkeypatch.setattr(hot_path, "consume", lambda **kwargs: None)
            via_general = effect(slow, slow_grants, consume(slow, "same"))
            raise Rollback
    except Rollback:
        pass
    finally:
        monkeypatch.setattr(hot_path, "consume", hot)
    assert via_hot == via_general
    # The hot path answers unless the general path has something to decide: a refusal, or the
    # low-balance alert to arm (a new threshold starts unarmed).
    balance = sum((amount for _s, amount, _d in scenario["grants"]), D(0))
    after = balance - scenario["required"]
    common = after >= -scenario["overdraft"] and (
        scenario["threshold"] is None or after >= scenario["threshold"]
    )
    assert answered == [common]


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_a_consumption_is_one_statement_and_a_replay_still_answers(organization):
    from django.db import connection

    credit_grant(organization=organization, amount=10, source="purchase", reference="pi_hot")
    with CaptureQueriesContext(connection) as queries:
        first = credit_consume(organization=organization, amount="2.5", idempotency_key="same")
    assert [q["sql"] for q in queries] == [hot_path.CONSUME_SQL]
    assert first.balance == D("7.5") and first.transaction.allocations[0][1] == "2.5"
    # The same key again: the function's insert fails on the unique index in its own statement,
    # which rolls its writes back, and the service answers the stored row.
    again = credit_consume(organization=organization, amount="2.5", idempotency_key="same")
    assert again.transaction.pk == first.transaction.pk
    account = CreditAccount.objects.get(organization=organization)
    assert (account.balance, account.sequence) == (D("7.5"), 2)
    assert CreditGrant.objects.get(reference="pi_hot").remaining == D("7.5")


@pytest.mark.django_db(transaction=True)
def test_in_a_transaction_a_refusal_leaves_the_connection_usable(organization):
    """Within a transaction (as `usage_track` consumes) the statement runs in a savepoint. psycopg
    prepares a statement at its fifth use: a savepoint statement reaching it in a pipeline that a
    reused key aborts was left cached though never prepared, and the next consumption failed."""
    from django.db import connection

    credit_grant(organization=organization, amount=100, source="purchase", reference="pi_savepoint")
    credit_consume(organization=organization, amount=1, idempotency_key="k-0")
    connection.close()  # a new connection: psycopg's counts start at zero
    with transaction.atomic():
        # Refusals (a reused key) and consumptions in the order that brought a savepoint statement
        # to its fifth use in a refused pipeline.
        for i, key in enumerate(["k-0", "k-1", "k-2", "k-0", "k-3", "k-4", "k-0", "k-5"]):
            done = credit_consume(organization=organization, amount=1, idempotency_key=key)
            assert done.replayed == (key == "k-0"), i
    account = CreditAccount.objects.get(organization=organization)
    assert (account.balance, account.sequence) == (D(94), 7)


@pytest.mark.django_db(transaction=True)
def test_with_prepared_statements_off_a_consumption_prepares_nothing(organization):
    """DB_PREPARE_THRESHOLD empty: the consumption's statement goes unnamed, in autocommit and in
    a transaction's savepoint alike."""
    from django.db import connection

    credit_grant(organization=organization, amount=10, source="purchase", reference="pi_unprepared")
    connection.close()
    connection.ensure_connection()
    connection.connection.prepare_threshold = None
    try:
        for i in range(6):
            credit_consume(organization=organization, amount=1, idempotency_key=f"a-{i}")
            with transaction.atomic():
                credit_consume(organization=organization, amount="0.5", idempotency_key=f"t-{i}")
        assert credit_consume(organization=organization, amount=1, idempotency_key="a-0").replayed
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_prepared_statements")
            assert cursor.fetchone() == (0,)
        assert CreditAccount.objects.get(organization=organization).balance == D(1)
    finally:
        connection.close()
