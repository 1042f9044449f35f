"""`manage.py usage_seed_demo`: a month of usage for the demo organization, recorded through the
usage services (as the SaaS would record it), so `GET /usage`, the series, the stats and the
admin have something to show. `make run` runs it after `seed_demo`. Keys are derived from the
hour and metric, so running it again adds only the hours not seeded yet."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import Organization
from billing.services import subscription_paid_periods_recent
from config.exceptions import ApplicationError
from credits.services import subscription_credits_for_invoice
from usage.selectors import event_counts
from usage.services import usage_events_record, usage_reservation_create, usage_track

# The demo organization `seed_demo` (billing) creates; this app sits above billing, so it finds
# it by name rather than importing that command.
DEMO_ORG = "Demo Organization"
PLATFORMS = ["ios", "android", "web"]
MESSAGE_TYPES = ["promotional", "transactional", "reminder"]


def _hour_events(rng: random.Random, hour: datetime) -> list[dict]:
    """What a small messaging business does in one hour (quieter at night)."""
    busy = 1.0 if 8 <= hour.hour <= 20 else 0.25
    stamp = hour.isoformat()
    out = []

    def add(metric, quantity, n, **extra):
        out.append(
            {
                "metric": metric,
                "quantity": quantity,
                "idempotency_key": f"demo:{metric}:{stamp}:{n}",
                "occurred_at": (hour + timedelta(minutes=rng.randint(0, 59))).isoformat(),
                **extra,
            }
        )

    for n in range(int(rng.randint(2, 8) * busy) + 1):
        add(
            "SMS_SENT", rng.randint(1, 4), n, user_id=f"agent-{rng.randint(1, 5)}", resource_type="message",
            resource_id=f"m-{stamp}-{n}",
            dimensions={"platform": rng.choice(PLATFORMS), "message_type": rng.choice(MESSAGE_TYPES)},
        )  # fmt: skip
    for n in range(int(rng.randint(0, 5) * busy)):
        add("SMS_RECEIVED", 1, n, dimensions={"platform": rng.choice(PLATFORMS)})
    if rng.random() < 0.5 * busy:
        add("CALL_MADE", 1, 0, dimensions={"platform": "voice"})
        add("CALL_DURATION_SECONDS", rng.randint(20, 600), 0, dimensions={"platform": "voice"})
    for n in range(int(rng.randint(0, 3) * busy)):
        add("AI_MESSAGE_GENERATED", 1, n, dimensions={"channel": "sms"})
        add("AI_TOKENS", rng.randint(200, 1500), n, dimensions={"channel": "sms"})
    for n in range(rng.randint(1, 4)):
        add("API_REQUEST", 1, n, dimensions={"platform": "web"})
    if rng.random() < 0.3:
        add("CONTACT_CREATED", rng.randint(1, 20), 0)
    if hour.hour == 12:
        add("STORAGE_USED_MB", 300 + (hour.toordinal() % 400), 0)
    if hour.hour == 10 and hour.weekday() == 1:
        add("CAMPAIGN_LAUNCHED", 1, 0)
    return out


class Command(BaseCommand):
    help = "Give the demo organization a month of usage, recorded through the usage services."

    def add_arguments(self, parser):
        parser.add_argument("--organization", help="Another organization id instead of the demo one.")
        parser.add_argument("--days", type=int, default=30)

    def handle(self, *args, **options):
        if options["organization"]:
            organization = Organization.objects.filter(pk=options["organization"]).first()
        else:
            organization = Organization.objects.filter(name=DEMO_ORG).order_by("created_at").first()
        if organization is None:
            raise CommandError("No demo organization: run `manage.py seed_demo` first.")
        rng = random.Random(str(organization.pk))  # noqa: S311 - demo data, not secrets
        now = timezone.now()
        first = (now - timedelta(days=min(options["days"], 34))).replace(minute=0, second=0, microsecond=0)
        events: list[dict] = []
        hour = first
        while hour + timedelta(hours=1) <= now:
            events.extend(_hour_events(rng, hour.astimezone(UTC)))
            hour += timedelta(hours=1)
        accepted = duplicates = 0
        for start in range(0, len(events), 1000):
            result = usage_events_record(organization=organization, events=events[start : start + 1000])
            accepted, duplicates = accepted + result.accepted, duplicates + result.duplicates
        tracked = self._tracked(organization, now)
        counts = event_counts(organization_id=organization.pk)
        self.stdout.write(
            self.style.SUCCESS("Demo usage ready.")
            + f" {accepted} events recorded ({duplicates} already there), {tracked};"
            + f" {sum(counts.values())} events in {len(counts)} metrics over the last {options['days']} days."
        )

    def _tracked(self, organization, now) -> str:
        """A few tracked AI messages (credits consumed) and one reservation in flight, when the
        organization has credits (its plan's credits arrive with the first paid invoice)."""
        day = now.strftime("%Y-%m-%d")
        # On the first `make run` the plan's credits have not arrived yet: they come with the paid
        # invoice's webhook, and the web server that takes it starts after the seeding. Grant them
        # from the paid invoices now (keyed on the invoice: the webhook later grants nothing twice).
        try:
            for period in subscription_paid_periods_recent(organization=organization):
                subscription_credits_for_invoice(invoice_id=period.invoice_id)
        except ApplicationError as exc:
            return f"tracked usage skipped (the plan's credits could not be read: {exc.message})"
        try:
            for n in range(5):
                usage_track(
                    organization=organization,
                    metric="AI_MESSAGE_GENERATED",
                    idempotency_key=f"demo-track:{day}:{n}",
                    dimensions={"channel": "email"},
                )
            usage_reservation_create(
                organization=organization, metric="AI_VOICE_GENERATED", estimated_quantity=3,
                idempotency_key=f"demo-reservation:{day}", expires_in=timedelta(hours=2),
            )  # fmt: skip
        except ApplicationError as exc:
            return f"tracked usage skipped ({exc.message})"
        return "5 tracked AI messages and 1 reservation"
