from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            key_cache,  # noqa: F401  (drops a cached key when its row is saved or deleted)
            pages,
            receivers,  # noqa: F401  (registers the dj-stripe webhook handlers)
            stripe_api,
            views,
            webhooks,  # noqa: F401  (the API version pin on webhook processing)
        )

        stripe_api.configure()  # the Stripe client's timeout and retry count

        pages.register_nav("dashboard", order=10, label="Overview", url_name="billing-organization")
        pages.register_nav("upgrade", order=20, label="Plans", url_name="billing-upgrade")
        pages.register_nav(
            "payment-methods", order=80, label="Payment methods", url_name="billing-payment-methods"
        )
        pages.register_panel("plan", order=10, render=views.plan_panel)
        pages.register_alerts("billing", order=10, collect=views.billing_alerts)
