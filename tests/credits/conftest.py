"""Fixtures of the credits tests.

The test database is built by the migrations (from a migrated template, tests/db_template.py),
so the append-only trigger of migration 0002 is there. The ledger's invariants are checked after
every test of the whole suite (`tests/conftest.py`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine


@pytest.fixture
def clock():
    """A frozen clock the test moves by hand: `clock.move_to(dt)`, `clock.shift(timedelta)`."""
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False) as traveller:
        yield traveller


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks, celery_eager):
    """`with after_commit(): ...` runs the on-commit callbacks (and so the enqueued tasks) at the
    end of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
