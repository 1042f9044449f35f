"""A migrated template database, so each test run gets a fresh test database in a second.

Migrating from nothing takes ~40 s of CPU (dj-stripe alone has dozens of migrations). The first
run migrates a template named after a hash of every migration file and of the versions of the
packages that ship migrations; later runs (and the `make run` end-to-end test) create their
databases from it with `CREATE DATABASE ... TEMPLATE`. A change to any migration makes a new
template; older ones are dropped.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

PACKAGES_WITH_MIGRATIONS = ("django", "dj-stripe", "django-celery-beat", "djangorestframework")


def migrations_hash() -> str:
    digest = hashlib.sha256()
    base = Path(settings.BASE_DIR)
    for path in sorted(base.glob("*/migrations/*.py")):
        digest.update(str(path.relative_to(base)).encode())
        digest.update(path.read_bytes())
    for package in PACKAGES_WITH_MIGRATIONS:
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()[:12]


def _admin_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    return psycopg.connect(**params, autocommit=True)


def ensure_template() -> str:
    """The name of an up-to-date migrated template database, building it if needed."""
    from tests.processes import child_env, database_url

    name = f"billing_tmpl_{migrations_hash()}"
    with _admin_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(hashtext('billing_test_template'))")
        try:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                return name
            stale = conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE 'billing\\_tmpl\\_%%'"
            ).fetchall()
            for (old,) in stale:
                conn.execute(f'DROP DATABASE IF EXISTS "{old}"')
            building = f"{name}_build"
            conn.execute(f'CREATE DATABASE "{building}"')
            result = subprocess.run(
                [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
                cwd=settings.BASE_DIR,
                env=child_env(DATABASE_URL=database_url(building)),
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                conn.execute(f'DROP DATABASE IF EXISTS "{building}"')
                raise RuntimeError(f"migrating the test template failed:\n{result.stdout}\n{result.stderr}")
            conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
            return name
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('billing_test_template'))")
