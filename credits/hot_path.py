"""The hot path of `credit_consume`, in SQL: one statement, one network round trip, for the whole
consumption.

The function `credits_consume_common` (migration 0011, PL/pgSQL) locks the account row, then
checks it (the overdraft and the holds, the low-balance alert, the auto-refill threshold, both on
the available balance: balance - held), draws from the grants, updates them and the account and
appends the ledger row. One call where "lock, update, insert" by hand takes five round trips (see
`tests/benchmarks/bench_hot_path.py`); the ORM spent more time compiling queries than the
database spent running them. It replaced a pipeline of two statements (the lock, then
data-modifying CTEs): less Python per call, and plain statements whose plans the function keeps.

It covers the common case only and answers None for anything else (having written nothing), in
which case the caller goes on with the general path (`credits.services.Ledger`), which locks and
decides again: an account that does not exist yet, a refusal (or the replay behind it), grants
due to expire, a low-balance alert to arm or re-arm, an auto-refill to start. The general path
is the reference; tests/credits/test_hot_path.py holds the two to the same rows.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from decimal import Decimal

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections

from config.postgres import prepared

from .models import AutoRefill, CreditAccount, CreditGrant, CreditPrice, CreditTransaction

ACCOUNT = CreditAccount._meta.db_table
GRANT = CreditGrant._meta.db_table
REFILL = AutoRefill._meta.db_table
PRICE = CreditPrice._meta.db_table

_TXN_ATTNAMES = [f.attname for f in CreditTransaction._meta.concrete_fields]
_TXN_DEFAULTS = [(f.attname, f.get_default) for f in CreditTransaction._meta.concrete_fields]

# The consumption's statement: the function of migration 0011, which holds its rules. The casts
# name the function's signature whatever the values' types (None for the quantity).
CONSUME_SQL = (
    "SELECT * FROM credits_consume_common(%(organization)s::uuid, %(required)s::numeric, "
    "%(now)s::timestamptz, %(order)s::text[], %(id)s::uuid, %(reason)s::text, %(event_name)s::text, "
    "%(quantity)s::numeric, %(metadata)s::jsonb, %(actor)s::text, %(key)s::text, %(fingerprint)s::text)"
)


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

    One statement, one network round trip: the function `credits_consume_common` (migration
    0011) locks the account, checks it, draws from the grants and writes. Outside a transaction
    the statement is its own; inside one (`usage_track`) it runs in a savepoint, sent in the same
    round trip, so a refused write (a reused idempotency key) leaves the caller's transaction
    usable."""
    params = {
        "organization": organization_id, "required": required, "now": now, "order": list(order),
        "id": uuid.uuid4(), "reason": reason, "event_name": event_name, "quantity": quantity,
        "metadata": json.dumps(metadata), "actor": actor, "key": idempotency_key, "fingerprint": fingerprint,
    }  # fmt: skip
    db = connections[DEFAULT_DB_ALIAS]  # `connection` looks the thread's connection up on every attribute
    if db.connection is None:
        db.ensure_connection()  # Django's `autocommit` reads False until a connection is made
    if not db.in_atomic_block and db.autocommit:
        # Its own transaction: one statement in autocommit, prepared once per connection.
        written = prepared.fetchone(CONSUME_SQL, params)
    else:
        written = _in_savepoint(db, params)
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


def _in_savepoint(db, params: dict) -> tuple | None:
    """The consumption's statement in a savepoint of the caller's transaction, in one round trip.
    The savepoint's statements are never prepared (`prepare=False`): psycopg counts the uses of a
    statement and prepares it at the fifth, and one that reaches it in a pipeline that a refusal
    aborts stays in its cache as prepared though PostgreSQL never ran the `Parse`; its next use
    fails with "prepared statement does not exist" (tests/credits/test_hot_path.py)."""
    with db.wrap_database_errors:
        conn = db.connection  # made by `consume`
        call, other = psycopg.Cursor(conn), psycopg.Cursor(conn)
        try:
            with conn.pipeline():
                other.execute("SAVEPOINT credits_hot_path", prepare=False)
                call.execute(CONSUME_SQL, params, prepare=True)
                other.execute("RELEASE SAVEPOINT credits_hot_path", prepare=False)
        except BaseException:
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
                for statement in ("ROLLBACK TO", "RELEASE"):
                    psycopg.Cursor(conn).execute(f"{statement} SAVEPOINT credits_hot_path", prepare=False)
            raise
        return call.fetchone()
