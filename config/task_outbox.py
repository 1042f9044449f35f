"""The task outbox: a Celery task enqueued while Redis is away is kept in PostgreSQL, not lost.

Every task of the project is an `OutboxTask` (the Celery app's task class, `config/celery.py`); the
rows are `billing.models.TaskOutbox` (looked up by label: config imports no app).
Its `apply_async` (and so `delay`) publishes to the broker as usual; when the broker cannot be
reached it writes a `TaskOutbox` row instead (task name, arguments, the task id it would have had),
logs a warning and returns the task's `AsyncResult` as if it had been sent: the request or task
that enqueued it goes on. For `BROKER_RETRY_SECONDS` after a failure, enqueues go straight to the
outbox without trying the broker, so an outage does not add a connection timeout to every request.

`task_outbox_dispatch()` (the `billing.task_outbox_dispatch_task` beat task, every minute) sends
the rows again, oldest first, under `SELECT ... FOR UPDATE SKIP LOCKED`, and marks them dispatched
(kept a week for the record). Tasks are safe to run twice, so a row sent twice (a dispatcher that
dies between the send and the commit) does no harm.

Not kept: beat's own periodic sends (beat sends them again on its next tick) and eager runs.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from datetime import timedelta

import redis
from celery import Task
from django.apps import apps
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

BROKER_ERRORS = (OperationalError, redis.RedisError, ConnectionError, TimeoutError)
BROKER_RETRY_SECONDS = 30.0
DISPATCH_BATCH = 500
KEEP_DISPATCHED = timedelta(days=7)

_state = {"down_until": 0.0}
_lock = threading.Lock()
# Read by /healthz: tasks written to the outbox by this process.
STATS = {"kept": 0}


def _keep(task_name: str, args, kwargs, options: dict, exc: Exception | None) -> str:
    TaskOutbox = apps.get_model("billing", "TaskOutbox")
    task_id = options.get("task_id") or str(uuid.uuid4())
    kept_options = {k: options[k] for k in ("queue", "countdown", "priority") if options.get(k) is not None}
    TaskOutbox.objects.create(
        task=task_name,
        task_id=task_id,
        args=list(args or []),
        kwargs=dict(kwargs or {}),
        options=kept_options,
        last_error=(f"{type(exc).__name__}: {exc}" if exc else "broker marked down")[:500],
    )
    with _lock:
        STATS["kept"] += 1
    logger.warning("task outbox: broker unreachable, %s kept for later (%s)", task_name, task_id)
    return task_id


class OutboxTask(Task):
    """Celery's Task, whose enqueue falls back to the `TaskOutbox` table when the broker is away."""

    def apply_async(
        self,
        args=None,
        kwargs=None,
        task_id=None,
        producer=None,
        link=None,
        link_error=None,
        shadow=None,
        **options,
    ):
        if self.app.conf.task_always_eager or producer is not None:
            # Eager runs have no broker; beat (which passes its producer) sends again on its next tick.
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        if time.monotonic() < _state["down_until"]:
            kept = _keep(self.name, args, kwargs, {**options, "task_id": task_id}, None)
            return self.AsyncResult(kept)
        try:
            return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)
        except RuntimeError as exc:
            # The Redis result backend gives up reconnecting its result subscription this way.
            if not isinstance(exc.__cause__, BROKER_ERRORS):
                raise
            _state["down_until"] = time.monotonic() + BROKER_RETRY_SECONDS
            kept = _keep(self.name, args, kwargs, {**options, "task_id": task_id}, exc.__cause__)
            return self.AsyncResult(kept)
        except BROKER_ERRORS as exc:
            _state["down_until"] = time.monotonic() + BROKER_RETRY_SECONDS
            kept = _keep(self.name, args, kwargs, {**options, "task_id": task_id}, exc)
            return self.AsyncResult(kept)


def reset() -> None:
    """Forget an outage (tests)."""
    _state["down_until"] = 0.0


def task_outbox_dispatch(*, batch: int = DISPATCH_BATCH) -> int:
    """Send the kept tasks again, oldest first; the number sent. Stops at the first broker error
    (the rest wait for the next run)."""
    from django.db import transaction
    from django.utils import timezone

    from config.celery import app

    TaskOutbox = apps.get_model("billing", "TaskOutbox")
    sent = 0
    with transaction.atomic():
        rows = list(
            TaskOutbox.objects.select_for_update(skip_locked=True)
            .filter(dispatched_at__isnull=True)
            .order_by("id")[:batch]
        )
        for row in rows:
            try:
                app.send_task(row.task, args=row.args, kwargs=row.kwargs, task_id=row.task_id, **row.options)
            except BROKER_ERRORS as exc:
                row.attempts += 1
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                row.save(update_fields=["attempts", "last_error"])
                logger.warning("task outbox: broker still unreachable; %s rows wait", len(rows) - sent)
                break
            row.dispatched_at = timezone.now()
            row.attempts += 1
            row.save(update_fields=["dispatched_at", "attempts"])
            sent += 1
    if sent:
        logger.info("task outbox: %s kept tasks sent", sent)
        _state["down_until"] = 0.0
    TaskOutbox.objects.filter(dispatched_at__lt=timezone.now() - KEEP_DISPATCHED).delete()
    return sent


def task_outbox_pending() -> int:
    return apps.get_model("billing", "TaskOutbox").objects.filter(dispatched_at__isnull=True).count()
