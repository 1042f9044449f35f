"""dj-stripe's app config, renamed in the admin (its own module: `billing.apps` keeps one config)."""

from djstripe.apps import DjstripeAppConfig


class StripeMirrorConfig(DjstripeAppConfig):
    """dj-stripe itself, under one admin heading that says what it is (`billing.mirror_admin`)."""

    verbose_name = "Stripe mirror (read-only)"
