"""The hot path of `credit_consume`, in SQL: one network round trip for the whole consumption.

Lock the account row, then check it (the overdraft and the holds, the low-balance alert, the
auto-refill threshold, both on the available balance: balance - held),
draw from the grants, update them and the account and append the ledger
row in one statement (data-modifying CTEs, on a snapshot taken after the lock). The statements
(in the pipeline's implicit transaction when none is open) go in one psycopg pipeline: one round trip
where "lock, update, insert" by hand takes five (see `tests/benchmarks/bench_hot_path.py`); the
ORM spent more time compiling queries than the database spent running them.

It covers the common case only and answers None for anything else (having written nothing), in
which case the caller goes on with the general path (`credits.services.Ledger`), which locks and
decides again: an account that does not exist yet, a refusal (or the replay behind it), grants
due to expire, a low-balance alert to arm or re-arm, an auto-refill to start. The general path
is the reference; the tests run both (every scenario checks the invariants afterwards).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal
from functools import lru_cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections

from config.postgres import prepared

from .consumption_order import grant_order_sql
from .models import AutoRefill, CreditAccount, CreditGrant, CreditPrice, CreditTransaction

ACCOUNT = CreditAccount._meta.db_table
GRANT = CreditGrant._meta.db_table
LEDGER = CreditTransaction._meta.db_table
REFILL = AutoRefill._meta.db_table
PRICE = CreditPrice._meta.db_table

_TXN_ATTNAMES = [f.attname for f in CreditTransaction._meta.concrete_fields]
_TXN_DEFAULTS = [(f.attname, f.get_default) for f in CreditTransaction._meta.concrete_fields]

LOCK_SQL = f"SELECT 1 FROM {ACCOUNT} WHERE organization_id = %s FOR UPDATE"  # noqa: S608


@lru_cache(maxsize=8)
def write_sql(order: tuple[str, ...]) -> str:
    """Check the locked account, draw from the live grants in consumption order
    (`credits.consumption_order`), update them and the account, append the ledger row: one
    statement, so one fresh snapshot taken after the account lock. Writes nothing, and answers
    no row, when the general path must decide: no account, a refusal (active holds are not for
    spending, `CreditHold`), a low-balance alert to arm or re-arm, an auto-refill to start, a
    grant due to expire."""
    ordering = grant_order_sql(order)
    return f"""
WITH acct AS (
    SELECT a.id, a.balance - %(required)s AS after, a.sequence + 1 AS sequence
    FROM {ACCOUNT} a LEFT JOIN {REFILL} r ON r.account_id = a.id
    WHERE a.organization_id = %(organization)s
      AND a.balance - %(required)s - a.held >= -a.overdraft_limit
      AND (a.low_balance_threshold IS NULL
           OR (a.balance - %(required)s - a.held < a.low_balance_threshold)
               = (a.low_balance_alerted_at IS NOT NULL))
      AND NOT coalesce(r.enabled AND a.balance - %(required)s - a.held < r.threshold, false)
),
live AS (
    SELECT id, remaining, expires_at,
           row_number() OVER w AS ord,
           sum(remaining) OVER w - remaining AS before
    FROM {GRANT} WHERE account_id = (SELECT id FROM acct) AND remaining > 0
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
    UPDATE {ACCOUNT} AS ca SET balance = acct.after, sequence = acct.sequence, updated_at = %(now)s
    FROM acct WHERE ca.id = acct.id AND NOT (SELECT due FROM blocked) RETURNING 1
)
INSERT INTO {LEDGER} (id, organization_id, account_id, sequence, kind, amount, balance_after, grant_id,
    allocations, reverses_id, reason, event_name, quantity, metadata, actor, idempotency_key,
    request_fingerprint, created_at)
SELECT %(id)s, %(organization)s, acct.id, acct.sequence, 'consume', %(amount)s, acct.after, NULL,
    (SELECT coalesce(json_agg(json_build_array(id::text, trim_scale(take)::text) ORDER BY ord), '[]'::json)
     FROM take)::jsonb,
    NULL, %(reason)s, %(event_name)s, %(quantity)s, %(metadata)s::jsonb, %(actor)s, %(key)s,
    %(fingerprint)s, %(now)s
FROM acct
WHERE NOT (SELECT due FROM blocked)
RETURNING account_id, sequence, balance_after, allocations
"""  # noqa: S608 - table names are the models' own


SUMMARY_SQL = f"""
SELECT a.balance, a.held, a.low_balance_threshold, a.overdraft_limit, r.id IS NOT NULL,
       g.sources, g.expiries, g.totals
