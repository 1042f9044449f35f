"""Beat: every hour, grant the included credits of paid subscription periods whose
`invoice.paid` webhook never arrived (the grants are keyed on the invoice)."""

from django.db import migrations

NAME = "credits: subscription credits missed by webhooks"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    interval, _ = IntervalSchedule.objects.get_or_create(every=60, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=NAME, defaults={"task": "credits.subscription_credits_catch_up_task", "interval": interval}
    )


def remove(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_beat_schedules")]
    operations = [migrations.RunPython(create, remove)]
