"""`make run` end to end, started once for the module: the devstack supervisor migrates, seeds,
serves with gunicorn (DEBUG off, static files collected and served by WhiteNoise) beside a Celery
worker and beat; it stays up under a burst of 200 concurrent requests with a bounded number of
PostgreSQL connections; `make manage` and a plain `manage.py` reach the same services; Ctrl-C
stops every process it started."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg
import pytest
import requests
from django.db import connection

from tests.processes import BASE_DIR, child_env, database_url, free_port, stop_process, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

WEB_CONCURRENCY, WEB_THREADS = 2, 4
WORKER_CONCURRENCY = 2  # config/devstack.py starts the worker with --concurrency 2


def admin_connection() -> psycopg.Connection:
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    params["application_name"] = "test-make-run"
    return psycopg.connect(**params, autocommit=True)


@dataclass
class RunningStack:
    proc: subprocess.Popen
    base: str
    database: str
    emulator: str
    stack_file: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def command_env(self, **overrides: str) -> dict[str, str]:
        """The environment of a person's shell beside `make run`: no service variables set."""
        env = child_env(STACK_FILE=self.stack_file, **overrides)
        for name in ("DATABASE_URL", "REDIS_URL", "STRIPE_API_HOST", "SITE_URL", "DB_APPLICATION_NAME"):
            env.pop(name, None)
        return env

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, signal.SIGKILL)
            raise


@pytest.fixture(scope="module")
def scratch_database(migrated_template):
    """A database of its own, because `make run` migrates the database it is given (made from the
    migrated template, so its `migrate` has nothing left to do)."""
    name = f"devstack_e2e_{int(time.time() * 1000)}"
    with admin_connection() as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{migrated_template}"')
    yield name
    with admin_connection() as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture(scope="module")
