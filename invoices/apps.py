from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    name = "invoices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import demo, receivers  # noqa: F401 - connects the webhook and seed_demo handlers
