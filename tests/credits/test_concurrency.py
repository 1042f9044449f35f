"""Real threads, one database connection each, started together by a barrier."""

from __future__ import annotations

import random
import threading
from decimal import Decimal

import pytest
from django.db import connection

from config.celery import app
from config.exceptions import IdempotencyConflict
from credits.exceptions import InsufficientCredits
from credits.models import CreditAccount, CreditGrant, CreditPurchase, CreditTransaction, PurchaseKind
from credits.services import (
    auto_refill_set,
    credit_consume,
    credit_grant,
    credit_purchase_create,
    credit_purchase_fulfil,
)
from tests.billing.factories import OrganizationFactory
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db(transaction=True)
D = Decimal


def run_together(count: int, work) -> list[tuple[str, object]]:
    """Run `work(i)` in `count` threads released at once; answers ("ok", result) or ("error", exc)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=120)
            results[i] = ("ok", work(i))
        except Exception as exc:
            results[i] = ("error", exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return results


def balance(org) -> Decimal:
    return CreditAccount.objects.get(organization=org).balance


def test_fifty_threads_consume_one_each_from_ten():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=10)
    results = run_together(50, lambda i: credit_consume(organization=org, amount=1, idempotency_key=f"t{i}"))
    ok = [r for kind, r in results if kind == "ok"]
    errors = [r for kind, r in results if kind == "error"]
    assert len(ok) == 10
    assert len(errors) == 40 and all(isinstance(e, InsufficientCredits) for e in errors), errors[:3]
    assert balance(org) == 0
    assert CreditTransaction.objects.filter(organization=org, kind="consume").count() == 10
    assert sorted(r.balance for r in ok) == [D(i) for i in range(10)]


def test_two_hundred_mixed_grants_and_consumes_add_up():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=1000)
    rng = random.Random(7)
    ops = [("grant" if rng.random() < 0.5 else "consume", D(rng.randint(1, 400)) / 100) for _ in range(200)]
    per_thread = 10

    def work(t: int):
        done = []
        for kind, amount in ops[t * per_thread : (t + 1) * per_thread]:
            if kind == "grant":
                credit_grant(organization=org, amount=amount, source=rng.choice(["promo", "manual"]))
            else:
                credit_consume(organization=org, amount=amount)
            done.append(kind)
        return done

    results = run_together(len(ops) // per_thread, work)
    assert all(kind == "ok" for kind, _ in results), [r for r in results if r[0] == "error"][:3]
    expected = D(1000) + sum(a for k, a in ops if k == "grant") - sum(a for k, a in ops if k == "consume")
    assert balance(org) == expected
    assert CreditTransaction.objects.filter(organization=org).count() == 201


@pytest.mark.parametrize("attempt", range(3))
def test_two_concurrent_first_grants_to_a_new_account_both_land(attempt):
    org = OrganizationFactory()
    results = run_together(2, lambda i: credit_grant(organization=org, amount=5 + i))
    assert [kind for kind, _ in results] == ["ok", "ok"], results
    assert CreditAccount.objects.filter(organization=org).count() == 1
    assert balance(org) == D(11)


def test_the_same_key_from_ten_threads_is_one_effect():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=100)
    results = run_together(10, lambda i: credit_consume(organization=org, amount=3, idempotency_key="once"))
    assert all(kind == "ok" for kind, _ in results), results
    assert len({r.transaction.pk for _, r in results}) == 1
    assert sum(1 for _, r in results if not r.replayed) == 1
    assert balance(org) == D(97)


def test_the_same_key_with_other_bodies_concurrently_one_wins_the_rest_conflict():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=100)
    results = run_together(6, lambda i: credit_consume(organization=org, amount=1 + i, idempotency_key="k"))
    ok = [r for kind, r in results if kind == "ok"]
    assert len(ok) == 1
    assert all(isinstance(r, IdempotencyConflict) for kind, r in results if kind == "error")
    assert balance(org) == D(100) - ok[0].consumed


def test_the_same_purchase_fulfilled_from_five_threads_grants_once():
    org = OrganizationFactory()
    purchase, _ = credit_purchase_create(organization=org, pack=CreditPackFactory(credits=D(500), amount=500))
    results = run_together(
        5, lambda i: credit_purchase_fulfil(payment_intent_id="pi_c", purchase_id=purchase.pk)
    )
    assert all(kind == "ok" for kind, _ in results), results
    assert sum(1 for _, r in results if r.granted) == 1
    assert balance(org) == D(500) and CreditGrant.objects.filter(organization=org).count() == 1


def test_concurrent_consumptions_below_the_threshold_start_one_refill():
    org = OrganizationFactory()
    credit_grant(organization=org, amount=100)
    auto_refill_set(
        organization=org,
        enabled=True,
        threshold=90,
        pack=CreditPackFactory(),
        payment_method="pm_card_visa",
        max_refills_per_day=5,
    )
    try:
        results = run_together(20, lambda i: credit_consume(organization=org, amount=1))
    finally:
        app.control.purge()  # nobody runs the enqueued refill here
    assert all(kind == "ok" for kind, _ in results)
    assert CreditPurchase.objects.filter(organization=org, kind=PurchaseKind.AUTO_REFILL).count() == 1


def test_a_consumption_that_waited_for_the_lock_draws_from_the_grants_as_committed():
    """The hot path reads the grants after the account lock: a consumption blocked behind a
    transaction that consumed and granted sees that transaction's grants, not older ones."""
    from django.db import transaction

    from credits.locks import account_lock

    org = OrganizationFactory()
    first = credit_grant(organization=org, amount=5, source="purchase", reference="pi_first").grant
    holding = threading.Event()

    def holder(_):
        with transaction.atomic():
            account_lock(organization_id=org.pk)
            holding.set()
            credit_consume(organization=org, amount=5)  # empties the first grant
            threading.Event().wait(0.5)  # the other thread is now waiting on the row lock
            return credit_grant(organization=org, amount=7, source="purchase", reference="pi_second").grant

    def waiter(_):
        holding.wait(10)
        return credit_consume(organization=org, amount=3)

    results = run_together(2, lambda i: (holder, waiter)[i](i))
    assert [kind for kind, _ in results] == ["ok", "ok"], results
    second, consumed = results[0][1], results[1][1]
    assert consumed.balance == D(4)
    assert consumed.transaction.allocations == [[str(second.pk), "3"]]
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.remaining, second.remaining) == (D(0), D(4))
