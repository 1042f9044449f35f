"""The seed catalogue: Free, Starter, Professional, Business, Enterprise.

Used by the data migration that creates the plans; staff edit them in the admin afterwards
and `manage.py sync_stripe_catalog` pushes them to Stripe.
"""

from decimal import Decimal

UNLIMITED = None

SEED_PLANS = [
    {
        "code": "free",
        "name": "Free",
        "description": "Try the product: a small monthly allowance, no card needed.",
        "included_credits": "100",
        "trial_days": 0,
        "features": ["basic_analytics"],
        "limits": {
            "SMS_SENT": 50,
            "SMS_RECEIVED": 100,
            "CALL_MADE": 10,
            "CALL_RECEIVED": 20,
            "CALL_DURATION_SECONDS": 600,
            "AI_MESSAGE_GENERATED": 20,
            "AI_VOICE_GENERATED": 0,
            "AI_TEMPLATE_CREATED": 5,
            "CONTENT_AI_GENERATED": 10,
            "CAMPAIGN_LAUNCHED": 2,
            "JOURNEY_LAUNCHED": 1,
            "CONTACT_CREATED": 250,
            "TEMPLATE_CREATED": 10,
            "WEBHOOK_TRIGGERED": 1000,
            "STORAGE_USED_MB": 100,
            "API_REQUEST": 10000,
            "AI_TOKENS": 50000,
        },
        "prices": [],
        "sort_order": 0,
    },
    {
        "code": "starter",
        "name": "Starter",
        "description": "For small teams starting to message their customers.",
        "included_credits": "1000",
        "trial_days": 14,
        "features": ["basic_analytics", "api_access", "email_support"],
        "limits": {
            "SMS_SENT": 1000,
            "SMS_RECEIVED": 2000,
            "CALL_MADE": 200,
            "CALL_RECEIVED": 400,
            "CALL_DURATION_SECONDS": 12000,
            "AI_MESSAGE_GENERATED": 500,
            "AI_VOICE_GENERATED": 50,
            "AI_TEMPLATE_CREATED": 50,
            "CONTENT_AI_GENERATED": 200,
            "CAMPAIGN_LAUNCHED": 20,
            "JOURNEY_LAUNCHED": 5,
            "CONTACT_CREATED": 5000,
            "TEMPLATE_CREATED": 100,
            "WEBHOOK_TRIGGERED": 20000,
            "STORAGE_USED_MB": 1024,
            "API_REQUEST": 100000,
            "AI_TOKENS": 1000000,
        },
        "prices": [("month", 2900), ("year", 29000)],
        "sort_order": 10,
    },
    {
        "code": "professional",
        "name": "Professional",
        "description": "Automation, AI content and journeys for growing teams.",
        "included_credits": "5000",
        "trial_days": 14,
        "features": [
            "basic_analytics",
            "advanced_analytics",
            "api_access",
            "journeys",
            "ai_voice",
            "email_support",
        ],
        "limits": {
            "SMS_SENT": 10000,
            "SMS_RECEIVED": 20000,
            "CALL_MADE": 2000,
            "CALL_RECEIVED": 4000,
            "CALL_DURATION_SECONDS": 120000,
            "AI_MESSAGE_GENERATED": 5000,
            "AI_VOICE_GENERATED": 500,
            "AI_TEMPLATE_CREATED": 500,
            "CONTENT_AI_GENERATED": 2000,
            "CAMPAIGN_LAUNCHED": 200,
            "JOURNEY_LAUNCHED": 50,
            "CONTACT_CREATED": 50000,
            "TEMPLATE_CREATED": 1000,
            "WEBHOOK_TRIGGERED": 200000,
            "STORAGE_USED_MB": 10240,
            "API_REQUEST": 1000000,
            "AI_TOKENS": 10000000,
        },
        "prices": [("month", 9900), ("year", 99000)],
        "sort_order": 20,
    },
    {
        "code": "business",
        "name": "Business",
        "description": "High volume, priority support and single sign-on.",
        "included_credits": "20000",
        "trial_days": 14,
        "features": [
            "basic_analytics",
            "advanced_analytics",
            "api_access",
            "journeys",
            "ai_voice",
            "sso",
            "priority_support",
        ],
        "limits": {
            "SMS_SENT": 100000,
            "SMS_RECEIVED": 200000,
            "CALL_MADE": 20000,
            "CALL_RECEIVED": 40000,
            "CALL_DURATION_SECONDS": 1200000,
            "AI_MESSAGE_GENERATED": 50000,
            "AI_VOICE_GENERATED": 5000,
            "AI_TEMPLATE_CREATED": UNLIMITED,
            "CONTENT_AI_GENERATED": 20000,
            "CAMPAIGN_LAUNCHED": UNLIMITED,
            "JOURNEY_LAUNCHED": UNLIMITED,
            "CONTACT_CREATED": 500000,
            "TEMPLATE_CREATED": UNLIMITED,
            "WEBHOOK_TRIGGERED": 2000000,
            "STORAGE_USED_MB": 102400,
            "API_REQUEST": 10000000,
            "AI_TOKENS": 100000000,
        },
        "prices": [("month", 29900), ("year", 299000)],
        "sort_order": 30,
    },
    {
        "code": "enterprise",
        "name": "Enterprise",
        "description": "No limits, a dedicated manager and custom terms.",
        "included_credits": "100000",
        "trial_days": 30,
        "features": [
            "basic_analytics",
            "advanced_analytics",
            "api_access",
            "journeys",
            "ai_voice",
            "sso",
            "priority_support",
            "dedicated_manager",
            "audit_log",
        ],
        "limits": {},
        "prices": [("month", 99900), ("year", 999000)],
        "sort_order": 40,
    },
]


def catalogue_seed(plan_model, price_model) -> None:
    """Create the seed plans that do not exist yet; never touches existing ones (staff may have
    edited them). Takes the model classes so the data migration can pass its historical models."""
    for spec in SEED_PLANS:
        plan, created = plan_model.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "description": spec["description"],
                "included_credits": Decimal(spec["included_credits"]),
                "trial_days": spec["trial_days"],
                "features": spec["features"],
                "limits": spec["limits"],
                "sort_order": spec["sort_order"],
            },
        )
        if created:
            for interval, amount in spec["prices"]:
                price_model.objects.create(plan=plan, interval=interval, amount=amount, currency="usd")


# Usage above a plan's limit billed through a Stripe metered price: plan code -> [(metric code,
# meter event name, minor units per unit above the limit)]. Business sends SMS past its
# 100,000 a month at 1 cent each instead of refusing them.
SEED_METERED_PRICES = {
    "business": [("SMS_SENT", "sms_sent", 1)],
}


def metered_prices_seed(plan_model, metered_model) -> None:
    """Create the seed metered prices that do not exist yet (staff may have edited them)."""
    for code, prices in SEED_METERED_PRICES.items():
        plan = plan_model.objects.filter(code=code).first()
        if plan is None:
            continue
        for metric, event_name, unit_amount in prices:
            metered_model.objects.get_or_create(
                plan=plan,
                metric=metric,
                interval="month",
                currency="usd",
                defaults={"meter_event_name": event_name, "unit_amount": unit_amount},
            )