FROM {ACCOUNT} a
LEFT JOIN {REFILL} r ON r.account_id = a.id
CROSS JOIN LATERAL (
    SELECT array_agg(source) AS sources, array_agg(expires_at) AS expiries, array_agg(total) AS totals
    FROM (SELECT source, expires_at, sum(remaining) AS total FROM {GRANT}
          WHERE organization_id = %s AND remaining > 0 GROUP BY source, expires_at) t
) g
WHERE a.organization_id = %s
"""  # noqa: S608 - table names are the models' own


def account_summary(organization_id) -> tuple | None:
    """(balance, held, low_balance_threshold, overdraft_limit, has_auto_refill, sources, expiries,
    totals) of the organization's account and its live grants grouped by source and expiry, in
    one statement (one snapshot, one round trip); None without an account."""
    return prepared.fetchone(SUMMARY_SQL, [organization_id, organization_id])


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
    """Consume under the account lock, or None when the general path must do it.

    One network round trip: the statements go in one psycopg pipeline. Outside a transaction it
    is its own (the pipeline's implicit one: the lock and the write, committed at its end); inside
    one (`usage_track`) the lock and the write in a savepoint. The write's snapshot is still taken
    after the lock: PostgreSQL runs the pipeline's statements one after the other, each with its
    own snapshot (READ COMMITTED)."""
    params = {
        "organization": organization_id, "now": now, "required": required, "id": uuid.uuid4(),
        "amount": -required, "reason": reason, "event_name": event_name, "quantity": quantity,
        "metadata": json.dumps(metadata), "actor": actor, "key": idempotency_key, "fingerprint": fingerprint,
    }  # fmt: skip
    db = connections[DEFAULT_DB_ALIAS]  # `connection` looks the thread's connection up on every attribute
    with db.wrap_database_errors:
        # Server-side binding cursors on Django's own connection (Django's cursors bind client-side,
        # and Django turns psycopg's automatic prepared statements off): both statements are
        # prepared once per connection (`prepare=True`), so PostgreSQL does not parse and plan the
        # write statement on every consumption.
        db.close_if_health_check_failed()  # as Django's own cursors do (CONN_HEALTH_CHECKS)
        if db.connection is None:
            db.ensure_connection()
        conn = db.connection
        # Outside a transaction: the pipeline's implicit transaction. The extended query protocol
        # runs the statements up to a Sync (the pipeline's end) in one transaction block, committed
        # at the Sync, rolled back if one of them fails (PostgreSQL's "Pipelining" and "Extended
        # Query"); still one snapshot per statement (READ COMMITTED). So no BEGIN and COMMIT
        # statements. Within a transaction (`usage_track`): a savepoint, so a refused write (a
        # reused idempotency key) leaves the caller's transaction usable.
        own_transaction = not db.in_atomic_block and db.autocommit
        write = psycopg.Cursor(conn)
        if own_transaction:
            assert conn.autocommit  # Django in autocommit: psycopg sends no BEGIN of its own
            with conn.pipeline():
                psycopg.Cursor(conn).execute(LOCK_SQL, [organization_id], prepare=True)
                write.execute(write_sql(order), params, prepare=True)
        else:
            other = psycopg.Cursor(conn)  # statements without rows
            try:
                with conn.pipeline():
                    other.execute("SAVEPOINT credits_hot_path")
                    other.execute(LOCK_SQL, [organization_id], prepare=True)
                    write.execute(write_sql(order), params, prepare=True)
                    other.execute("RELEASE SAVEPOINT credits_hot_path")
            except BaseException:
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                    for statement in (
                        "ROLLBACK TO SAVEPOINT credits_hot_path",
                        "RELEASE SAVEPOINT credits_hot_path",
                    ):
                        psycopg.Cursor(conn).execute(statement)
                raise
        written = write.fetchone()
    if written is None:
        return None
    account_id, sequence, after, allocations = written
    txn_id = params["id"]
    # Built positionally, as Django builds a row it read (`from_db`): cheaper than by keywords
    # (Model.__init__ pops each keyword), on every consumption.
    values = {
        "id": txn_id, "organization_id": organization_id, "account_id": account_id, "sequence": sequence,
        "kind": "consume", "amount": -required, "balance_after": after,
        # Django's connection leaves jsonb as text.
        "allocations": json.loads(allocations) if isinstance(allocations, str) else allocations,
        "reason": reason, "event_name": event_name, "quantity": quantity, "metadata": metadata,
        "actor": actor, "idempotency_key": idempotency_key, "request_fingerprint": fingerprint,
        "created_at": now,
    }  # fmt: skip
    txn = CreditTransaction.from_db(
        "default", _TXN_ATTNAMES, [values[a] if a in values else d() for a, d in _TXN_DEFAULTS]
    )
    return txn, after
