"""Fixtures of the credits tests.

The suite runs with `--no-migrations`, so the append-only trigger of migration 0002 is
installed here from the migration's own SQL. After every test that touched the database the
ledger's invariants are checked (the same checks as `manage.py reconcile`); a test that builds
drift on purpose asks for `allow_ledger_drift`.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime

import pytest
import time_machine
from django.db import connection

from config.celery import app
from credits.selectors import ledger_drift_list

append_only = importlib.import_module("credits.migrations.0002_ledger_append_only")


@pytest.fixture(scope="session", autouse=True)
def _ledger_trigger(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(append_only.INSTALL_SQL)
    yield


@pytest.fixture
def allow_ledger_drift():
    """This test leaves drift behind on purpose; skip the after-test invariant check."""
    return True


@pytest.fixture(autouse=True)
def _ledger_invariants(request):
    yield
    marker = request.node.get_closest_marker("django_db")
    if marker is None or "allow_ledger_drift" in request.fixturenames:
        return
    report = ledger_drift_list()
    assert report.clean, "ledger drift after the test:\n" + "\n".join(map(str, report.drifts))


@pytest.fixture
def clock():
    """A frozen clock the test moves by hand: `clock.move_to(dt)`, `clock.shift(timedelta)`."""
    with time_machine.travel(datetime(2026, 3, 1, 12, 0, tzinfo=UTC), tick=False) as traveller:
        yield traveller


@pytest.fixture
def eager_celery():
    """Tasks run in-process when enqueued (for tests of what a task does, not of the broker)."""
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = before


@pytest.fixture
def after_commit(django_capture_on_commit_callbacks, eager_celery):
    """`with after_commit(): ...` runs the on-commit callbacks (and so the enqueued tasks) at the
    end of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
