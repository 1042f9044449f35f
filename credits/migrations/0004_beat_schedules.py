"""Beat schedules of the credits app, in django-celery-beat (editable in the admin):
expire due grants every 5 minutes, low-balance alerts every 15 minutes."""

from django.db import migrations

from config.beat import interval_schedules

SCHEDULES = {
    "credits: expire due grants": ("credits.credit_grants_expire_task", 5),
    "credits: low-balance alerts": ("credits.low_balance_alerts_task", 15),
}


class Migration(migrations.Migration):
    dependencies = [
        ("credits", "0003_seed_catalogue"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [interval_schedules(SCHEDULES)]
