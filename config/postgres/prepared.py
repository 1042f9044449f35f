"""Rows of a statement on Django's connection, server-side bound and prepared once per
connection (`prepare=True`): PostgreSQL neither parses nor plans it again on later calls. For the
few hot reads written in SQL (`credits.hot_path`, `billing.selectors`, `usage.selectors`); Django's
own cursors bind client-side and never prepare. Values come back as Django's connection loads
them (jsonb as text). With DEBUG on, or under a test's CaptureQueriesContext, each statement is
logged in `connection.queries` as Django's own are."""

from __future__ import annotations

import time

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections


def _run(sql: str, params, many: bool):
    db = connections[DEFAULT_DB_ALIAS]  # `connection` looks the thread's connection up on every attribute
    with db.wrap_database_errors:
        db.close_if_health_check_failed()  # as Django's own cursors do (CONN_HEALTH_CHECKS)
        if db.connection is None:
            db.ensure_connection()
        cursor = psycopg.Cursor(db.connection)
        started = time.monotonic() if db.queries_logged else None
        try:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchall() if many else cursor.fetchone()
        finally:
            cursor.close()
            if started is not None:  # DEBUG, or a test capturing queries: shown as Django's are
                db.queries_log.append({"sql": sql, "time": f"{time.monotonic() - started:.3f}"})


def fetchone(sql: str, params) -> tuple | None:
    return _run(sql, params, False)


def fetchall(sql: str, params) -> list[tuple]:
    return _run(sql, params, True)
