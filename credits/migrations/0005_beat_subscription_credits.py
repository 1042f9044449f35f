"""Beat: every hour, grant the included credits of paid subscription periods whose
`invoice.paid` webhook never arrived (the grants are keyed on the invoice)."""

from django.db import migrations

from config.beat import interval_schedules

SCHEDULES = {
    "credits: subscription credits missed by webhooks": ("credits.subscription_credits_catch_up_task", 60)
}


class Migration(migrations.Migration):
    dependencies = [("credits", "0004_beat_schedules")]
    operations = [interval_schedules(SCHEDULES)]
