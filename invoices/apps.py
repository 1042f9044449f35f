from django.apps import AppConfig


class InvoicesConfig(AppConfig):
    name = "invoices"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import pages

        from . import demo, receivers  # noqa: F401 - connects the webhook and seed_demo handlers
        from .backoffice import demo as backoffice_demo  # noqa: F401 - the back office's demo data

        pages.register_nav("invoices", order=50, label="Invoices", url_name="invoice-list-page")
