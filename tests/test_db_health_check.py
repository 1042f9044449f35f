"""The persistent connection's health check (`config/postgres/base.py`): a quiet connection is
trusted without a round trip; one PostgreSQL ended is replaced before the request uses it."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Organization
from config.postgres.base import quiet
from tests.benchmarks.bench_credits import dsn
from tests.processes import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def _statements_sent():
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def execute(self, query, params=None, **kwargs):
        sent.append(str(query))
        return original(self, query, params, **kwargs)

    return sent, original, execute


def _new_request() -> None:
    """What `request_started` does to a kept connection: its health check is due again."""
    connection.health_check_done = False


def test_a_quiet_connection_is_trusted_without_select_1(settings):
    assert connection.settings_dict["CONN_HEALTH_CHECKS"] is True
    connection.ensure_connection()
    assert quiet(connection.connection)
    sent, original, execute = _statements_sent()
    psycopg.Cursor.execute = execute
    try:
        _new_request()
        connection.close_if_health_check_failed()
    finally:
        psycopg.Cursor.execute = original
    assert sent == []
    assert connection.health_check_done
    assert connection.connection is not None and not connection.connection.closed


def test_a_connection_postgresql_ended_is_replaced_before_use():
    connection.ensure_connection()
    old = connection.connection
    pid = old.info.backend_pid
    with psycopg.connect(dsn(), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    # PostgreSQL's FATAL message and the closed socket arrive on the old connection.
    wait_until(lambda: not quiet(old), timeout=30, what="the ended connection's socket to show it")
    _new_request()
    connection.close_if_health_check_failed()
    assert connection.connection is None  # closed by the fallback SELECT 1, not used
    with CaptureQueriesContext(connection):
        assert Organization.objects.count() >= 0  # a new connection answers
    assert connection.connection.info.backend_pid != pid


def test_a_connection_inside_a_transaction_falls_back_to_django(settings):
    connection.ensure_connection()
    with psycopg.Connection.connect(dsn()) as other:
        other.execute("SELECT 1")  # not autocommit: a transaction is open
        assert not quiet(other)
