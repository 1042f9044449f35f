"""Beat schedules of the credits app, in django-celery-beat (editable in the admin):
expire due grants every 5 minutes, low-balance alerts every 15 minutes."""

from django.db import migrations

SCHEDULES = {
    "credits: expire due grants": ("credits.credit_grants_expire_task", 5),
    "credits: low-balance alerts": ("credits.low_balance_alerts_task", 15),
}


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, (task, minutes) in SCHEDULES.items():
        interval, _ = IntervalSchedule.objects.get_or_create(every=minutes, period="minutes")
        PeriodicTask.objects.get_or_create(name=name, defaults={"task": task, "interval": interval})


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=SCHEDULES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0003_seed_catalogue"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
