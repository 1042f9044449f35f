"""Workers that count the connections handed from the main thread to the thread pool (gthread's
`enqueue_req`), and an application that answers with that count: how many times a worker's main
thread dispatched a connection (tests/serving/test_gunicorn_worker.py)."""

from __future__ import annotations

import itertools

from gunicorn.workers.gthread import ThreadWorker

from config.gunicorn_worker import BalancedThreadWorker

_dispatched = itertools.count(1)
_last = [0]


class _Counting:
    def enqueue_req(self, conn):
        _last[0] = next(_dispatched)
        super().enqueue_req(conn)


class CountingBalancedWorker(_Counting, BalancedThreadWorker):
    pass


class CountingThreadWorker(_Counting, ThreadWorker):
    pass


def app(environ, start_response):
    body = str(_last[0]).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
