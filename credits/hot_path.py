"""The hot path of `credit_consume`, in SQL: as few round trips as the raw shape of the work.

Lock the account row (with the auto-refill settings joined), read the live grants, then write
grants, account and ledger row in one statement (data-modifying CTEs). Three statements, the
same as "lock, update, insert" by hand; the ORM spent more time compiling queries than the
database spent running them (see `tests/benchmarks/bench_credits.py`).

It covers the common case only and answers None for anything else, in which case the caller
goes on with the general path (`credits.services._Ledger`) in the same transaction, holding the
same lock: an account that does not exist yet, a refusal (or the replay behind it), grants due
to expire, a low-balance alert to arm or re-arm, an auto-refill to start. The general path is
the reference; the tests run both (every scenario checks the invariants afterwards).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

import psycopg
from django.db import connection

from .formatting import credits_str
from .models import AutoRefill, CreditAccount, CreditGrant, CreditPrice, CreditSource, CreditTransaction

ACCOUNT = CreditAccount._meta.db_table
GRANT = CreditGrant._meta.db_table
LEDGER = CreditTransaction._meta.db_table
REFILL = AutoRefill._meta.db_table
PRICE = CreditPrice._meta.db_table

LOCK_SQL = f"""
SELECT a.id, a.balance, a.overdraft_limit, a.sequence, a.low_balance_threshold, a.low_balance_alerted_at,
       r.enabled, r.threshold
FROM {ACCOUNT} a LEFT JOIN {REFILL} r ON r.account_id = a.id
WHERE a.organization_id = %s
FOR UPDATE OF a
"""  # noqa: S608 - table names are the models' own

INSERT_SQL = f"""
INSERT INTO {LEDGER} (id, organization_id, account_id, sequence, kind, amount, balance_after, grant_id,
    allocations, reverses_id, reason, event_name, quantity, metadata, actor, idempotency_key,
    request_fingerprint, created_at)
VALUES (%s, %s, %s, %s, 'consume', %s, %s, NULL, %s::jsonb, NULL, %s, %s, %s, %s::jsonb, %s, %s, %s, %s)
"""  # noqa: S608


@lru_cache(maxsize=8)
def grants_sql(order: tuple[str, ...]) -> str:
    """Live grants in consumption order; the same order as `services._live_grants`."""
    known = [s for s in order if s in CreditSource.values]  # literals below are from a fixed set
    cases = " ".join(f"WHEN '{source}' THEN {i}" for i, source in enumerate(known))
    return (
        f"SELECT id, remaining, expires_at FROM {GRANT} WHERE account_id = %s AND remaining > 0 "  # noqa: S608
        f"ORDER BY CASE source {cases} ELSE {len(known)} END, expires_at ASC NULLS LAST, created_at, id"
    )


def _cursor() -> psycopg.Cursor:
    """A server-side-binding cursor on Django's own connection (and so in its transaction).
    Django's cursors bind parameters client-side, which on this path costs more Python time
    than the database work, and never lets psycopg prepare the statements."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def price_per_unit(event_name: str) -> Decimal | None:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT credits_per_unit FROM {PRICE} WHERE event_name = %s AND active", [event_name])  # noqa: S608
        row = cursor.fetchone()
    return row[0] if row else None


def consume(
    *,
    organization_id,
    required: Decimal,
    now: datetime,
    order: tuple[str, ...],
    reason: str,
    event_name: str,
    quantity: Decimal | None,
    metadata: dict,
    actor: str,
    idempotency_key: str | None,
    fingerprint: str,
) -> tuple[CreditTransaction, Decimal] | None:
    """Consume under the account lock, or None when the general path must do it."""
    with connection.wrap_database_errors, _cursor() as cursor:
        cursor.execute(LOCK_SQL, [organization_id])
        row = cursor.fetchone()
        if row is None:
            return None
        account_id, balance, overdraft, sequence, alert_at, alerted, refill_on, refill_below = row
        after = balance - required
        if after < -overdraft:
            return None
        if alert_at is not None and (after < alert_at) != (alerted is not None):
            return None
        if refill_on and after < refill_below:
            return None
        cursor.execute(grants_sql(order), [account_id])
        grants = cursor.fetchall()
        if any(expires is not None and expires <= now for _, _, expires in grants):
            return None
        allocations, values, params, left = [], [], [], required
        for grant_id, remaining, _ in grants:
            if left <= 0:
                break
            take = min(remaining, left)
            left -= take
            allocations.append([str(grant_id), credits_str(take)])
            values.append("(%s::uuid, %s::numeric)")
            params += [grant_id, remaining - take]
        ctes = []
        if values:
            ctes.append(
                f"g AS (UPDATE {GRANT} AS g SET remaining = v.remaining "  # noqa: S608
                f"FROM (VALUES {', '.join(values)}) AS v(id, remaining) WHERE g.id = v.id RETURNING 1)"
            )
        ctes.append(f"a AS (UPDATE {ACCOUNT} SET balance = %s, sequence = %s, updated_at = %s WHERE id = %s RETURNING 1)")  # noqa: S608
        params += [after, sequence + 1, now, account_id]
        txn_id = uuid.uuid4()
        params += [
            txn_id, organization_id, account_id, sequence + 1, -required, after, json.dumps(allocations),
            reason, event_name, quantity, json.dumps(metadata), actor, idempotency_key, fingerprint, now,
        ]  # fmt: skip
        cursor.execute("WITH " + ", ".join(ctes) + INSERT_SQL, params)
    txn = CreditTransaction(
        id=txn_id,
        organization_id=organization_id,
        account_id=account_id,
        sequence=sequence + 1,
        kind="consume",
        amount=-required,
        balance_after=after,
        allocations=allocations,
        reason=reason,
        event_name=event_name,
        quantity=quantity,
        metadata=metadata,
        actor=actor,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
        created_at=now,
    )
    txn._state.adding = False
    txn._state.db = "default"
    return txn, after
