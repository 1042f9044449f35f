"""Consumption throughput of the credit ledger (`make bench`; figures printed, never asserted).

One run measures three paths of a consumption of 1 credit, each for one hot organization (every
client on the same account row) and for 1,000 organizations (each request picks one at random):
- raw SQL through psycopg: lock the account row, update it, insert the ledger row;
- the service `credit_consume` (which also reads and updates the grants it draws from);
- HTTP, `POST /api/v1/organizations/<org>/credits/consume` with API keys, against gunicorn started
  exactly as the product serves (`config/gunicorn.py`, its defaults or the WEB_* variables), with
  DEBUG off; only the throttles are raised out of the way.
Raw SQL and the service run in this process, CLIENTS threads each. HTTP is driven by `wrk` (C,
event loop; Debian's package, installed with apt-get when missing) with a Lua script that sends a
unique idempotency key per request (tests/benchmarks/wrk/api.lua, BENCH_KIND=consume), so the
client costs little CPU per request; the table shows what share of the machine's CPU time the
client took while it ran, so a client-bound figure is visible as such.

Variables: BENCH_OPS_PER_CLIENT (250), BENCH_ROUNDS (3), BENCH_HTTP_SECONDS (10),
BENCH_CLIENTS (8, also wrk's connections), BENCH_PYTHON_CLIENT=1 adds the old Python `requests`
client for comparison.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import requests
from django.db import connection

from billing.models import Organization
from billing.services import api_key_create
from credits.models import CreditAccount, CreditTransaction
from credits.services import credit_consume, credit_grant
from tests.processes import BASE_DIR, child_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = int(os.environ.get("BENCH_CLIENTS", "8"))
OPS = int(os.environ.get("BENCH_OPS_PER_CLIENT", "250"))
# Raw SQL and the service run back to back this many times; the machine is shared, so the
# figures shown are the median round and the ratio is the median of the paired rounds.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
HTTP_SECONDS = int(os.environ.get("BENCH_HTTP_SECONDS", "10"))
WARMUP = 10
MANY = 1000
LUA = Path(__file__).parent / "wrk" / "api.lua"  # the hot-path bench's script, sending consumptions


# --------------------------------------------------------------------------- CPU accounting
def machine_cpu_seconds() -> float:
    """CPU time spent by every process on the machine, all cores (from /proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


@dataclass
class Figures:
    name: str
    ops: int
    seconds: float
    latencies_ms: dict[str, float]
    client_cpu: float | None = None  # the client's CPU seconds during the run
    machine_cpu: float | None = None  # the machine's CPU seconds during the run
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    @property
    def client_share(self) -> str:
        if self.client_cpu is None or not self.machine_cpu:
            return "in-process"
        return f"{100 * self.client_cpu / self.machine_cpu:.0f}%"

    def row(self) -> str:
        lat = self.latencies_ms
        return (
            f"{self.name:<30} {self.ops:>7} {self.rate:>9.0f} {lat['p50']:>8.2f} {lat['p99']:>8.2f}"
            f" {self.client_share:>11}"
        )


def percentiles(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        f"p{int(q * 100)}": ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 for q in (0.5, 0.99)
    }


def measure(name: str, make_client, op, *, client_is_this_process: bool) -> Figures:
    """`make_client()` runs once per thread (its own connection); `op(client, i)` is timed."""
    barrier = threading.Barrier(CLIENTS + 1)
    latencies: list[list[float]] = [[] for _ in range(CLIENTS)]
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        client = None
        try:
            client = make_client()
            for i in range(WARMUP):
                op(client, -1 - i)
            barrier.wait()
            mine = latencies[t]
            for i in range(OPS):
                start = time.perf_counter()
                op(client, i)
                mine.append(time.perf_counter() - start)
            barrier.wait()
        except BaseException as exc:
            errors.append(exc)
            barrier.abort()
        finally:
            if hasattr(client, "close"):
                client.close()
            connection.close()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(CLIENTS)]
    for t in threads:
        t.start()
    barrier.wait()
    cpu0, machine0, start = time.process_time(), machine_cpu_seconds(), time.perf_counter()
    barrier.wait()
    seconds = time.perf_counter() - start
    cpu, machine = time.process_time() - cpu0, machine_cpu_seconds() - machine0
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return Figures(
        name,
        CLIENTS * OPS,
        seconds,
        percentiles([x for lat in latencies for x in lat]),
        client_cpu=cpu if client_is_this_process else None,
        machine_cpu=machine,
    )


