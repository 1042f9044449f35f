"""Beat schedules live in django-celery-beat's tables (editable in the admin); apps add theirs
with a data migration built here."""

from __future__ import annotations

from django.db import migrations


def interval_schedules(schedules: dict[str, tuple[str, int]]) -> migrations.RunPython:
    """A migration operation creating `{name: (task name, every N minutes)}` once (staff may
    have edited them since) and deleting them on the way back."""

    def create(apps, schema_editor):
        interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
        task_model = apps.get_model("django_celery_beat", "PeriodicTask")
        for name, (task, minutes) in schedules.items():
            interval, _ = interval_model.objects.get_or_create(every=minutes, period="minutes")
            task_model.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})

    def remove(apps, schema_editor):
        apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=schedules).delete()

    return migrations.RunPython(create, remove)
