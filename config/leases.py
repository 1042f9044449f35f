"""One copy of a task at a time: a PostgreSQL advisory lock held by the running copy.

Celery on Redis redelivers a message whose visibility timeout passed while the first copy still
runs (a long Stripe call, a paused worker); with `acks_late` both copies would run. The first
copy holds a session-level advisory lock named after the task and its object; a copy that finds
it taken does nothing now. The lock belongs to the database session, so a worker killed with
SIGKILL releases it when its connection drops, and the redelivery after that runs normally."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection


def _lock_id(name: str) -> str:
    return f"task-lease:{name}"


@contextlib.contextmanager
def task_lease(name: str) -> Iterator[bool]:
    """Yields True when this copy holds the lease for `name` (released on leaving), False when
    another copy holds it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [_lock_id(name)])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [_lock_id(name)])
