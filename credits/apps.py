from django.apps import AppConfig


class CreditsConfig(AppConfig):
    name = "credits"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing import pages

        from . import (
            receivers,  # noqa: F401  (registers the dj-stripe webhook handlers)
            views,
        )

        pages.register_nav("credits", order=30, label="Credits", url_name="credits-page")
        pages.register_panel("credits", order=20, render=views.credits_panel)
        pages.register_alerts("credits", order=20, collect=views.credits_alerts)
