"""`make run` end to end: the devstack supervisor migrates, seeds, serves web + worker + beat,
answers a green /healthz, the printed login works, and Ctrl-C stops every process it started."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time

import psutil
import psycopg
import pytest
import requests
from django.db import connection

from tests.processes import BASE_DIR, child_env, database_url, free_port, stop_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scratch_database(migrated_template):
    """A database of its own, because `make run` migrates the database it is given (made from the
    migrated template, so its `migrate` has nothing left to do)."""
    name = f"devstack_e2e_{int(time.time() * 1000)}"
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield name
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_make_run_serves_a_green_system_and_ctrl_c_stops_it(scratch_database, tmp_path):
    port = free_port()
    env = child_env(
        DATABASE_URL=database_url(scratch_database),
        PORT=str(port),
        STRIPE_EMULATOR_PORT=str(free_port()),
        STRIPE_EMULATOR_STATE=str(tmp_path / "stripe.json"),
        DEBUG="false",
    )
    env.pop("STRIPE_API_HOST", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: any("ready:" in line for line in lines) or proc.poll() is not None,
            timeout=180,
            what="make run to print ready",
        )
        assert proc.poll() is None, "".join(lines)
        output = "".join(lines)
        login = re.search(r"owner login:\s+(\S+) / (\S+)", output)
        assert login, output

        def healthy() -> bool:
            return requests.get(f"{base}/healthz", timeout=5).status_code == 200

        wait_until(healthy, timeout=60, what="/healthz to turn green")
        health = requests.get(f"{base}/healthz", timeout=5).json()
        assert all(check["ok"] for check in health["checks"].values()), health
        assert requests.get(f"{base}/api/docs/", timeout=5).status_code == 200

        session = requests.Session()
        session.get(f"{base}/accounts/login/", timeout=5)
        response = session.post(
            f"{base}/accounts/login/",
            data={
                "username": login.group(1),
                "password": login.group(2),
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
            timeout=10,
        )
        assert response.status_code == 200 and "Demo Organization" in response.text
        organizations = session.get(f"{base}/api/v1/organizations", timeout=5).json()
        demo = organizations["results"][0]
        assert demo["name"] == "Demo Organization"
        assert (demo["plan"], demo["subscription_status"]) == ("professional", "active")
        subscription = session.get(f"{base}/api/v1/organizations/{demo['id']}/subscription", timeout=5).json()
        assert subscription["stripe_id"].startswith("sub_")
        cards = session.get(f"{base}/api/v1/organizations/{demo['id']}/payment-methods", timeout=5).json()
        assert cards[0]["last4"] == "4242" and cards[0]["is_default"]
        # A month of usage, seeded through the usage services (`usage_seed_demo`).
        usage = f"{base}/api/v1/organizations/{demo['id']}/usage"
        series = session.get(f"{usage}/SMS_SENT", params={"group_by": "day"}, timeout=10).json()
        assert len(series["series"]) >= 30 and float(series["total"]) > 0, series
        assert session.get(usage, timeout=10).status_code == 200

        # The emulator server delivers signed webhooks to the web server, which dj-stripe accepts.
        def webhooks_landed() -> bool:
            return "Stripe webhook" in "".join(lines) or any(
                "POST /stripe/webhook/" in line and '" 200' in line for line in lines
            )

        wait_until(webhooks_landed, timeout=60, what="a webhook from the emulator to be accepted")

        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 3
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(40)
        except subprocess.TimeoutExpired:
            stop_process(proc, signal.SIGKILL)
            raise
    assert proc.returncode == 0, "".join(lines)
    wait_until(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
        timeout=20,
        what="every child to stop",
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{base}/healthz", timeout=2)
