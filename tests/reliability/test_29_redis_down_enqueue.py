"""Reliability list, item 29: Redis down during an enqueue: the outbox row survives and is
dispatched later.

A real Redis (tests/redis_outage.py) is killed with SIGKILL; a service commits a change that
enqueues a task after commit; the enqueue fails, a `TaskOutbox` row keeps it (the commit and the
request are not failed by it). Redis comes back on the same port, beat's dispatch task goes
through it to a real Celery worker, which sends the kept task again under its original id; the
worker runs it.
"""

from __future__ import annotations

import logging

import pytest
from django.db import transaction

from billing.models import BillingNotice, TaskOutbox
from billing.services import billing_notice_queue
from billing.tasks import task_outbox_dispatch_task
from config.celery import app as celery_app
from config.celery import ping_task
from tests.billing.factories import OrganizationFactory
from tests.processes import celery_worker, wait_until
from tests.redis_outage import DisposableRedis, redis_for_this_process

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_tasks_enqueued_while_redis_is_down_are_kept_and_dispatched_when_it_returns(tmp_path, caplog):
    server = DisposableRedis(tmp_path / "redis")
    server.start()
    try:
        with redis_for_this_process(server):
            organization = OrganizationFactory(billing_email="ops@example.test")
            server.stop()

            with caplog.at_level(logging.WARNING), transaction.atomic():
                created = billing_notice_queue(
                    organization=organization, kind="low_balance", key="low_balance:r29", context={}
                )
            assert created
            pong = ping_task.delay("r29")  # a second one, whose result we can wait for

            kept = list(TaskOutbox.objects.order_by("id"))
            assert [row.task for row in kept] == [
                "billing.tasks.billing_notice_send_task",
                "config.ping_task",
            ]
            assert all(row.dispatched_at is None for row in kept)
            assert kept[1].task_id == pong.id and kept[1].args == ["r29"]
            assert "ConnectionError" in kept[0].last_error or "OperationalError" in kept[0].last_error
            assert any("task outbox: broker unreachable" in r.getMessage() for r in caplog.records)
            notice = BillingNotice.objects.get(key="low_balance:r29")
            assert notice.sent_at is None

            server.start()  # Redis is back (same port, empty)
            broker = {
                "REDIS_URL": server.url,
                "CELERY_BROKER_URL": server.url,
                "CELERY_RESULT_BACKEND": server.url,
            }
            with celery_worker(log_path=tmp_path / "worker.log", **broker):
                # What beat sends every minute (beat publishes itself, past this process's outbox).
                celery_app.send_task(task_outbox_dispatch_task.name)
                assert pong.get(timeout=60) == "pong:r29"  # the kept task ran, under its first id

                def sent() -> bool:
                    notice.refresh_from_db()
                    return notice.sent_at is not None

                wait_until(sent, timeout=60, what="the kept notice task to run")
            assert notice.recipients == ["ops@example.test"]
            assert TaskOutbox.objects.filter(dispatched_at__isnull=True).count() == 0
            assert TaskOutbox.objects.get(task_id=pong.id).attempts == 1
    finally:
        server.stop()
