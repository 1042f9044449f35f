"""Monthly partitions of `usage_usageevent` (PostgreSQL declarative partitioning).

`partitions_ensure` creates the months around now (a beat task runs it daily, and migration
0001 once), so inserts land in a monthly partition; rows that landed in the default partition
(no monthly partition existed yet) are moved into the new one in the same transaction.
`partition_detach` takes an old month out of the table (the rollups keep its totals, so every
read stays right); the detached table can then be archived or dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection as default_connection
from django.db import transaction
from django.utils import timezone

TABLE = "usage_usageevent"
DEFAULT = f"{TABLE}_default"


def month_start(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def add_months(month: datetime, count: int) -> datetime:
    index = month.year * 12 + month.month - 1 + count
    return month.replace(year=index // 12, month=index % 12 + 1)


def partition_name(month: datetime) -> str:
    return f"{TABLE}_{month:%Y%m}"


def partitions_list(*, connection=None) -> list[str]:
    """The monthly partitions attached now, oldest first."""
    connection = connection or default_connection
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass AND c.relname <> %s ORDER BY c.relname",
            [TABLE, DEFAULT],
        )
        return [row[0] for row in cursor.fetchall()]


def partitions_ensure(
    *, connection=None, months_back: int = 2, months_ahead: int = 3, now: datetime | None = None
) -> list[str]:
    """Create the monthly partitions from `months_back` before now to `months_ahead` after it
    that do not exist yet. Answers the names created. Safe to run again."""
    connection = connection or default_connection
    current = month_start(now or timezone.now())
    existing = set(partitions_list(connection=connection))
    created = []
    for offset in range(-months_back, months_ahead + 1):
        lower = add_months(current, offset)
        name = partition_name(lower)
        if name in existing:
            continue
        _create(connection, name, lower, add_months(lower, 1))
        created.append(name)
    return created


def _create(connection, name: str, lower: datetime, upper: datetime) -> None:
    bounds = [lower, upper]
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s)",  # noqa: S608
            bounds,
        )
        (stray,) = cursor.fetchone()
        if not stray:
            cursor.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                bounds,
            )
            return
        # Rows of this month went to the default partition: move them into the new one.
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {DEFAULT}")
        cursor.execute(f"CREATE TABLE {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", bounds)
        cursor.execute(
            f"WITH moved AS (DELETE FROM {DEFAULT} WHERE occurred_at >= %s AND occurred_at < %s "  # noqa: S608
            f"RETURNING *) INSERT INTO {TABLE} SELECT * FROM moved",
            bounds,
        )
        cursor.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {DEFAULT} DEFAULT")


def partition_detach(*, month: datetime, connection=None) -> str | None:
    """Detach the partition of `month` (its rows leave the table; the rollups keep the totals).
    Answers its name, or None when there was none."""
    connection = connection or default_connection
    name = partition_name(month_start(month))
    if name not in partitions_list(connection=connection):
        return None
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
    return name
