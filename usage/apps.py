from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "usage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from config import reconcile

        from . import checks  # noqa: F401  (registers the vocabulary check)
        from .services import usage_meter_drift_list

        reconcile.register("usage meters against Stripe", usage_meter_drift_list, stripe=True)
