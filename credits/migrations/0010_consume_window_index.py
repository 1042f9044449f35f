"""A partial covering index for the unusual-consumption check: every organization's consumptions
in a time window, read from the index alone. Built concurrently (no write lock on the ledger)."""

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("billing", "0012_merge_outbox_audit"),
        ("credits", "0009_beat_auto_refill_sweep"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="credittransaction",
            index=models.Index(
                condition=models.Q(("kind", "consume")),
                fields=["created_at"],
                include=("organization", "amount"),
                name="credit_txn_consume_window_idx",
            ),
        ),
    ]