def make_run(scratch_database, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("make_run")
    port, emulator_port = free_port(), free_port()
    env = child_env(
        DATABASE_URL=database_url(scratch_database),
        PORT=str(port),
        STRIPE_EMULATOR_PORT=str(emulator_port),
        STRIPE_EMULATOR_STATE=str(tmp / "stripe.json"),
        STACK_FILE=str(tmp / "stack.json"),
        STATIC_ROOT=str(tmp / "static"),
        WEB_CONCURRENCY=str(WEB_CONCURRENCY),
        WEB_THREADS=str(WEB_THREADS),
    )
    # What a person's shell has: no DEBUG, no Stripe host, no Redis (make run embeds one).
    for name in ("DEBUG", "STRIPE_API_HOST", "REDIS_URL", "DEV"):
        env.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "config.devstack", "run"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    running = RunningStack(
        proc=proc,
        base=f"http://127.0.0.1:{port}",
        database=scratch_database,
        emulator=f"http://127.0.0.1:{emulator_port}",
        stack_file=str(tmp / "stack.json"),
        env=env,
    )
    threading.Thread(target=lambda: running.lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()
    try:
        wait_until(
            lambda: "ready:" in running.output or proc.poll() is not None,
            timeout=180,
            what="make run to print ready",
        )
        assert proc.poll() is None, running.output
        wait_until(lambda: healthy(running.base), timeout=60, what="/healthz to turn green")
        yield running
    finally:
        if proc.poll() is None:
            running.stop()


def healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=10).status_code == 200
    except requests.RequestException:  # not up yet, or too slow to answer on a loaded machine
        return False


def signed_in(base: str, output: str) -> requests.Session:
    login = re.search(r"owner login:\s+(\S+) / (\S+)", output)
    assert login, output
    session = requests.Session()
    session.get(f"{base}/accounts/login/", timeout=30)
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
    return session


def test_serves_a_green_system_with_gunicorn(make_run):
    base = make_run.base
    health = requests.get(f"{base}/healthz", timeout=30)
    assert health.headers["Server"].startswith("gunicorn")
    assert all(check["ok"] for check in health.json()["checks"].values()), health.json()
    assert requests.get(f"{base}/api/docs/", timeout=30).status_code == 200

    session = signed_in(base, make_run.output)
    organizations = session.get(f"{base}/api/v1/organizations", timeout=30).json()
    demo = organizations["results"][0]
    assert demo["name"] == "Demo Organization"
    assert (demo["plan"], demo["subscription_status"]) == ("professional", "active")
    subscription = session.get(f"{base}/api/v1/organizations/{demo['id']}/subscription", timeout=30).json()
    assert subscription["stripe_id"].startswith("sub_")
    cards = session.get(f"{base}/api/v1/organizations/{demo['id']}/payment-methods", timeout=30).json()
    assert cards[0]["last4"] == "4242" and cards[0]["is_default"]
    # A month of usage, seeded through the usage services (`usage_seed_demo`).
    usage = f"{base}/api/v1/organizations/{demo['id']}/usage"
    series = session.get(f"{usage}/SMS_SENT", params={"group_by": "day"}, timeout=10).json()
    assert len(series["series"]) >= 30 and float(series["total"]) > 0, series
    assert session.get(usage, timeout=10).status_code == 200
    # The first run tracks usage too (the plan's credits are granted from the paid invoice before
    # the web server that takes its webhook is up), and one reservation holds credits.
    assert "5 tracked AI messages and 1 reservation" in make_run.output, make_run.output[-3000:]
    credits = session.get(f"{base}/api/v1/organizations/{demo['id']}/credits", timeout=30).json()
    assert float(credits["held"]) > 0 and float(credits["balance"]) > 0, credits

    # The emulator server delivers signed webhooks to the web server, which dj-stripe accepts
    # (gunicorn's access log: `"POST /stripe/webhook/<uuid>/ HTTP/1.1" 200`).
    wait_until(
        lambda: any("POST /stripe/webhook/" in line and '" 200' in line for line in make_run.lines),
        timeout=60,
        what="a webhook from the emulator to be accepted",
    )


def test_production_settings_debug_off_and_static_files_by_whitenoise(make_run):
    base = make_run.base
    assert "DEBUG off" in make_run.output
    # An unmatched API path answers the JSON contract, never Django's technical 404 page.
    for path in ("/api/v1/no-such-endpoint", "/api/nothing/here"):
        response = requests.get(f"{base}{path}", headers={"Accept": "text/html"}, timeout=30)
        assert response.status_code == 404
        assert response.json() == {"error": "not_found", "message": "Not found."}
    page = requests.get(f"{base}/no-such-page/", timeout=30)
    assert page.status_code == 404
    assert "URLconf" not in page.text and "Traceback" not in page.text

    # collectstatic ran with the manifest storage: hashed names, served with far-future caching.
    login = requests.get(f"{base}/admin/login/", timeout=30).text
    css = re.search(r'href="(/static/admin/css/base\.[0-9a-f]{12}\.css)"', login)
    assert css, login
    response = requests.get(f"{base}{css.group(1)}", headers={"Accept-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 200
    assert "immutable" in response.headers["Cache-Control"]
    assert response.headers["Content-Encoding"] == "gzip"
    assert "body" in response.text


def test_a_burst_of_200_concurrent_requests_keeps_connections_bounded(make_run):
    base, database = make_run.base, make_run.database
    session = signed_in(base, make_run.output)
    demo = session.get(f"{base}/api/v1/organizations", timeout=30).json()["results"][0]["id"]
    cookies = session.cookies.get_dict()
    urls = [f"{base}/api/v1/organizations", f"{base}/api/v1/organizations/{demo}/credits"]

    peak: dict[str, int] = {}
    sampling = threading.Event()

    def sample() -> None:
        with admin_connection() as conn:
            while not sampling.is_set():
                rows = conn.execute(
                    "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s"
                    " GROUP BY application_name",
                    (database,),
                ).fetchall()
                counts = dict(rows)
                counts["(all)"] = sum(counts.values())
                for name, count in counts.items():
                    peak[name] = max(peak.get(name, 0), count)
                time.sleep(0.02)

    barrier = threading.Barrier(200)
    statuses: list[int | str] = []

    def fire(i: int) -> None:
        barrier.wait()
        try:
            statuses.append(requests.get(urls[i % 2], cookies=cookies, timeout=120).status_code)
        except requests.RequestException as exc:
            statuses.append(type(exc).__name__)

    sampler = threading.Thread(target=sample)
    sampler.start()
    clients = [threading.Thread(target=fire, args=(i,)) for i in range(200)]
    try:
        for client in clients:
            client.start()
        for client in clients:
            client.join(180)
    finally:
        sampling.set()
        sampler.join()

    assert statuses.count(200) == 200, sorted(map(str, statuses))
    web_bound = WEB_CONCURRENCY * WEB_THREADS
    assert 1 <= peak.get("billing-web", 0) <= web_bound, peak
    # The web server, the worker's processes (pool + main) and beat; nothing else holds any.
    assert peak["(all)"] <= web_bound + WORKER_CONCURRENCY + 1 + 1, peak
    with admin_connection() as conn:
        max_connections = int(conn.execute("SHOW max_connections").fetchone()[0])
    assert peak["(all)"] < max_connections
    health = requests.get(f"{base}/healthz", timeout=10)
    assert health.status_code == 200, health.text


def test_make_manage_and_manage_py_use_the_running_stack(make_run):
    stack = json.loads(Path(make_run.stack_file).read_text())
    assert stack["pid"] == make_run.proc.pid
    assert stack["env"]["STRIPE_API_HOST"] == make_run.emulator

    # A task enqueued by a command reaches the running worker (same Redis), the database and the
    # emulator are the running ones, not the defaults.
    probe = (
        "from django.conf import settings; from django.db import connection; "
        "from config.celery import app; "
        "print('task', app.send_task('config.ping_task', args=['via-manage']).get(timeout=30)); "
        "print('db', connection.settings_dict['NAME']); "
        "print('stripe', settings.STRIPE_API_HOST)"
    )
    for command in (
        [sys.executable, "-m", "config.devstack", "manage", "shell", "-c", probe],
        [sys.executable, "manage.py", "shell", "-c", probe],
    ):
        result = subprocess.run(
            command, cwd=BASE_DIR, env=make_run.command_env(), capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "task pong:via-manage" in result.stdout, result.stdout + result.stderr
        assert f"db {make_run.database}" in result.stdout
        assert f"stripe {make_run.emulator}" in result.stdout
        assert "[devstack] PostgreSQL" not in result.stdout  # nothing was started for it

    # An organization made by `make manage` is served by the running web server, and its Stripe
    # customer lives in the running emulator.
    result = subprocess.run(
        [
            sys.executable, "-m", "config.devstack", "manage", "create_organization", "Made By Manage",
            "--owner-email", "manage@example.test", "--api-key",
        ],
        cwd=BASE_DIR, env=make_run.command_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    created = json.loads(result.stdout.strip().splitlines()[-1])
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    org = requests.get(f"{make_run.base}/api/v1/organizations/{created['organization_id']}", headers=headers)
    assert org.status_code == 200, org.text
    customers = requests.get(
        f"{make_run.emulator}/v1/customers",
        params={"email": "manage@example.test"},
        auth=("sk_test_emulator000000000000000000000000", ""),
        timeout=5,
    ).json()["data"]
    assert [c["metadata"]["organization_id"] for c in customers] == [created["organization_id"]], customers


def test_manage_py_without_a_stack_says_how_to_reach_one(tmp_path):
    env = child_env(STACK_FILE=str(tmp_path / "none.json"))
    for name in ("DATABASE_URL", "REDIS_URL", "STRIPE_API_HOST"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "`make run` is not running" in result.stderr and "make manage" in result.stderr, result.stderr


def test_ctrl_c_stops_every_process(make_run):
    children = psutil.Process(make_run.proc.pid).children(recursive=True)
    names = " ".join(" ".join(c.cmdline()) for c in children)
    assert "gunicorn" in names and "celery" in names and "stripe_emulator" in names, names
    assert make_run.stop() == 0, make_run.output
    wait_until(
        lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
        timeout=60,
        what="every child to stop",
    )
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{make_run.base}/healthz", timeout=2)
    assert not Path(make_run.stack_file).exists()
