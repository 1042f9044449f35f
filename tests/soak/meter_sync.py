"""Run inside `manage.py shell` after the soak's load, before `reconcile`: one meter sync per
organization on a metered subscription (what the 15-minute beat task does), so even a short soak
sends its usage above the limits to Stripe's meters -- with the test clocks moved months on -- and
`reconcile` compares the meters. Prints one JSON line."""

import json

from usage.services import organizations_metered, usage_meter_sync

out = {}
for organization in organizations_metered():
    result = usage_meter_sync(organization=organization)
    out[str(organization.pk)] = {
        "queued": result.queued,
        "sent": result.sent,
        "duplicates": result.duplicates,
        "failed": result.failed,
        "expired": result.expired,
    }
print("SOAK-METERS " + json.dumps(out))