def median_round(rounds: list[Figures]) -> Figures:
    return sorted(rounds, key=lambda f: f.rate)[len(rounds) // 2]


# --------------------------------------------------------------------------- data
def organizations(count: int, prefix: str, credits: int) -> list[Organization]:
    orgs = Organization.objects.bulk_create(
        [Organization(name=f"{prefix} {i}", billing_email=f"{prefix}{i}@bench.test") for i in range(count)]
    )
    for org in orgs:
        credit_grant(organization=org, amount=credits, source="purchase", reference=f"seed-{org.pk}")
    return orgs


def dsn() -> str:
    d = connection.settings_dict
    params = {"dbname": d["NAME"], "user": d.get("USER") or None, "password": d.get("PASSWORD") or None}
    params["host"] = (d.get("OPTIONS") or {}).get("host") or d.get("HOST") or None
    params["port"] = d.get("PORT") or None
    return " ".join(f"{k}={v}" for k, v in params.items() if v)


RAW_INSERT = """
INSERT INTO credits_credittransaction (id, organization_id, account_id, sequence, kind, amount, balance_after,
    allocations, reason, event_name, metadata, actor, idempotency_key, request_fingerprint, created_at)
VALUES (%s, %s, %s, %s, 'consume', -1, %s, '[]', 'bench', '', '{}', '', %s, '', now())
"""


def raw_consume(conn: psycopg.Connection, org_id) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT id FROM credits_creditaccount WHERE organization_id = %s FOR UPDATE", (org_id,))
        (account_id,) = cur.fetchone()
        cur.execute(
            "UPDATE credits_creditaccount SET balance = balance - 1, sequence = sequence + 1, "
            "updated_at = now() WHERE id = %s RETURNING balance, sequence",
            (account_id,),
        )
        balance, sequence = cur.fetchone()
        cur.execute(RAW_INSERT, (uuid.uuid4(), org_id, account_id, sequence, balance, uuid.uuid4().hex))


def raw_client():
    return psycopg.connect(dsn())


# --------------------------------------------------------------------------- HTTP: gunicorn + wrk
@dataclass
class Server:
    url: str
    description: str
    pid: int = 0  # gunicorn's master process (its workers are its children)


@contextlib.contextmanager
def gunicorn_server(extra_args: list[str] | None = None, **env_overrides: str) -> Iterator[Server]:
    """gunicorn as the product serves (config/gunicorn.py) on the test database, DEBUG off, the
    throttles out of the way of the figures. `env_overrides` (WEB_CONCURRENCY, WEB_THREADS, ...)
    and `extra_args` (e.g. `-k sync`) try other configurations; BENCH_CHECKOUT, another checkout of
    the project (a git worktree of an earlier commit, same migrations), serves its code instead:
    an A/B comparison in one run."""
    checkout = Path(env_overrides.pop("BENCH_CHECKOUT", None) or BASE_DIR)
    if checkout != BASE_DIR:
        env_overrides["PYTHONPATH"] = str(checkout)
    port = free_port()
    env = child_env(
        WEB_BIND=f"127.0.0.1:{port}",
        THROTTLE_USER="100000000/min",
        THROTTLE_ANON="100000000/min",
        DEBUG="false",
        PYTHONWARNINGS="ignore",
        DB_APPLICATION_NAME="billing-web-bench",
        **env_overrides,
    )
    for name in ("WEB_RELOAD", "STATICFILES_STORAGE"):
        env.pop(name, None)
    args = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(checkout / "config" / "gunicorn.py"),
        *(extra_args or []),
    ]
    proc = subprocess.Popen(
        args,
        cwd=checkout,
        env=env,
        stdout=subprocess.DEVNULL,  # the access log is written, as in production, and dropped
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    config = subprocess.run(
        [sys.executable, "-c", "import runpy, json; c = runpy.run_path('config/gunicorn.py');"
         "print(json.dumps({k: c[k] for k in ('worker_class', 'workers', 'threads')}))"],
        cwd=checkout, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    c = json.loads(config.stdout)
    description = (
        f"gunicorn {c['worker_class']} {c['workers']} workers x {c['threads']} threads"
        if not extra_args
        else f"gunicorn {' '.join(extra_args)}, {c['workers']} workers"
    )
    try:
        wait_until(lambda: _answers(port), timeout=60, what="gunicorn")
        yield Server(f"http://127.0.0.1:{port}", description, proc.pid)
    finally:
        stop_process(proc)


@pytest.fixture
def server():
    with gunicorn_server() as s:
        yield s


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v1/credit-packs", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def ensure_wrk() -> str:
    result = subprocess.run(
        [str(BASE_DIR / ".ci" / "apt-ensure"), "wrk", "wrk"], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.fail(f"the HTTP benchmark needs wrk: {result.stderr.strip()}", pytrace=False)
    return "wrk"


def run_wrk(
    name: str, url: str, targets: Path, seconds: int, kind: str = "consume", suffix: str = "/credits/consume"
) -> Figures:
    """wrk with CLIENTS connections on 2 threads; its CPU time comes from wait4's rusage."""
    env = {
        **os.environ,
        "BENCH_TARGETS": str(targets),
        "BENCH_NONCE": uuid.uuid4().hex[:12],
        "BENCH_KIND": kind,
        "BENCH_SUFFIX": suffix,
    }
    machine0 = machine_cpu_seconds()
    proc = subprocess.Popen(
        ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{seconds}s", "--timeout", "30s", "-s", str(LUA), url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    machine = machine_cpu_seconds() - machine0
    result_line = next((line for line in output.splitlines() if line.startswith("WRK_RESULT ")), None)
    if proc.returncode != 0 or result_line is None:
        pytest.fail(f"wrk failed ({proc.returncode}):\n{output}", pytrace=False)
    r = json.loads(result_line.split(" ", 1)[1])
    errors = {
        k: r[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts") if r[k]
    }
    figures = Figures(
        name,
        r["requests"],
        r["duration_us"] / 1e6,
        {"p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000},
        client_cpu=usage.ru_utime + usage.ru_stime,
        machine_cpu=machine,
    )
    if errors:
        figures.notes.append(f"{name}: errors {errors}")
    return figures


def python_client_http(name: str, url: str, orgs, keys) -> Figures:
    """The old client, for comparison: CLIENTS Python threads with `requests` sessions."""

    def op(session, i):
        org = random.choice(orgs)
        response = session.post(
            f"{url}/api/v1/organizations/{org.pk}/credits/consume",
            json={"amount": 1, "reason": "bench", "idempotency_key": uuid.uuid4().hex},
            headers={"Authorization": f"Bearer {keys[org.pk]}"},
        )
        assert response.status_code == 200, response.text

    return measure(name, requests.Session, op, client_is_this_process=True)


def test_consumption_throughput(server, tmp_path, allow_ledger_drift):
    # allow_ledger_drift: the raw SQL rows (the database's limit, not the product) move the balance
    # without drawing the grants down, on the same organizations the service and HTTP use, so the
    # suite's after-test ledger check would report them (bench_hot_path keeps raw SQL apart instead).
    wrk = ensure_wrk()
    assert wrk
    load_before = os.getloadavg()
    budget = (OPS + WARMUP) * CLIENTS * (ROUNDS + 1)
    http_budget = 10_000_000  # wrk runs for a time, not a count
    hot_raw, hot_service = (organizations(1, name, budget)[0] for name in ("raw", "svc"))
    hot_http = organizations(1, "http", http_budget)[0]
    many_raw = organizations(MANY, "raw-many", budget)
    many_service = organizations(MANY, "svc-many", budget)
    many_http = organizations(MANY, "http-many", http_budget)
    keys = {org.pk: api_key_create(organization=org, name="bench").raw_key for org in [hot_http, *many_http]}
    hot_targets, many_targets = tmp_path / "hot.txt", tmp_path / "many.txt"
    hot_targets.write_text(f"{hot_http.pk} {keys[hot_http.pk]}\n")
    many_targets.write_text("".join(f"{org.pk} {keys[org.pk]}\n" for org in many_http))

    def service(orgs):
        return lambda _client, i: credit_consume(
            organization=random.choice(orgs), amount=1, reason="bench", idempotency_key=uuid.uuid4().hex
        )

    def paired(label, raw_op, service_op):
        raws, services = [], []
        for _ in range(ROUNDS):
            raws.append(measure(f"raw SQL, {label}", raw_client, raw_op, client_is_this_process=True))
            services.append(
                measure(f"service, {label}", lambda: None, service_op, client_is_this_process=False)
            )
        ratios = sorted(svc.rate / raw.rate for raw, svc in zip(raws, services, strict=True))
        return median_round(raws), median_round(services), ratios

    hot = paired("1 hot org", lambda c, i: raw_consume(c, hot_raw.pk), service([hot_service]))
    many = paired(
        f"{MANY} orgs", lambda c, i: raw_consume(c, random.choice(many_raw).pk), service(many_service)
    )
    # HTTP: a short warm-up (gunicorn's threads open their database connections), then the runs.
    run_wrk("warm-up", server.url, many_targets, 2)
    hot_api = run_wrk("HTTP (wrk), 1 hot org", server.url, hot_targets, HTTP_SECONDS)
    many_api = run_wrk(f"HTTP (wrk), {MANY} orgs", server.url, many_targets, HTTP_SECONDS)
    extra = []
    if os.environ.get("BENCH_PYTHON_CLIENT"):
        extra = [
            python_client_http("HTTP (requests), 1 hot org", server.url, [hot_http], keys),
            python_client_http(f"HTTP (requests), {MANY} orgs", server.url, many_http, keys),
        ]
    load_after = os.getloadavg()

    print()
    print(
        f"credit consumptions of 1, {CLIENTS} concurrent clients; raw SQL and service: {OPS} each, median "
        f"of {ROUNDS} paired rounds; HTTP: wrk for {HTTP_SECONDS} s against {server.description}"
    )
    print(
        f"cores: {os.cpu_count()}, load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"(1 min); client CPU = the client's share of all CPU time used on the machine meanwhile"
    )
    print(f"{'path':<30} {'ops':>7} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'client CPU':>11}")
    for figures in [hot[0], hot[1], hot_api, many[0], many[1], many_api, *extra]:
        print(figures.row())
    for label, (raw, svc, ratios), api in (("1 hot org", hot, hot_api), (f"{MANY} orgs", many, many_api)):
        print(
            f"ratio {label:<10}: service/raw {statistics.median(ratios):.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}), HTTP/raw {api.rate / raw.rate:.2f}x, "
            f"HTTP/service {api.rate / svc.rate:.2f}x"
        )
    for figures in (hot_api, many_api):
        for note in figures.notes:
            print(note)

    # The work was done: every consumption wrk counted as answered is in the ledger.
    spent = (OPS + WARMUP) * CLIENTS * ROUNDS
    assert CreditAccount.objects.get(organization=hot_service).balance == budget - spent
    assert not hot_api.notes and not many_api.notes, hot_api.notes + many_api.notes
    consumed = CreditTransaction.objects.filter(organization=hot_http, kind="consume").count()
    assert consumed >= hot_api.ops, (consumed, hot_api.ops)
