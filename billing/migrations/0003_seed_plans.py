from django.db import migrations


def seed(apps, schema_editor):
    from billing.catalogue import catalogue_seed

    catalogue_seed(apps.get_model("billing", "Plan"), apps.get_model("billing", "PlanPrice"))


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_plans")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
