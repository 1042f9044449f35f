from django.db import migrations


def seed(apps, schema_editor):
    from billing.catalogue import metered_prices_seed

    metered_prices_seed(apps.get_model("billing", "Plan"), apps.get_model("billing", "PlanMeteredPrice"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0008_metered_prices_usage_notices")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
