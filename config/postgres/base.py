"""Django's PostgreSQL backend with a health check that costs no round trip.

`CONN_HEALTH_CHECKS` makes Django send `SELECT 1` on a persistent connection before its first use
in each request, so a connection PostgreSQL dropped (a restart, `pg_terminate_backend`, an idle
timeout) is replaced instead of failing the request: a whole round trip on every request, about a
third of a consumption's. PostgreSQL never sends anything on an idle connection unasked except
when it ends it (a FATAL error message, then it closes the socket), so a socket with nothing to
read, on a connection psycopg still sees idle and healthy, is alive as far as `SELECT 1` could
tell: that check is a `poll()` with no timeout. Anything else (bytes waiting, the socket closed or
in error, a connection not idle) falls back to Django's `SELECT 1`, which closes the connection
when it fails. A connection that broke unseen (a dead network path without a reset) fails its
request as it would have failed `SELECT 1`, and Django closes it after the error.

`ENGINE` is `config.postgres` (config/settings.py); everything else is Django's backend.
"""

from __future__ import annotations

import select

import psycopg
from django.db.backends.postgresql import base

_TROUBLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


def quiet(connection: psycopg.Connection) -> bool:
    """True when the connection is idle, psycopg sees it healthy and its socket has nothing to read."""
    try:
        if connection.closed or connection.broken:
            return False
        if connection.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return False
        if connection.pgconn.status != psycopg.pq.ConnStatus.OK:
            return False
        poller = select.poll()
        poller.register(connection.pgconn.socket, _TROUBLE)
        return not poller.poll(0)
    except (OSError, psycopg.Error, ValueError):
        return False


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and not self.pool
            and quiet(self.connection)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
