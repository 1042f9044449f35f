"""`config.postgres.prepared`: the hot reads' statements, run on the connection's libpq handle in
autocommit and through psycopg's cursor inside a transaction, answer what Django's own cursor
answers, value for value and type for type, on real PostgreSQL; survive psycopg deallocating every
prepared statement (after a ROLLBACK), a failed statement and a new connection; and keep each
thread's connection to itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.db.utils import DataError, ProgrammingError
from django.test.utils import CaptureQueriesContext

from config.postgres import prepared
from config.postgres.prepared import _to_postgres
from tests.reliability.helpers import run_together

pytestmark = pytest.mark.django_db(transaction=True)

TYPED = """
SELECT %(id)s::uuid, %(at)s::timestamptz, %(amount)s::numeric(20, 4), ARRAY[%(amount)s, 2.5]::numeric[],
       '{"a": [1, 2], "b": null}'::jsonb, NULL::text, %(name)s::text, true, %(n)s::bigint, '50%%'
"""
ROWS = "SELECT g, g * 1.5 FROM generate_series(1, %s) AS g ORDER BY g"


def django_rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def ours() -> set[str]:
    """The statements of ours prepared on this thread's connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name LIKE '\\_billing\\_%%'")
        return {name for (name,) in cursor.fetchall()}


def params() -> dict:
    return {
        "id": uuid.uuid4(),
        "at": datetime(2026, 12, 1, 3, 4, 5, 678901, tzinfo=UTC),
        "amount": Decimal("1234567.8901"),
        "name": 'Zoë\'s "org"',
        "n": 2**40,
    }


def test_placeholders_become_postgres_numbered_ones():
    assert _to_postgres("SELECT %s, %s, '%%'")[:3] == (b"SELECT $1, $2, '%'", None, 2)
    assert _to_postgres("SELECT %(a)s, %(b)s, %(a)s")[:3] == (b"SELECT $1, $2, $1", ("a", "b"), 2)
    with pytest.raises(ValueError, match="all %s or all"):
        _to_postgres("SELECT %s, %(a)s")


def test_rows_are_djangos_value_for_value_in_autocommit():
    values = params()
    row = prepared.fetchone(TYPED, values)
    expected = django_rows(TYPED, values)[0]
    assert row == expected
    assert [type(v) for v in row] == [type(v) for v in expected]
    assert row[1].utcoffset().total_seconds() == 0 and row[4] == '{"a": [1, 2], "b": null}'
    assert ours(), "the statement was not prepared on the libpq handle"
    assert prepared.fetchall(ROWS, [3]) == django_rows(ROWS, [3]) == [
        (1, Decimal("1.5")), (2, Decimal("3.0")), (3, Decimal("4.5")),
    ]  # fmt: skip
    assert prepared.fetchall(ROWS, [0]) == []
    assert prepared.fetchone(ROWS, [0]) is None


def test_one_statement_per_text_and_parameter_types_prepared_once():
    before = len(ours())
    for n in range(5):
        assert prepared.fetchone("SELECT %s::bigint + 1", [n]) == (n + 1,)
    assert len(ours()) == before + 1
    # Another type of parameter (int8, not int2) is another statement, as psycopg's cache keys it.
    assert prepared.fetchone("SELECT %s::bigint + 1", [2**40]) == (2**40 + 1,)
    assert len(ours()) == before + 2


def test_inside_a_transaction_psycopgs_cursor_reads_the_transactions_own_writes():
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE t_prepared (v int)")
    try:
        before = ours()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO t_prepared VALUES (7)")
            assert prepared.fetchone("SELECT sum(v) FROM t_prepared", []) == (7,)
        assert ours() == before  # not on the libpq handle inside the block
        with transaction.atomic():  # nothing run yet: psycopg owes the BEGIN, so its cursor runs it
            assert prepared.fetchone("SELECT count(*) FROM t_prepared", []) == (1,)
            with connection.cursor() as cursor:
                cursor.execute("INSERT INTO t_prepared VALUES (1)")
            transaction.set_rollback(True)
        assert prepared.fetchone("SELECT count(*) FROM t_prepared", []) == (1,)  # rolled back
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE t_prepared")


