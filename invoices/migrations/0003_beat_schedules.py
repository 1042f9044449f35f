"""Beat schedules of the invoices app (django-celery-beat, editable in the admin): e-mail the
invoice sends whose after-commit task was lost, every 2 minutes."""

from django.db import migrations

from config.beat import interval_schedules

SCHEDULES = {
    "invoices: send lost invoice e-mails": ("invoices.invoice_sends_dispatch_due_task", 2),
}


class Migration(migrations.Migration):
    dependencies = [
        ("invoices", "0002_statements_immutable"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [interval_schedules(SCHEDULES)]
