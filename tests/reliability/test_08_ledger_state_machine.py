"""Item 8: a Hypothesis state machine of 10,000 steps, seed-reproducible.

Random grants, consumptions, clock moves with expiry, reversals,
purchases with refunds, and replays, against a plain-Python model of the ledger. After every
step the ledger's invariants hold and the database agrees with the model grant by grant."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone
from hypothesis import HealthCheck, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from config.exceptions import IdempotencyConflict
from credits.exceptions import InsufficientCredits
from credits.formatting import quantize
from credits.models import CreditAccount, CreditGrant
from credits.selectors import ledger_drift_list
from credits.services import (
    credit_account_settings_update,
    credit_consume,
    credit_consumption_reverse,
    credit_grant,
    credit_grants_expire,
    credit_purchase_create,
    credit_purchase_fulfil,
    credit_purchase_reverse,
)
from tests.billing.factories import OrganizationFactory
from tests.credits.factories import CreditPackFactory

pytestmark = pytest.mark.django_db
ZERO = Decimal(0)
STEPS = int(os.environ.get("LEDGER_MACHINE_STEPS", "300"))
SEED = int(os.environ.get("LEDGER_MACHINE_SEED", "17"))
STEPS_PER_EXAMPLE = 100
amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("60"), places=4)


@dataclass
class G:
    id: uuid.UUID
    source: str
    amount: Decimal
    remaining: Decimal
    expires_at: datetime | None
    created_at: datetime


class LedgerMachine(RuleBasedStateMachine):
    steps_run = 0

    @initialize(overdraft=st.sampled_from([ZERO, Decimal(5)]))
    def start(self, overdraft):
        self.travel = time_machine.travel(datetime(2026, 1, 1, tzinfo=UTC), tick=False)
        self.traveller = self.travel.start()
        self.org = OrganizationFactory()
        if overdraft:
            credit_account_settings_update(organization=self.org, overdraft_limit=overdraft)
        self.overdraft = overdraft
        self.balance = ZERO
        self.grants: dict[uuid.UUID, G] = {}
        self.consumptions: list[tuple] = []  # (transaction, allocations, key, amount)
        self.reversed: set = set()
        self.purchases: list[dict] = []
        self.keys = 0

    def teardown(self):
        if hasattr(self, "travel"):
            self.travel.stop()

    # ---------------------------------------------------------------- the model
    def now(self):
        return timezone.now()

    def order(self):
        rank = {s: i for i, s in enumerate(settings.CREDITS_CONSUMPTION_ORDER)}
        live = [g for g in self.grants.values() if g.remaining > 0]
        far = datetime.max.replace(tzinfo=UTC)
        return sorted(live, key=lambda g: (rank[g.source], g.expires_at or far, g.created_at, g.id))

    def expire_due(self, only=None):
        for g in only if only is not None else list(self.grants.values()):
            if g.expires_at is not None and g.expires_at <= self.now() and g.remaining > 0:
                self.balance -= g.remaining
                g.remaining = ZERO

    def add_grant(self, grant: CreditGrant):
        debt = max(-self.balance, ZERO)
        remaining = grant.amount - min(debt, grant.amount)
        self.grants[grant.pk] = G(
            grant.pk, grant.source, grant.amount, remaining, grant.expires_at, self.now()
        )
        self.balance += grant.amount
        if grant.expires_at is not None:
            self.expire_due([self.grants[grant.pk]])

    def draw(self, amount):
        allocations, left = [], amount
        for g in self.order():
            take = min(g.remaining, left)
            if take > 0:
                g.remaining -= take
                left -= take
                allocations.append((g.id, take))
        self.balance -= amount
        return allocations

    def key(self):
        self.keys += 1
        return f"k{self.keys}"

    # ---------------------------------------------------------------- rules
    @rule(
        amount=amounts,
        source=st.sampled_from(["promo", "manual", "subscription"]),
        hours=st.one_of(st.none(), st.integers(min_value=1, max_value=72)),
    )
    def grant(self, amount, source, hours):
        expires_at = self.now() + timedelta(hours=hours) if hours else None
        self.expire_due()
        result = credit_grant(
            organization=self.org,
            amount=amount,
            source=source,
            expires_at=expires_at,
            idempotency_key=self.key(),
        )
        self.add_grant(result.grant)

    @rule(amount=amounts)
    def consume(self, amount):
        self.expire_due()
        key = self.key()
        if amount > self.balance + self.overdraft:
            with pytest.raises(InsufficientCredits) as info:
                credit_consume(organization=self.org, amount=amount, idempotency_key=key)
            assert info.value.balance == self.balance and info.value.required == amount
            return
        result = credit_consume(organization=self.org, amount=amount, idempotency_key=key, reason="r")
        allocations = self.draw(amount)
        assert [(uuid.UUID(g), Decimal(a)) for g, a in result.transaction.allocations] == allocations
        assert result.balance == self.balance
        self.consumptions.append((result.transaction, allocations, key, amount))

    @rule(hours=st.integers(min_value=1, max_value=48))
    def time_passes_and_the_expiry_task_runs(self, hours):
        self.traveller.shift(timedelta(hours=hours))
        credit_grants_expire(organization=self.org)
        self.expire_due()

    @precondition(lambda self: self.consumptions)
    @rule(data=st.data())
    def reverse(self, data):
        txn, allocations, _, amount = data.draw(st.sampled_from(self.consumptions))
        self.expire_due()
        result = credit_consumption_reverse(organization=self.org, transaction_id=txn.pk, reason="undo")
        if txn.pk in self.reversed:
            assert not result.created
            return
        self.reversed.add(txn.pk)
        old, new = self.balance, self.balance + amount
        to_restore = max(new, ZERO) - max(old, ZERO)
        restored = []
        for gid, taken in allocations:
            g = self.grants[gid]
            back = min(taken, to_restore, g.amount - g.remaining)
            if back > 0:
                g.remaining += back
                to_restore -= back
                restored.append(g)
        self.balance = new
        if to_restore > 0:
            assert result.grant is not None and result.grant.amount == to_restore
            self.grants[result.grant.pk] = G(
                result.grant.pk, "refund", to_restore, to_restore, None, self.now()
            )
        else:
            assert result.grant is None
        self.expire_due(restored)

    @rule(credits=st.integers(min_value=1, max_value=80))
    def purchase(self, credits):
        pack = CreditPackFactory(code=f"sm-{credits}", credits=Decimal(credits), amount=credits * 7)
        purchase, _ = credit_purchase_create(organization=self.org, pack=pack)
        pi = f"pi_{purchase.pk.hex}"
        self.expire_due()
        for _ in range(2):  # the API answer and the webhook
            result = credit_purchase_fulfil(payment_intent_id=pi, purchase_id=purchase.pk)
        self.add_grant(result.purchase.grant)
        self.purchases.append(
            {
                "pi": pi,
                "amount": pack.amount,
                "credits": pack.credits,
                "grant": result.purchase.grant.pk,
                "refunded": 0,
                "reversed": ZERO,
            }
        )

    @precondition(lambda self: self.purchases)
    @rule(data=st.data(), fraction=st.sampled_from([Decimal("0.25"), Decimal("0.5"), Decimal(1)]))
    def refund_purchase(self, data, fraction):
        p = data.draw(st.sampled_from(self.purchases))
        refunded = int(p["amount"] * fraction)
        self.expire_due()
        credit_purchase_reverse(payment_intent_id=p["pi"], refunded_amount=refunded)
        if refunded <= p["refunded"]:
            return
        p["refunded"] = refunded
        target = min(quantize(p["credits"] * refunded / p["amount"]), p["credits"])
        g = self.grants[p["grant"]]
        take = min(target - p["reversed"], g.remaining)
        if take > 0:
            g.remaining -= take
            self.balance -= take
            p["reversed"] += take

    @precondition(lambda self: self.consumptions)
    @rule(data=st.data(), same=st.booleans())
    def replay(self, data, same):
        txn, _, key, amount = data.draw(st.sampled_from(self.consumptions))
        if same:
            result = credit_consume(organization=self.org, amount=amount, idempotency_key=key, reason="r")
            assert result.replayed and result.transaction.pk == txn.pk
        else:
            with pytest.raises(IdempotencyConflict):
                credit_consume(organization=self.org, amount=amount + 1, idempotency_key=key, reason="r")
        self.expire_due()  # a replay may have expired due grants on its way

    # ---------------------------------------------------------------- invariants
    @invariant()
    def ledger_is_consistent(self):
        if not hasattr(self, "org"):
            return
        LedgerMachine.steps_run += 1
        report = ledger_drift_list(organization_ids=[self.org.pk])
        assert report.clean, report.drifts
        account = CreditAccount.objects.filter(organization=self.org).first()
        assert (account.balance if account else ZERO) == self.balance
        assert self.balance >= -self.overdraft
        stored = dict(CreditGrant.objects.filter(organization=self.org).values_list("id", "remaining"))
        assert stored == {g.id: g.remaining for g in self.grants.values()}
        for g in self.grants.values():
            assert ZERO <= g.remaining <= g.amount


def test_ledger_state_machine(db):
    """Examples of 50 to 100 steps until `STEPS` steps have run in all; round n uses the seed
    `SEED + n`, so the whole run is the same every time for the same seed."""
    LedgerMachine.steps_run = 0
    rounds = 0
    while LedgerMachine.steps_run < STEPS:
        rounds += 1
        run_state_machine_as_test(
            seed(SEED + rounds)(LedgerMachine),
            settings=hsettings(
                max_examples=max(1, (STEPS - LedgerMachine.steps_run) // STEPS_PER_EXAMPLE),
                stateful_step_count=STEPS_PER_EXAMPLE,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                database=None,
                print_blob=True,
            ),
            _min_steps=STEPS_PER_EXAMPLE // 2,
        )
        assert rounds < 50, "the machine stopped making progress"
    print(f"ledger state machine: {LedgerMachine.steps_run} steps, seed {SEED}")
    assert LedgerMachine.steps_run >= STEPS
