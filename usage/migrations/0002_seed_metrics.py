"""Seed the metrics (the usage types the product knows). Existing rows are left as staff edited
them, so running it again changes nothing."""

from django.db import migrations

# code -> (name, unit, aggregation)
METRICS = {
    "SMS_SENT": ("SMS sent", "message", "sum"),
    "SMS_RECEIVED": ("SMS received", "message", "sum"),
    "CALL_MADE": ("Calls made", "call", "sum"),
    "CALL_RECEIVED": ("Calls received", "call", "sum"),
    "CALL_DURATION_SECONDS": ("Call time", "second", "sum"),
    "AI_MESSAGE_GENERATED": ("AI messages", "message", "sum"),
    "AI_VOICE_GENERATED": ("AI voice clips", "clip", "sum"),
    "AI_TEMPLATE_CREATED": ("AI templates", "template", "sum"),
    "CONTENT_AI_GENERATED": ("AI content", "piece", "sum"),
    "CAMPAIGN_LAUNCHED": ("Campaigns launched", "campaign", "sum"),
    "JOURNEY_LAUNCHED": ("Journeys launched", "journey", "sum"),
    "CONTACT_CREATED": ("Contacts created", "contact", "sum"),
    "TEMPLATE_CREATED": ("Templates created", "template", "sum"),
    "WEBHOOK_TRIGGERED": ("Webhooks triggered", "webhook", "count"),
    "STORAGE_USED_MB": ("Storage used", "MB", "max"),
    "API_REQUEST": ("API requests", "request", "count"),
    "AI_TOKENS": ("AI tokens", "token", "sum"),
}


def seed(apps, schema_editor):
    Metric = apps.get_model("usage", "Metric")
    CreditPrice = apps.get_model("credits", "CreditPrice")
    prices = set(CreditPrice.objects.values_list("event_name", flat=True))
    for order, (code, (name, unit, aggregation)) in enumerate(METRICS.items()):
        Metric.objects.get_or_create(
            code=code,
            defaults={
                "name": name,
                "unit": unit,
                "aggregation": aggregation,
                "credit_price_id": code if code in prices else None,
                "stripe_meter_event_name": code.lower(),
                "sort_order": order,
            },
        )


def unseed(apps, schema_editor):
    apps.get_model("usage", "Metric").objects.filter(code__in=METRICS).delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0001_initial"), ("credits", "0003_seed_catalogue")]

    operations = [migrations.RunPython(seed, unseed)]
