"""Beat schedules of the usage app, in django-celery-beat (editable in the admin)."""

from django.db import migrations

from config.beat import interval_schedules

SCHEDULES = {
    "usage: expire reservations": ("usage.reservations_expire_task", 1),
    "usage: sync to Stripe meters": ("usage.meter_sync_all_task", 15),
    "usage: create event partitions ahead": ("usage.partitions_ensure_task", 1440),
}


class Migration(migrations.Migration):
    dependencies = [
        ("usage", "0002_seed_metrics"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [interval_schedules(SCHEDULES)]
