"""Item 10: the same event delivered five times at once (five threads, one connection each):
one effect, every delivery answered without a 500, and one task enqueued per handler.

Celery is not eager here: the tasks land in the real Redis broker queue, where they are counted
by name (then purged)."""

import json

import pytest
from django.test import Client
from djstripe.models import Event

from billing.models import Organization
from config.celery import app
from tests.stripe_helpers import Recorder, post, webhooks_install

from .helpers import run_together, subscribe

pytestmark = pytest.mark.django_db(transaction=True)


def queued_tasks() -> list[str]:
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        messages = client.lrange("celery", 0, -1)
    return [json.loads(m)["headers"]["task"] for m in messages]


def test_five_concurrent_deliveries_one_effect_one_task(stripe_emulator, catalogue, billing_org, client):
    webhooks_install(stripe_emulator, client)
    recorder = Recorder()
    stripe_emulator.set_webhook_transport(recorder)
    app.control.purge()
    try:
        subscribe(billing_org)
        stripe_emulator.deliver_webhooks()
        app.control.purge()
        Organization.objects.filter(pk=billing_org.pk).update(subscription_status="", plan=None)
        (paid,) = recorder.of_type("invoice.paid")
        (created,) = recorder.of_type("customer.subscription.created")

        for delivery, event_type in ((paid, "invoice.paid"), (created, "customer.subscription.created")):
            results = run_together(5, lambda i, d=delivery: post(Client(), d).status_code)
            assert [r for r in results] == [("ok", 200)] * 5, results
            assert Event.objects.filter(type=event_type).count() == 1
        tasks = queued_tasks()
        # invoice.paid: one subscription re-read and one allocation of the period's credits.
        assert sorted(tasks) == sorted(
            ["billing.tasks.subscription_refresh_task", "credits.subscription_credits_allocate_task"]
        ), tasks
        org = Organization.objects.get(pk=billing_org.pk)
        assert (org.plan.code, org.subscription_status) == ("starter", "active")
    finally:
        app.control.purge()
