"""Run inside `manage.py shell` after the soak: what the database holds for the soak's
organizations, to compare with what the driver was told. Prints one JSON line."""

import json
import os

from django.db.models import Count, Sum

from credits.models import CreditAccount, CreditGrant, CreditPurchase, CreditTransaction
from usage.models import UsageEvent

ids = json.loads(os.environ["SOAK_ORGS"])
out = {}
for org_id in ids:
    consumes = CreditTransaction.objects.filter(
        organization_id=org_id, kind="consume", idempotency_key__startswith="soak-c-"
    ).aggregate(n=Count("id"), s=Sum("amount"))
    grants = CreditTransaction.objects.filter(
        organization_id=org_id, kind="grant", idempotency_key__startswith="soak-g-"
    ).aggregate(n=Count("id"), s=Sum("amount"))
    packs = CreditPurchase.objects.filter(
        organization_id=org_id, kind="pack", idempotency_key__startswith="soak-p-"
    )
    usage = UsageEvent.objects.filter(
        organization_id=org_id, idempotency_key__startswith="soak-u-"
    ).aggregate(n=Count("id"), s=Sum("quantity"))
    account = CreditAccount.objects.filter(organization_id=org_id).first()
    out[org_id] = {
        "consumes": consumes["n"],
        "consumed": str(-(consumes["s"] or 0)),
        "grants": grants["n"],
        "granted": str(grants["s"] or 0),
        "packs_succeeded": packs.filter(status="succeeded", grant__isnull=False).count(),
        "packs": packs.count(),
        "usage_events": usage["n"],
        "usage_quantity": str(usage["s"] or 0),
        "subscription_grants": CreditGrant.objects.filter(
            organization_id=org_id, source="subscription"
        ).count(),
        "refills": dict(
            CreditPurchase.objects.filter(organization_id=org_id, kind="auto_refill")
            .values_list("status")
            .annotate(n=Count("id"))
        ),
        "balance": str(account.balance if account else 0),
        "ledger_sum": str(
            CreditTransaction.objects.filter(organization_id=org_id).aggregate(s=Sum("amount"))["s"] or 0
        ),
    }
print("SOAK-VERIFY " + json.dumps(out))