def test_a_statement_psycopg_deallocated_is_prepared_again():
    assert prepared.fetchone("SELECT %s::text", ["a"]) == ("a",)
    assert ours()
    with transaction.atomic():  # psycopg's cursor prepares a statement of its own
        assert prepared.fetchone("SELECT %s::int", [1]) == (1,)
    # A block rolled back to its savepoint: psycopg sees the ROLLBACK pass, forgets its prepared
    # statements and deallocates them all on the connection (DEALLOCATE ALL) with its next
    # statement, ours with them.
    with transaction.atomic(), pytest.raises(RuntimeError), transaction.atomic():
        django_rows("SELECT 1", [])
        raise RuntimeError
    django_rows("SELECT 1", [])
    assert not ours()
    assert prepared.fetchone("SELECT %s::text", ["b"]) == ("b",)
    assert prepared.fetchall(ROWS, [2]) == [(1, Decimal("1.5")), (2, Decimal("3.0"))]
    assert len(ours()) == 2
    with connection.cursor() as cursor:  # and DEALLOCATE ALL sent by anyone else
        cursor.execute("DEALLOCATE ALL")
    assert prepared.fetchone("SELECT %s::text", ["c"]) == ("c",)


def test_a_failed_statement_raises_djangos_error_and_the_connection_goes_on():
    with pytest.raises(DataError, match="division by zero"):
        prepared.fetchone("SELECT 1 / %s::int", [0])
    with pytest.raises(ProgrammingError):
        prepared.fetchone("SELECT * FROM no_such_table WHERE id = %s", [1])
    with pytest.raises(TypeError):
        prepared.fetchone("SELECT %s::int", [])
    assert prepared.fetchone("SELECT 1 / %s::int", [1]) == (1,)
    assert connection.connection.info.transaction_status.name == "IDLE"


def test_a_new_connection_prepares_its_own():
    assert prepared.fetchone("SELECT %s::int * 2", [21]) == (42,)
    connection.close()
    assert prepared.fetchone("SELECT %s::int * 2", [4]) == (8,)
    assert len(ours()) == 1


def test_statements_are_logged_as_djangos_when_queries_are_captured():
    with CaptureQueriesContext(connection) as captured:
        prepared.fetchone("SELECT %s::int", [1])
        prepared.fetchall(ROWS, [1])
    assert [q["sql"] for q in captured.captured_queries] == ["SELECT %s::int", ROWS]


def test_threads_each_read_their_own_rows_on_their_own_connections():
    threads, rounds = 8, 40

    def reader(t: int):
        wrong, backend = [], None
        for i in range(rounds):
            key = uuid.UUID(int=t * 1000 + i)
            row = prepared.fetchone("SELECT %s::uuid, %s::int, pg_backend_pid()", [key, t])
            if row[:2] != (key, t):
                wrong.append((t, i, row))
            backend = row[2]
        return wrong, backend

    results = run_together(threads, reader)
    assert [outcome for outcome, _ in results] == ["ok"] * threads, results
    assert [wrong for _, (wrong, _) in results] == [[]] * threads
    assert len({backend for _, (_, backend) in results}) == threads


def all_prepared() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM pg_prepared_statements")
        return {name for (name,) in cursor.fetchall()}


def test_with_prepared_statements_off_nothing_is_prepared():
    """DB_PREPARE_THRESHOLD empty (a pooler in transaction mode that cannot keep prepared
    statements): psycopg's `prepare_threshold` is None, and the statements go unnamed, each one
    parsed on its own, still bound server-side."""
    connection.close()
    connection.ensure_connection()
    connection.connection.prepare_threshold = None
    try:
        for n in range(6):
            assert prepared.fetchone("SELECT %s::bigint + 1", [n]) == (n + 1,)
            assert prepared.fetchall(ROWS, [2]) == django_rows(ROWS, [2])
        values = params()
        assert prepared.fetchone(TYPED, values) == django_rows(TYPED, values)[0]
        with pytest.raises(DataError):
            prepared.fetchone("SELECT 1 / %s::int", [0])
        assert all_prepared() == set()
    finally:
        connection.close()
