"""Consumption throughput of the credit ledger (`make bench`; figures printed, never asserted).

Three paths, 8 concurrent clients each, for one hot organization (every client on the same
account row) and for 1,000 organizations (each client picks one at random):
- raw SQL through psycopg: lock the account row, update it, insert the ledger row;
- the service `credit_consume` (which also reads and updates the grants it draws from);
- the HTTP API, `POST /credits/consume` with API keys, against a real gunicorn server.
The ratio service / raw SQL is the figure to watch (goal: 0.6x hot, 0.5x across 1,000).
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass

import psycopg
import pytest
import requests
from django.db import connection

from billing.models import Organization
from billing.services import api_key_create
from credits.models import CreditAccount
from credits.services import credit_consume, credit_grant
from tests.processes import BASE_DIR, child_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 8
OPS = int(os.environ.get("BENCH_OPS_PER_CLIENT", "250"))
# Raw SQL and the service run back to back this many times; the machine is shared, so the
# figures shown are the median round and the ratio is the median of the paired rounds.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP = 10
MANY = 1000


@dataclass
class Figures:
    name: str
    ops: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def row(self) -> str:
        return f"{self.name:<34} {self.ops:>6} {self.rate:>9.0f} {self.pct(0.5):>8.2f} {self.pct(0.99):>8.2f}"


def measure(name: str, make_client, op) -> Figures:
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
    start = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return Figures(name, CLIENTS * OPS, seconds, [x for lat in latencies for x in lat])


def median_round(rounds: list[Figures]) -> Figures:
    return sorted(rounds, key=lambda f: f.rate)[len(rounds) // 2]


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


@pytest.fixture
def server():
    """gunicorn on the test database, no throttling in the way of the figures."""
    port = free_port()
    workers = os.environ.get("BENCH_GUNICORN_WORKERS", "4")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", workers, "--log-level", "warning"],
        cwd=BASE_DIR,
        env=child_env(
            THROTTLE_USER="100000000/min",
            THROTTLE_ANON="100000000/min",
            DEBUG="false",
            PYTHONWARNINGS="ignore",
        ),
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), timeout=60, what="gunicorn")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v1/credit-packs", timeout=5).status_code == 200
    except requests.RequestException:
        return False


def test_consumption_throughput(server):
    budget = (OPS + WARMUP) * CLIENTS * (ROUNDS + 1)
    hot_raw, hot_service, hot_http = (organizations(1, name, budget)[0] for name in ("raw", "svc", "http"))
    many_raw = organizations(MANY, "raw-many", budget)
    many_service = organizations(MANY, "svc-many", budget)
    many_http = organizations(MANY, "http-many", budget)
    keys = {org.pk: api_key_create(organization=org, name="bench").raw_key for org in [hot_http, *many_http]}

    def service(orgs):
        return lambda _client, i: credit_consume(
            organization=random.choice(orgs), amount=1, reason="bench", idempotency_key=uuid.uuid4().hex
        )

    def http(orgs):
        def op(session, i):
            org = random.choice(orgs)
            response = session.post(
                f"{server}/api/v1/organizations/{org.pk}/credits/consume",
                json={"amount": 1, "reason": "bench", "idempotency_key": uuid.uuid4().hex},
                headers={"Authorization": f"Bearer {keys[org.pk]}"},
            )
            assert response.status_code == 200, response.text

        return op

    def paired(label, raw_op, service_op):
        raws, services = [], []
        for _ in range(ROUNDS):
            raws.append(measure(f"raw SQL, {label}", raw_client, raw_op))
            services.append(measure(f"service, {label}", lambda: None, service_op))
        ratios = sorted(svc.rate / raw.rate for raw, svc in zip(raws, services, strict=True))
        return median_round(raws), median_round(services), ratios

    hot = paired("1 hot org", lambda c, i: raw_consume(c, hot_raw.pk), service([hot_service]))
    many = paired(
        f"{MANY} orgs", lambda c, i: raw_consume(c, random.choice(many_raw).pk), service(many_service)
    )
    hot_api = measure("HTTP API, 1 hot org", requests.Session, http([hot_http]))
    many_api = measure(f"HTTP API, {MANY} orgs", requests.Session, http(many_http))

    print()
    print(
        f"credit consumptions, {CLIENTS} concurrent clients x {OPS} each, median of {ROUNDS} paired rounds "
        f"(cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})"
    )
    print(f"{'path':<34} {'ops':>6} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for figures in [hot[0], hot[1], hot_api, many[0], many[1], many_api]:
        print(figures.row())
    for label, (raw, svc, ratios), api in (("1 hot org", hot, hot_api), (f"{MANY} orgs", many, many_api)):
        print(
            f"ratio {label:<10}: service/raw {statistics.median(ratios):.2f}x "
            f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)}), HTTP/raw {api.rate / raw.rate:.2f}x, "
            f"HTTP/service {api.rate / svc.rate:.2f}x"
        )
    spent = (OPS + WARMUP) * CLIENTS * ROUNDS
    assert CreditAccount.objects.get(organization=hot_service).balance == budget - spent  # the work was done
