"""The hot path of `credit_consume`, in SQL: as few round trips as the raw shape of the work.

Lock the account row (with the auto-refill settings joined), then draw from the grants, update
them and the account and append the ledger row in one statement (data-modifying CTEs, on a
snapshot taken after the lock). Two statements where "lock, update, insert" by hand takes three;
the ORM spent more time compiling queries than the database spent running them (see
`tests/benchmarks/bench_credits.py`).

It covers the common case only and answers None for anything else, in which case the caller
goes on with the general path (`credits.services.Ledger`) in the same transaction, holding the
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

from .consumption_order import grant_order_sql
from .models import AutoRefill, CreditAccount, CreditGrant, CreditPrice, CreditTransaction

ACCOUNT = CreditAccount._meta.db_table
GRANT = CreditGrant._meta.db_table
LEDGER = CreditTransaction._meta.db_table
REFILL = AutoRefill._meta.db_table
PRICE = CreditPrice._meta.db_table

LOCK_SQL = f"""
SELECT a.id, a.balance, a.overdraft_limit, a.sequence, a.low_balance_threshold, a.low_balance_alerted_at,
       r.enabled, r.threshold, a.held
FROM {ACCOUNT} a LEFT JOIN {REFILL} r ON r.account_id = a.id
WHERE a.organization_id = %s
FOR UPDATE OF a
"""  # noqa: S608 - table names are the models' own


@lru_cache(maxsize=8)
def write_sql(order: tuple[str, ...]) -> str:
    """Draw from the live grants in consumption order (`credits.consumption_order`),
    update them and the account, append the ledger row: one statement, so one fresh snapshot
    taken after the account lock. Writes nothing, and answers no row, when a grant is due to
    expire: the general path expires it first."""
    ordering = grant_order_sql(order)
    return f"""
WITH live AS (
    SELECT id, remaining, expires_at,
           row_number() OVER w AS ord,
           sum(remaining) OVER w - remaining AS before
    FROM {GRANT} WHERE account_id = %(account)s AND remaining > 0
    WINDOW w AS (ORDER BY {ordering}
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
blocked AS (SELECT EXISTS (SELECT 1 FROM live WHERE expires_at <= %(now)s) AS due),
take AS (
    SELECT id, ord, LEAST(remaining, %(required)s - before) AS take
    FROM live WHERE before < %(required)s AND NOT (SELECT due FROM blocked)
),
g AS (
    UPDATE {GRANT} AS cg SET remaining = cg.remaining - t.take FROM take t WHERE cg.id = t.id RETURNING 1
),
a AS (
    UPDATE {ACCOUNT} SET balance = %(after)s, sequence = %(sequence)s, updated_at = %(now)s
    WHERE id = %(account)s AND NOT (SELECT due FROM blocked) RETURNING 1
)
INSERT INTO {LEDGER} (id, organization_id, account_id, sequence, kind, amount, balance_after, grant_id,
    allocations, reverses_id, reason, event_name, quantity, metadata, actor, idempotency_key,
    request_fingerprint, created_at)
SELECT %(id)s, %(organization)s, %(account)s, %(sequence)s, 'consume', %(amount)s, %(after)s, NULL,
    (SELECT coalesce(json_agg(json_build_array(id::text, trim_scale(take)::text) ORDER BY ord), '[]'::json)
     FROM take)::jsonb,
    NULL, %(reason)s, %(event_name)s, %(quantity)s, %(metadata)s::jsonb, %(actor)s, %(key)s,
    %(fingerprint)s, %(now)s
WHERE NOT (SELECT due FROM blocked)
RETURNING allocations
"""  # noqa: S608 - table names are the models' own


def _cursor() -> psycopg.Cursor:
    """A server-side-binding cursor on Django's own connection (and so in its transaction).
    Django's cursors bind parameters client-side and Django turns psycopg's automatic prepared
    statements off; here both statements are prepared once per connection (`prepare=True`), so
    PostgreSQL does not parse and plan the write statement on every consumption."""
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
        cursor.execute(LOCK_SQL, [organization_id], prepare=True)
        row = cursor.fetchone()
        if row is None:
            return None
        account_id, balance, overdraft, sequence, alert_at, alerted, refill_on, refill_below, held = row
        after = balance - required
        if after - held < -overdraft:  # active holds are not for spending (`CreditHold`)
            return None
        # The thresholds compare the available balance (balance - held), as the general path does.
        if alert_at is not None and (after - held < alert_at) != (alerted is not None):
            return None
        if refill_on and after - held < refill_below:
            return None
        txn_id = uuid.uuid4()
        cursor.execute(
            write_sql(order),
            {
                "account": account_id, "now": now, "required": required, "after": after,
                "sequence": sequence + 1, "id": txn_id, "organization": organization_id, "amount": -required,
                "reason": reason, "event_name": event_name, "quantity": quantity,
                "metadata": json.dumps(metadata), "actor": actor, "key": idempotency_key,
                "fingerprint": fingerprint,
            },
            prepare=True,
        )  # fmt: skip
        written = cursor.fetchone()
    if written is None:
        return None
    txn = CreditTransaction(
        id=txn_id,
        organization_id=organization_id,
        account_id=account_id,
        sequence=sequence + 1,
        kind="consume",
        amount=-required,
        balance_after=after,
        # Django's connection leaves jsonb as text.
        allocations=json.loads(written[0]) if isinstance(written[0], str) else written[0],
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
