"""One row of a statement on Django's connection, server-side bound and prepared once per
connection (`prepare=True`): PostgreSQL neither parses nor plans it again on later calls. For the
few hot reads written in SQL (`credits.hot_path`, `billing.selectors`); Django's own cursors bind
client-side and never prepare. Values come back as Django's connection loads them (jsonb as text)."""

from __future__ import annotations

import psycopg
from django.db import connection


def fetchone(sql: str, params) -> tuple | None:
    with connection.wrap_database_errors:
        connection.close_if_health_check_failed()  # as Django's own cursors do (CONN_HEALTH_CHECKS)
        connection.ensure_connection()
        cursor = psycopg.Cursor(connection.connection)
        try:
            cursor.execute(sql, params, prepare=True)
            return cursor.fetchone()
        finally:
            cursor.close()
