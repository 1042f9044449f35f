"""Recording usage events: one SQL statement per batch.

`usage_events_record` checks each event (`usage.validation`), then writes the whole batch with
one statement of data-modifying CTEs: the idempotency keys (`INSERT ... ON CONFLICT DO
NOTHING`), the events whose key was new, the hourly and daily rollups (`ON CONFLICT DO UPDATE`:
added to), the distinct values of `unique` metrics and the daily dimension rollups. Rollups change
in the same statement as the events, so they can never disagree, and a replayed key adds
nothing anywhere. When the batch touches a metric with a limit, the organization's account
lock is taken first and the quota counters are moved with it (`quotas.QuotaBook`), so they
stay exact; recording is never refused by a quota (the usage happened), only counted.

`usage_record` is the in-process entry point for one event (the seeds' `trackUsage`).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

import psycopg
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from billing.models import Organization
from credits.formatting import quantize
from credits.services import credit_account_lock
from credits.services.ledger import LOCK_SQL, LockedAccount

from ..models import (
    Aggregation,
    UsageDimensionRollup,
    UsageDistinct,
    UsageEvent,
    UsageEventKey,
    UsageRollup,
    UsageRollupDay,
)
from ..selectors import MetricInfo, metric_catalog, quota_context_for_ingestion
from ..validation import MAX_AGE, MAX_AHEAD, MAX_BATCH, EventInput, EventInvalid, parse_event, plain_event
from .quotas import QuotaBook

EVENTS = UsageEvent._meta.db_table
KEYS = UsageEventKey._meta.db_table
ROLLUPS = UsageRollup._meta.db_table
DAYS = UsageRollupDay._meta.db_table
DISTINCT = UsageDistinct._meta.db_table
DIMENSIONS = UsageDimensionRollup._meta.db_table

INSERT_SQL = f"""
WITH input AS (
    SELECT * FROM unnest(
        %(ids)b::uuid[], %(keys)b::text[], %(metrics)b::bigint[], %(quantities)b::numeric[],
        %(occurred)b::timestamptz[], %(users)b::text[], %(rtypes)b::text[], %(rids)b::text[],
        %(dims)b::text[], %(credits)b::numeric[], %(fingerprints)b::text[], %(uniques)b::bool[]
    ) AS t(id, key, metric_id, quantity, occurred_at, user_id, resource_type, resource_id, dims, credits,
           fingerprint, is_unique)
),
k AS (
    INSERT INTO {KEYS} (organization_id, idempotency_key, event_id, occurred_at, fingerprint, created_at)
    SELECT %(org)s, key, id, occurred_at, fingerprint, %(now)s FROM input
    ON CONFLICT DO NOTHING
    RETURNING event_id
),
e AS (
    INSERT INTO {EVENTS} (organization_id, occurred_at, id, metric_id, quantity, recorded_at, idempotency_key,
        user_id, resource_type, resource_id, dimensions, credits)
    SELECT %(org)s, i.occurred_at, i.id, i.metric_id, i.quantity, %(now)s, i.key, coalesce(i.user_id, ''),
        coalesce(i.resource_type, ''), coalesce(i.resource_id, ''), i.dims::jsonb, coalesce(i.credits, 0)
    FROM input i JOIN k ON k.event_id = i.id
    RETURNING id, metric_id, occurred_at, quantity, credits, dimensions
),
r AS (
    INSERT INTO {ROLLUPS} AS r (organization_id, metric_id, hour, quantity, events, quantity_max, credits)
    SELECT %(org)s, metric_id, date_trunc('hour', occurred_at, 'UTC'), sum(quantity), count(*), max(quantity),
        sum(credits)
    FROM e GROUP BY metric_id, date_trunc('hour', occurred_at, 'UTC')
    ON CONFLICT (organization_id, metric_id, hour) DO UPDATE SET
        quantity = r.quantity + EXCLUDED.quantity,
        events = r.events + EXCLUDED.events,
        quantity_max = GREATEST(r.quantity_max, EXCLUDED.quantity_max),
        credits = r.credits + EXCLUDED.credits
    RETURNING 1
),
rd AS (
    INSERT INTO {DAYS} AS r (organization_id, metric_id, day, quantity, events, quantity_max, credits)
    SELECT %(org)s, metric_id, date_trunc('day', occurred_at, 'UTC'), sum(quantity), count(*), max(quantity),
        sum(credits)
    FROM e GROUP BY metric_id, date_trunc('day', occurred_at, 'UTC')
    ON CONFLICT (organization_id, metric_id, day) DO UPDATE SET
        quantity = r.quantity + EXCLUDED.quantity,
        events = r.events + EXCLUDED.events,
        quantity_max = GREATEST(r.quantity_max, EXCLUDED.quantity_max),
        credits = r.credits + EXCLUDED.credits
    RETURNING 1
),
d AS (
    INSERT INTO {DISTINCT} (organization_id, metric_id, hour, value)
    SELECT DISTINCT %(org)s, e.metric_id, date_trunc('hour', e.occurred_at, 'UTC'), i.resource_id
    FROM e JOIN input i ON i.id = e.id WHERE i.is_unique
    ON CONFLICT DO NOTHING
    RETURNING 1
),
dim AS (
    INSERT INTO {DIMENSIONS} AS x (organization_id, metric_id, day, key, value, quantity, events)
    SELECT %(org)s, e.metric_id, date_trunc('day', e.occurred_at, 'UTC'), kv.key, left(kv.value, 100),
        sum(e.quantity), count(*)
    FROM e CROSS JOIN LATERAL jsonb_each_text(e.dimensions) AS kv(key, value)
    WHERE kv.key = ANY(%(dimension_keys)s::text[]) AND kv.value IS NOT NULL
    GROUP BY e.metric_id, date_trunc('day', e.occurred_at, 'UTC'), kv.key, left(kv.value, 100)
    ON CONFLICT (organization_id, metric_id, day, key, value) DO UPDATE SET
        quantity = x.quantity + EXCLUDED.quantity, events = x.events + EXCLUDED.events
    RETURNING 1
)
SELECT i.id FROM input i LEFT JOIN e ON e.id = i.id WHERE e.id IS NULL
"""  # noqa: S608 - table names are the models' own


# The same statement with every column bound as one text of values separated by SEP (split by
# PostgreSQL's string_to_array, in C): a batch binds 12 short texts instead of 12 arrays, which
# psycopg dumps element by element in Python (about 10 us an event). Used when no value
# of the text columns holds SEP (the checks refuse NUL, not SEP); otherwise INSERT_SQL.
SEP = "\x1e"
INSERT_TEXT_SQL = INSERT_SQL.replace(
    """    SELECT * FROM unnest(
        %(ids)b::uuid[], %(keys)b::text[], %(metrics)b::bigint[], %(quantities)b::numeric[],
        %(occurred)b::timestamptz[], %(users)b::text[], %(rtypes)b::text[], %(rids)b::text[],
        %(dims)b::text[], %(credits)b::numeric[], %(fingerprints)b::text[], %(uniques)b::bool[]
    )""",
    """    SELECT * FROM unnest(
        string_to_array(%(ids)s::text, E'\\x1e')::uuid[], string_to_array(%(keys)s::text, E'\\x1e'),
        string_to_array(%(metrics)s::text, E'\\x1e')::bigint[],
        string_to_array(%(quantities)s::text, E'\\x1e')::numeric[],
        string_to_array(%(occurred)s::text, E'\\x1e')::timestamptz[],
        string_to_array(%(users)s::text, E'\\x1e'), string_to_array(%(rtypes)s::text, E'\\x1e'),
        string_to_array(%(rids)s::text, E'\\x1e'), string_to_array(%(dims)s::text, E'\\x1e'),
        string_to_array(%(credits)s::text, E'\\x1e')::numeric[],
        string_to_array(%(fingerprints)s::text, E'\\x1e'),
        string_to_array(%(uniques)s::text, E'\\x1e')::bool[]
    )""",
)
assert INSERT_TEXT_SQL != INSERT_SQL


class Prepared(NamedTuple):
    """An event ready for the statement (a named tuple: a batch makes up to 1,000, and a
    frozen dataclass's constructor sets each field through `object.__setattr__`)."""

    index: int
    id: uuid.UUID
    event: EventInput
    metric: MetricInfo
    credits: Decimal
    fingerprint: str


@dataclass
class Rejected:
    index: int
    error: str
    message: str


@dataclass
class RecordResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    event_ids: dict[int, uuid.UUID] = field(default_factory=dict)  # index -> id of the accepted ones
    duplicate_indexes: list[int] = field(default_factory=list)


def _cursor() -> psycopg.Cursor:
    """A server-side-binding cursor on Django's connection (see `credits.hot_path`): the
    statement is prepared once per connection."""
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


def _begun(conn: psycopg.Connection) -> bool:
    """Whether the transaction Django opened has sent its BEGIN yet (psycopg sends it with the
    first statement: alone, one round trip, unless that statement goes in a pipeline)."""
    return conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE


def account_lock(organization: Organization) -> LockedAccount:
    """`credit_account_lock` (the same statement), its BEGIN sent in the same round trip."""
    assert connection.in_atomic_block, "account_lock needs transaction.atomic"
    with connection.wrap_database_errors:
        connection.ensure_connection()
        conn = connection.connection
        if _begun(conn):
            return credit_account_lock(organization=organization)
        cursor = psycopg.Cursor(conn)
        with conn.pipeline():
            cursor.execute(LOCK_SQL, [organization.pk], prepare=True)
        row = cursor.fetchone()
    if row is None:  # no account yet: the general path creates it
        return credit_account_lock(organization=organization)
    return LockedAccount(*row)


def statement_params(organization_id, rows: list[Prepared], now: datetime) -> tuple[str, dict]:
    """The recording statement for the rows and its parameters (INSERT_TEXT_SQL unless a text
    value holds SEP)."""
    events = [r.event for r in rows]
    keys = SEP.join([e.idempotency_key for e in events])
    users = SEP.join([e.user_id for e in events])
    rtypes = SEP.join([e.resource_type for e in events])
    rids = SEP.join([e.resource_id for e in events])
    separators = len(rows) - 1
    any_credits = any([r.credits for r in rows])
    any_unique = any([r.metric.aggregation == _UNIQUE for r in rows])
    if all(text.count(SEP) == separators for text in (keys, users, rtypes, rids)):
        return INSERT_TEXT_SQL, {
            "org": organization_id,
            "now": now,
            "ids": SEP.join([format(r.id.int, "032x") for r in rows]),
            "keys": keys,
            "metrics": SEP.join([str(r.metric.id) for r in rows]),
            "quantities": SEP.join([str(e.quantity) for e in events]),
            "occurred": SEP.join([e.occurred_text or e.occurred_at.isoformat() for e in events]),
            "users": users,
            "rtypes": rtypes,
            "rids": rids,
            "dims": SEP.join([e.dimensions_json for e in events]),  # JSON escapes control characters
            # NULL when all zero / all false (an ingestion batch): unnest pads them with nulls.
            "credits": SEP.join([str(r.credits) for r in rows]) if any_credits else None,
            "fingerprints": SEP.join([r.fingerprint for r in rows]),
            "uniques": SEP.join(["t" if r.metric.aggregation == _UNIQUE else "f" for r in rows])
            if any_unique
            else None,
            "dimension_keys": list(settings.USAGE_ROLLUP_DIMENSIONS),
        }
    return INSERT_SQL, {
        "org": organization_id,
        "now": now,
        "ids": [r.id for r in rows],
        "keys": [e.idempotency_key for e in events],
        "metrics": [r.metric.id for r in rows],
        "quantities": [e.quantity for e in events],
        "occurred": [e.occurred_at for e in events],
        "users": [e.user_id for e in events],
        "rtypes": [e.resource_type for e in events],
        "rids": [e.resource_id for e in events],
        "dims": [e.dimensions_json for e in events],
        "credits": [r.credits for r in rows] if any_credits else [],
        "fingerprints": [r.fingerprint for r in rows],
        "uniques": [r.metric.aggregation == _UNIQUE for r in rows] if any_unique else [],
        "dimension_keys": list(settings.USAGE_ROLLUP_DIMENSIONS),
    }


def insert_events(organization_id, rows: list[Prepared], now: datetime) -> set[uuid.UUID]:
    """Write the rows (one statement); answers the ids that were new (their key was unused)."""
    not_new = insert_events_not_new(organization_id, rows, now)
    return {r.id for r in rows} - not_new if not_new else {r.id for r in rows}


def insert_events_not_new(organization_id, rows: list[Prepared], now: datetime) -> set[uuid.UUID]:
    """`insert_events`, answering the ids that were NOT new (their key was used before; usually
    none, so a batch need not hash every id)."""
    if not rows:
        return set()
    sql, params = statement_params(organization_id, rows, now)
    with connection.wrap_database_errors, _cursor() as cursor:
        if _begun(cursor.connection):
            cursor.execute(sql, params, prepare=True)
        else:
            with cursor.connection.pipeline():  # with the transaction's BEGIN: one round trip
                cursor.execute(sql, params, prepare=True)
        # The statement answers the ids that were not new (usually none).
        return {row[0] for row in cursor.fetchall()}


def stored_fingerprints(organization_id, keys: list[str]) -> dict[str, tuple[str, uuid.UUID]]:
    """key -> (fingerprint, event id) of keys already recorded."""
    rows = UsageEventKey.objects.filter(
        organization_id=organization_id, idempotency_key__in=keys
    ).values_list("idempotency_key", "fingerprint", "event_id")
    return {key: (fp, event_id) for key, fp, event_id in rows}


_ZERO = Decimal(0)
# The aggregations as plain strings (an enum member read from its class is a Python-level
# descriptor call on 3.11, once per row in the loops below).
_UNIQUE, _COUNT, _MAX = str(Aggregation.UNIQUE), str(Aggregation.COUNT), str(Aggregation.MAX)
_ONE = Decimal(1)
_UUID_NEW = object.__new__
_SET = object.__setattr__
_V4_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs, as `uuid.uuid4()` makes them, from one read of the
    system's random source (uuid4 reads it once per id, and its constructor checks arguments
    that are known good here)."""
    pool = os.urandom(16 * count)
    out: list[uuid.UUID] = []
    append, from_bytes, uuid_class, unknown = out.append, int.from_bytes, uuid.UUID, uuid.SafeUUID.unknown
    for start in range(0, 16 * count, 16):
        value = _UUID_NEW(uuid_class)
        _SET(value, "int", (from_bytes(pool[start : start + 16]) & _V4_CLEAR) | _V4_SET)
        _SET(value, "is_safe", unknown)
        append(value)
    return out


def prepare(
    events: list,
    *,
    catalog: dict[str, MetricInfo],
    now: datetime,
    charge: bool = False,
    strings_checked: bool = False,
    late: list | None = None,
) -> tuple[list[Prepared], list[Rejected]]:
    """Check each event; answers the good ones and the rejected ones with their reasons.
    `strings_checked`: no string of `events` holds a NUL or a lone surrogate (proven by the
    request parser); otherwise every string is checked. `late`: a list that receives (index, key,
    fingerprint, error) of the events whose only fault is their time (too old, in the future),
    instead of rejecting them (the caller answers a replay of a recorded key as a duplicate)."""
    good, bad = [], []
    ids = new_ids(len(events))
    oldest, newest = now - MAX_AGE, now + MAX_AHEAD
    for index, raw in enumerate(events):
        # The usual event in one step (`plain_event`: the same event and fingerprint); anything
        # else, or an event the checks below refuse, takes the general path, which words it.
        plain = plain_event(raw, now, oldest, newest, strings_checked) if type(raw) is dict else None
        if plain is not None:
            event, fingerprint = plain
            metric = catalog.get(event.metric)
            if metric is not None and (metric.aggregation != _UNIQUE or event.resource_id):
                credits = quantize((metric.credits_per_unit or 0) * event.quantity) if charge else _ZERO
                good.append(Prepared(index, ids[index], event, metric, credits, fingerprint))
                continue
        try:
            event = (
                raw
                if isinstance(raw, EventInput)
                else parse_event(raw, now, strings_checked=strings_checked, late_ok=late is not None)
            )
            if event.window_error is not None:
                if late is None:
                    raise event.window_error
                late.append((index, event.idempotency_key, event.fingerprint(), event.window_error))
                continue
            metric = catalog.get(event.metric)
            if metric is None:
                raise EventInvalid("unknown_metric", f"Unknown or inactive metric {event.metric!r}.")
            if metric.aggregation == Aggregation.UNIQUE and not event.resource_id:
                raise EventInvalid(
                    "missing_field", f"resource_id is required for the unique metric {metric.code}."
                )
        except EventInvalid as exc:
            bad.append(Rejected(index, exc.code, exc.message))
            continue
        credits = quantize((metric.credits_per_unit or 0) * event.quantity) if charge else _ZERO
        good.append(Prepared(index, ids[index], event, metric, credits, event.fingerprint()))
    return good, bad


def usage_events_record(
    *, organization: Organization, events: list, strings_checked: bool = False
) -> RecordResult:
    """Record 1 to 1,000 events (dicts as the API takes them, or `EventInput`s). Each is
    accepted, a duplicate (its key was recorded before with the same event), or rejected with a
    reason (invalid, unknown metric, too old or in the future, its key used for another event);
    a rejected event never stops the others. One statement writes the batch."""
    if not 1 <= len(events) <= MAX_BATCH:
        from config.exceptions import ValidationFailed

        raise ValidationFailed(fields={"events": [f"Give 1 to {MAX_BATCH} events."]})
    now = timezone.now()
    late: list[tuple[int, str, str, EventInvalid]] = []
    good, rejected = prepare(
        events, catalog=metric_catalog(), now=now, strings_checked=strings_checked, late=late
    )
    result = RecordResult(rejected=rejected)
    # The first event with a key wins within the batch; later ones are duplicates or conflicts.
    first: dict[str, Prepared] = {}
    unique_rows, repeats = [], []
    for row in good:
        if row.event.idempotency_key in first:
            repeats.append(row)
        else:
            first[row.event.idempotency_key] = row
            unique_rows.append(row)
    ctx = quota_context_for_ingestion(organization=organization, now=now)
    # The rows the quota counters count: a limited metric, in the current period
    # (`ctx.limit(code) is not None and ctx.counts_now(occurred_at)`, each limit read once).
    limited: dict[str, bool] = {}
    hour_from, hour_to = ctx.hour_from, ctx.hour_to
    counted = []
    for r in unique_rows:
        code = r.metric.code
        has_limit = limited.get(code)
        if has_limit is None:
            has_limit = limited[code] = ctx.limit(code) is not None
        if has_limit and hour_from <= r.event.occurred_at < hour_to:
            counted.append(r)
    book = QuotaBook(ctx)
    try:
        with transaction.atomic():
            if counted:
                account_lock(organization)
            old_ids = insert_events_not_new(organization.pk, unique_rows, now)
            # What each metric's counter moves by (`counter_delta`, summed; raised to, for `max`).
            deltas: dict[str, tuple[MetricInfo, Decimal]] = {}
            for row in counted:
                if old_ids and row.id in old_ids:
                    continue
                metric = row.metric
                aggregation = metric.aggregation
                entry = deltas.get(metric.code)
                if entry is None:
                    entry = (metric, _ZERO)
                step = _ONE if aggregation == _COUNT else row.event.quantity
                total = max(entry[1], step) if aggregation == _MAX else entry[1] + step
                deltas[metric.code] = (entry[0], total)
            book.record_many(list(deltas.values()))
            book.finish(organization)
    except BaseException:
        book.abort()
        raise
    if old_ids:
        not_new = [r for r in unique_rows if r.id in old_ids] + repeats
        for row in unique_rows:
            if row.id not in old_ids:
                result.accepted += 1
                result.event_ids[row.index] = row.id
    else:
        not_new = repeats
        result.accepted = len(unique_rows)
        result.event_ids = {row.index: row.id for row in unique_rows}
    looked_up = [r.event.idempotency_key for r in not_new] + [key for _i, key, _f, _e in late]
    stored = stored_fingerprints(organization.pk, looked_up) if looked_up else {}
    # An event outside the time window now is still a duplicate when its key was recorded with the
    # same event (a client's late retry); otherwise it is rejected for its time.
    for index, key, fingerprint, error in late:
        if stored.get(key, (None, None))[0] == fingerprint:
            result.duplicates += 1
            result.duplicate_indexes.append(index)
        else:
            result.rejected.append(Rejected(index, error.code, error.message))
    for row in not_new:
        fingerprint = stored.get(row.event.idempotency_key, (None, None))[0]
        if fingerprint is None and row in repeats:
            fingerprint = first[row.event.idempotency_key].fingerprint
        if fingerprint == row.fingerprint:
            result.duplicates += 1
            result.duplicate_indexes.append(row.index)
        else:
            result.rejected.append(
                Rejected(
                    row.index, "idempotency_conflict", "This idempotency key was used for another event."
                )
            )
    result.rejected.sort(key=lambda r: r.index)
    result.duplicate_indexes.sort()
    return result


def usage_record(
    *,
    organization: Organization,
    metric: str,
    quantity=1,
    idempotency_key: str | None = None,
    occurred_at: datetime | None = None,
    user_id: str = "",
    resource_type: str = "",
    resource_id: str = "",
    dimensions: dict | None = None,
) -> RecordResult:
    """Record one event from Django code after an action (the seeds' `trackUsage`): no quota
    refusal and no credits (use `usage_track` for those). Without a key, a random one."""
    return usage_events_record(
        organization=organization,
        events=[
            {
                "metric": metric,
                "quantity": quantity,
                "idempotency_key": idempotency_key or uuid.uuid4().hex,
                "occurred_at": occurred_at,
                "user_id": user_id,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "dimensions": dimensions or {},
            }
        ],
    )
