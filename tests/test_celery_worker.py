"""A real Celery worker process runs tasks end to end through Redis."""

import pytest

from config.celery import ping_task
from tests.processes import celery_worker

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_a_task_through_redis(tmp_path):
    with celery_worker(log_path=tmp_path / "worker.log") as worker:
        result = ping_task.delay("hello")
        assert result.get(timeout=30) == "pong:hello"
        assert worker.poll() is None
    assert "config.ping_task" in (tmp_path / "worker.log").read_text()


def test_healthz_is_green_with_a_worker_and_red_without(client):
    with celery_worker():
        body = client.get("/healthz").json()
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
