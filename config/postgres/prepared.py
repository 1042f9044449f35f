"""Rows of a statement on Django's connection, server-side bound and prepared once per
connection: PostgreSQL neither parses nor plans it again on later calls. For the few hot reads
written in SQL (`credits.hot_path`, `billing.selectors`, `usage.selectors`); Django's own cursors
bind client-side and never prepare. Values come back as Django's connection loads them (jsonb as
text). With DEBUG on, or under a test's CaptureQueriesContext, each statement is logged in
`connection.queries` as Django's own are.

The statement goes straight to the connection's libpq handle (`PQprepare` once, then
`PQexecPrepared`), its parameters dumped and its row loaded by psycopg's own adapters, those of
Django's connection (`psycopg.adapt.Transformer`). psycopg's cursor does the same with about
100 us more of Python per call on the test machine, all of it under the interpreter lock; libpq
waits for the answer with the lock released. That is what a read costs its neighbours when a
web worker's threads share one interpreter (issue 15: the read paths' p99 at 8 clients).

With DB_PREPARE_THRESHOLD empty (psycopg's `prepare_threshold` None: prepared statements off,
for a pooler that cannot keep them), the statement goes as libpq's unnamed statement
(`PQexecParams`), still bound server-side, and nothing is prepared.

In autocommit only (the read paths' case: ATOMIC_REQUESTS is off), where a statement is its own
transaction. psycopg forgets every statement prepared on a connection (`DEALLOCATE ALL`) after it
sees a ROLLBACK, a DROP or an ALTER pass; a statement of ours found gone is prepared again and run
once more, which changes nothing in autocommit. Inside a transaction block (Django's `atomic`),
where that failure would abort the transaction, or in a pipeline, the statement takes psycopg's
cursor (`prepare=True`), as before."""

from __future__ import annotations

import re
import time
from functools import lru_cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from psycopg import errors, pq
from psycopg.adapt import PyFormat, Transformer

_ROWS = pq.ExecStatus.TUPLES_OK
_GONE = b"26000"  # invalid_sql_statement_name: the statement was deallocated
_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")


@lru_cache(maxsize=256)
def _to_postgres(sql: str) -> tuple[bytes, tuple[str, ...] | None, int, list[PyFormat]]:
    """`sql` with psycopg's placeholders (`%s` or `%(name)s`, `%%` for a percent sign) as
    PostgreSQL's ($1, $2...): the statement's bytes, the names in their order (None when
    positional), the number of parameters and their formats (each as psycopg's `%s` chooses)."""
    names: list[str] = []
    positional = 0

    def number(match: re.Match) -> str:
        nonlocal positional
        if match.group(0) == "%%":
            return "%"
        if match.group(1) is None:
            positional += 1
            return f"${positional}"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    text = _PLACEHOLDER.sub(number, sql)
    if names and positional:
        raise ValueError("a statement's placeholders are all %s or all %(name)s")
    count = len(names) or positional
    return text.encode(), (tuple(names) if names else None), count, [PyFormat.AUTO] * count


class _Session:
    """What one psycopg connection has prepared, and its adapters' transformer. Lives on the
    connection, so a new connection (Django reconnects) starts with nothing prepared."""

    __slots__ = ("names", "prepared", "transformer")

    def __init__(self, conn: psycopg.Connection) -> None:
        self.names: dict[tuple[str, tuple[int, ...]], bytes] = {}
        self.prepared = 0  # statements prepared so far: each gets a name never used before
        self.transformer = Transformer(conn)


def _session(conn: psycopg.Connection) -> _Session:
    session = getattr(conn, "_billing_prepared", None)
    if session is None:
        session = conn._billing_prepared = _Session(conn)
    return session


def _direct(conn: psycopg.Connection, sql: str, params, many: bool):
    query, names, count, formats = _to_postgres(sql)
    values = [params[name] for name in names] if names is not None else list(params or ())
    if len(values) != count:
        raise TypeError(f"the statement takes {count} parameters, {len(values)} given")
    session = _session(conn)
    tx = session.transformer
    dumped = tx.dump_sequence(values, formats)
    types = tuple(tx.types)  # and tx.formats: what each parameter was dumped as
    pgconn = conn.pgconn
    if conn.prepare_threshold is None:
        # Prepared statements turned off (DB_PREPARE_THRESHOLD empty, behind a pooler that cannot
        # keep them): the unnamed statement, parsed and planned each time, as psycopg's cursor does.
        with conn.lock:
            result = pgconn.exec_params(query, dumped, types, tx.formats)
        return _rows(conn, tx, result, many)
    with conn.lock:
        name = session.names.get((sql, types))
        if name is not None:
            result = pgconn.exec_prepared(name, dumped, tx.formats)
            if result.status != _ROWS and result.error_field(pq.DiagnosticField.SQLSTATE) == _GONE:
                session.names.clear()  # psycopg deallocated them all
                name = None
        if name is None:
            name = f"_billing_{session.prepared}".encode()
            session.prepared += 1
            _check(conn, pgconn.prepare(name, query, types))
            session.names[sql, types] = name
            result = pgconn.exec_prepared(name, dumped, tx.formats)
    return _rows(conn, tx, result, many)


def _rows(conn: psycopg.Connection, tx: Transformer, result: pq.abc.PGresult, many: bool):
    if result.status != _ROWS:
        _check(conn, result)
    try:
        tx.set_pgresult(result)
        if many:
            return tx.load_rows(0, result.ntuples, tuple)
        return tx.load_row(0, tuple) if result.ntuples else None
    finally:
        tx.set_pgresult(None)


def _check(conn: psycopg.Connection, result: pq.abc.PGresult) -> None:
    if result.status not in (_ROWS, pq.ExecStatus.COMMAND_OK):
        raise errors.error_from_result(result, encoding=conn.info.encoding)


def _run(sql: str, params, many: bool):
    db = connections[DEFAULT_DB_ALIAS]  # `connection` looks the thread's connection up on every attribute
    with db.wrap_database_errors:
        db.close_if_health_check_failed()  # as Django's own cursors do (CONN_HEALTH_CHECKS)
        if db.connection is None:
            db.ensure_connection()
        conn = db.connection
        started = time.monotonic() if db.queries_logged else None
        try:
            pgconn = conn.pgconn
            if (
                conn.autocommit
                and pgconn.transaction_status == pq.TransactionStatus.IDLE
                and pgconn.pipeline_status == pq.PipelineStatus.OFF
            ):
                return _direct(conn, sql, params, many)
            cursor = psycopg.Cursor(conn)
            try:
                cursor.execute(sql, params, prepare=True)
                return cursor.fetchall() if many else cursor.fetchone()
            finally:
                cursor.close()
        finally:
            if started is not None:  # DEBUG, or a test capturing queries: shown as Django's are
                db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def fetchone(sql: str, params) -> tuple | None:
    return _run(sql, params, False)


def fetchall(sql: str, params) -> list[tuple]:
    return _run(sql, params, True)
