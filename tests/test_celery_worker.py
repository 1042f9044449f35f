"""A real Celery worker process runs tasks end to end through Redis."""

import pytest

from config.celery import ping_task
from tests.processes import celery_worker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_a_task_through_redis(tmp_path):
    with celery_worker(log_path=tmp_path / "worker.log") as worker:
        result = ping_task.delay("hello")
        assert result.get(timeout=120) == "pong:hello"
        assert worker.poll() is None
    assert "config.ping_task" in (tmp_path / "worker.log").read_text()


def test_healthz_is_green_with_a_worker_and_red_without(client):
    with celery_worker():
        # /healthz pings the workers for 1 s: on a loaded machine a ping can miss once, so the
        # check is that it turns green while the worker runs (and red once it is gone)
        answers = []
        wait_until(
            lambda: answers.append(client.get("/healthz").json()) or answers[-1]["status"] == "ok",
            timeout=60,
            what="/healthz to turn green with a worker running",
        )
        body = answers[-1]
        assert body["status"] == "ok", body
        assert all(check["ok"] for check in body["checks"].values())
        assert body["checks"]["celery"]["workers"]
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["celery"]["ok"] is False
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["redis"]["ok"] is True
