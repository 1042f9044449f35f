#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line
    from django.db.utils import OperationalError

    try:
        execute_from_command_line(sys.argv)
    except OperationalError as exc:
        from config.stackfile import hint

        # No DATABASE_URL and no running `make run`: say how to reach a database.
        if message := hint():
            sys.exit(f"{type(exc).__name__}: {exc}\n\n{message}")
        raise


if __name__ == "__main__":
    main()
