import json

from django.core.management.base import BaseCommand, CommandError

from billing.models import PlatformScope
from billing.services import platform_key_create
from config.exceptions import ApplicationError


class Command(BaseCommand):
    help = (
        "Create a platform key (the operator's back end: any organization, only the scopes given). "
        'The last line printed is JSON {"api_key", "scopes"}; the key is shown only there.'
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument(
            "--scope",
            action="append",
            required=True,
            dest="scopes",
            help=f"Repeat for each scope: {', '.join(PlatformScope.values)}.",
        )

    def handle(self, *args, **options):
        try:
            created = platform_key_create(name=options["name"], scopes=options["scopes"])
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            json.dumps(
                {"api_key": created.raw_key, "scopes": created.platform_key.scopes, "name": options["name"]}
            )
        )
