import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Every task enqueues through config.task_outbox.OutboxTask: one the broker cannot take is kept in
# PostgreSQL (the task outbox) and sent again by beat once Redis is back.
app = Celery("billing", task_cls="config.task_outbox:OutboxTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping_task")
def ping_task(value: str) -> str:
    """A round trip through the broker and a worker; used by the health check and its tests."""
    return f"pong:{value}"
