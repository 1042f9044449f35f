from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from config import reconcile

        from . import checks  # noqa: F401  (registers the vocabulary check)
        from .services import usage_meter_drift_list

        reconcile.register("usage meters against Stripe", usage_meter_drift_list, stripe=True)

        from billing import pages

        from . import views

        pages.register_nav("usage", order=40, label="Usage", url_name="usage-page")
        pages.register_panel("usage", order=30, render=views.usage_panel)
        pages.register_alerts("usage", order=30, collect=views.usage_alerts)
