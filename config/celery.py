import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("billing")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="config.ping_task")
def ping_task(value: str) -> str:
    """A round trip through the broker and a worker; used by the health check and its tests."""
    return f"pong:{value}"
