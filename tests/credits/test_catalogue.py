"""The seed migration's catalogue and the public endpoints that list it."""

import importlib

import pytest
from django.apps import apps

from credits.models import CreditPack, CreditPrice

pytestmark = pytest.mark.django_db

seed_migration = importlib.import_module("credits.migrations.0003_seed_catalogue")
beat_migration = importlib.import_module("credits.migrations.0004_beat_schedules")
catch_up_migration = importlib.import_module("credits.migrations.0005_beat_subscription_credits")

USAGE_TYPES = {
    "SMS_SENT", "SMS_RECEIVED", "CALL_MADE", "CALL_RECEIVED", "CALL_DURATION_SECONDS",
    "AI_MESSAGE_GENERATED", "AI_VOICE_GENERATED", "AI_TEMPLATE_CREATED", "CONTENT_AI_GENERATED",
    "CAMPAIGN_LAUNCHED", "JOURNEY_LAUNCHED", "CONTACT_CREATED", "TEMPLATE_CREATED", "WEBHOOK_TRIGGERED",
    "STORAGE_USED_MB", "API_REQUEST", "AI_TOKENS",
}  # fmt: skip


@pytest.fixture
def seeded(db):
    seed_migration.seed(apps, None)
    seed_migration.seed(apps, None)  # idempotent


def test_seed_prices_every_usage_type_and_packs(seeded):
    assert set(CreditPrice.objects.values_list("event_name", flat=True)) == USAGE_TYPES
    assert all(p.credits_per_unit > 0 and p.category for p in CreditPrice.objects.all())
    assert CreditPack.objects.count() == 4


def test_public_credit_prices(seeded, api_client):
    response = api_client.get("/api/v1/credit-prices")
    assert response.status_code == 200
    body = {p["event_name"]: p for p in response.json()}
    assert set(body) == USAGE_TYPES
    assert body["API_REQUEST"]["credits_per_unit"] == "0.001"
    assert body["SMS_SENT"] == {
        "event_name": "SMS_SENT",
        "credits_per_unit": "1",
        "category": "messaging",
        "description": "One SMS segment sent",
    }


def test_public_credit_packs(seeded, api_client):
    CreditPack.objects.filter(code="credits-100k").update(active=False)
    body = api_client.get("/api/v1/credit-packs").json()
    assert body == [
        {"code": "credits-1k", "name": "1,000 credits", "credits": "1000", "amount": 1000, "currency": "usd"},
        {"code": "credits-5k", "name": "5,000 credits", "credits": "5000", "amount": 4500, "currency": "usd"},
        {
            "code": "credits-20k",
            "name": "20,000 credits",
            "credits": "20000",
            "amount": 16000,
            "currency": "usd",
        },
    ]


def test_beat_schedules_migration_registers_the_tasks(db):
    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    for migration in (beat_migration, catch_up_migration):
        (operation,) = migration.Migration.operations
        operation.code(apps, None)
        operation.code(apps, None)
    tasks = dict(PeriodicTask.objects.values_list("name", "task"))
    assert {
        "credits: expire due grants": "credits.credit_grants_expire_task",
        "credits: low-balance alerts": "credits.low_balance_alerts_task",
        "credits: subscription credits missed by webhooks": "credits.subscription_credits_catch_up_task",
    }.items() <= tasks.items()
    # Every schedule any migration made names a task the worker knows.
    app.loader.import_default_modules()
    assert set(tasks.values()) <= set(app.tasks)


def test_migrations_match_the_models():
    """In a child process, so the check sees the models as a fresh process loads them."""
    import subprocess
    import sys

    from tests.processes import BASE_DIR, child_env

    result = subprocess.run(
        [sys.executable, "manage.py", "makemigrations", "credits", "--check", "--dry-run"],
        cwd=BASE_DIR, env=child_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
