"""Beat: auto-refills whose task was lost between the commit and the enqueue are enqueued again."""

from django.db import migrations

from config.beat import interval_schedules

SCHEDULES = {"credits: auto-refills whose task was lost": ("credits.auto_refill_sweep_task", 2)}


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0008_reconcile_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]
    operations = [interval_schedules(SCHEDULES)]
