"""Fixtures of the credits tests.

The test database is built by the migrations (from a migrated template, tests/db_template.py),
so the append-only trigger of migration 0002 is there. After every test that touched the database the
ledger's invariants are checked (the same checks as `manage.py reconcile`); a test that builds
drift on purpose asks for `allow_ledger_drift`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from credits.selectors import ledger_drift_list


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
def after_commit(django_capture_on_commit_callbacks, celery_eager):
    """`with after_commit(): ...` runs the on-commit callbacks (and so the enqueued tasks) at the
    end of the block, as a real commit would."""
    return lambda: django_capture_on_commit_callbacks(execute=True)
