"""gunicorn's configuration, the same for `make run`, `make bench` and docker-compose.yml:

    gunicorn -c config/gunicorn.py config.wsgi:application

Threaded workers (gunicorn's `gthread`, which `config.gunicorn_worker.BalancedThreadWorker` extends
to share kept-alive connections fairly between the workers: see that module): each worker process
runs `WEB_THREADS` requests at once, and each thread keeps one persistent database connection
(`CONN_MAX_AGE`), so the web server never holds more than WEB_CONCURRENCY x WEB_THREADS connections
to PostgreSQL, whatever the number of clients: connections beyond that wait in the listen backlog,
not in PostgreSQL.
A thread waiting on Stripe (bounded by the Stripe client's own timeout) blocks one thread, not a
whole worker.

Every value comes from the environment or `.env` (defaults in brackets):
    WEB_BIND            address to listen on                      [0.0.0.0:$PORT, 8000]
    WEB_CONCURRENCY     worker processes                          [2]
    WEB_THREADS         threads per worker (= DB connections)     [4]
    WEB_TIMEOUT         seconds before a silent worker is killed  [60]
    WEB_GRACEFUL_TIMEOUT seconds to finish requests on stop        [30]
    WEB_KEEPALIVE       seconds a kept-alive connection may idle  [5]
    WEB_ACCESS_LOG      access log file, "-" for stdout, "" off   [-]
    WEB_RELOAD          restart workers when code changes         [false]
    WEB_WORKER_CLASS    gunicorn worker class       [config.gunicorn_worker.BalancedThreadWorker]
    WEB_GC_THRESHOLD    allocations between young-generation GCs   [10000]
    FORWARDED_ALLOW_IPS proxies whose X-Forwarded-* are trusted   [127.0.0.1]

WEB_TIMEOUT must stay longer than the longest request the application makes on purpose: a request
that calls Stripe is bounded by the Stripe client's timeout and retries (STRIPE_TIMEOUT_SECONDS and
STRIPE_MAX_NETWORK_RETRIES: 25.5 s at most by default, `billing.stripe_api.worst_case_seconds`), so the
default leaves room for that plus the database work. gunicorn applies it to a worker that stops
answering its arbiter (a sync worker stuck in a request, a gthread worker whose main loop hangs);
a gthread worker's request threads are bounded by the application's own timeouts.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path

import environ

# The same `.env` the settings read (the real environment wins).
environ.Env.read_env(Path(__file__).resolve().parent.parent / ".env", overwrite=False)


def _bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


wsgi_app = "config.wsgi:application"
# All interfaces by default (in a container); `make run` binds 127.0.0.1 only.
bind = [os.environ.get("WEB_BIND") or f"0.0.0.0:{os.environ.get('PORT') or 8000}"]
worker_class = os.environ.get("WEB_WORKER_CLASS") or "config.gunicorn_worker.BalancedThreadWorker"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
threads = int(os.environ.get("WEB_THREADS") or 4)
timeout = int(os.environ.get("WEB_TIMEOUT") or 60)
graceful_timeout = int(os.environ.get("WEB_GRACEFUL_TIMEOUT") or 30)
keepalive = int(os.environ.get("WEB_KEEPALIVE") or 5)
accesslog = os.environ.get("WEB_ACCESS_LOG", "-") or None
# gunicorn's logger, the access line built from the atoms its format names only (the same line).
logger_class = "config.gunicorn_logging.AccessLogger"
errorlog = "-"
loglevel = os.environ.get("WEB_LOG_LEVEL", "info")
reload = _bool("WEB_RELOAD")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "billing-web"
# gunicorn's control socket (`gunicornc`) has one default path per user, which several servers on
# one machine (make run, the tests, the benchmark) would fight over; nothing here uses it.
control_socket_disable = True
# Django and the apps are imported once in the arbiter and the workers fork from it: faster
# start-up and shared memory. (Not with reload, which must re-import in each worker.)
preload_app = not reload


# Garbage collection: the application imported above is moved out of the collector's sight
# before the workers fork (gc.freeze), so a worker's collections never walk Django's and the
# apps' objects (and never touch, so never copy, the pages they share with the arbiter); the
# workers collect their youngest generation every WEB_GC_THRESHOLD allocations [10000] instead
# of Python's 700: a 1,000-event batch allocates tens of thousands of short-lived objects, and at
# 700 a third of its CPU went to collections that found nothing to free.
def when_ready(server):
    if not reload:
        # The URL configuration (every view module) and its reverse map, built once here rather
        # than on each worker's first requests (about 100 ms of CPU per worker), then frozen.
        from django.urls import get_resolver

        resolver = get_resolver()
        resolver.url_patterns  # noqa: B018 (imports the URL modules)
        resolver.reverse_dict  # noqa: B018 (builds the reverse map)
        gc.freeze()


def post_fork(server, worker):
    _, second, third = gc.get_threshold()
    gc.set_threshold(int(os.environ.get("WEB_GC_THRESHOLD") or 10000), second, third)
