"""Usage metering throughput and read latency (`make bench`; figures printed, never asserted).

In one run:
1. Events per second into the partitioned events table, batches of 100 and of 1,000, two
   concurrent clients each on its own organization:
   - raw limit: the same rows through psycopg, (a) COPY into the events table alone, (b) the
     very statement the service runs (keys, events, rollups in one INSERT ... ON CONFLICT);
   - the service `usage_events_record` (validation, metric lookup, quota counters, the statement);
   - HTTP `POST /usage/events` on gunicorn with the product's configuration (config/gunicorn.py),
     warmed up first (`warm_up`, untimed), keep-alive `http.client` connections and pre-serialized
     bodies; the client's CPU share is printed (it shares the 2 cores with the server).
2. `track` calls per second with p50/p99 (service and HTTP), 4 concurrent clients across 50
   organizations.
3. `GET /usage` p50/p99 with 10 million events in the table (built once, in a database of its own
   kept under .local, reused by later runs): in the service and over HTTP, for the organization
   with the most usage (1 million events this month) and for an ordinary one.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta

import psutil
import psycopg
import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from billing.models import Organization, Plan
from billing.services import api_key_create
from credits.services import credit_grant
from tests.benchmarks.bench_credits import machine_cpu_seconds
from tests.db_template import _admin_connection, migrations_hash
from tests.processes import BASE_DIR, child_env, database_url, free_port, stop_process, wait_until
from usage import counters
from usage.partitions import partitions_ensure
from usage.selectors import metric_catalog
from usage.services import usage_events_record, usage_track
from usage.services.recording import statement_params

pytestmark = pytest.mark.django_db(transaction=True)

CLIENTS = 2
EVENTS = int(os.environ.get("BENCH_USAGE_EVENTS", "20000"))  # per client and path
# The four ingestion paths take turns this many times per batch size; the figures shown are each
# path's median round and the ratio is the median of the rounds' ratios (the machine is shared:
# one short raw run moved by half between runs).
ROUNDS = int(os.environ.get("BENCH_USAGE_ROUNDS", "3"))
TRACKS = int(os.environ.get("BENCH_USAGE_TRACKS", "300"))  # per client
READS = int(os.environ.get("BENCH_USAGE_READS", "400"))
BIG = int(os.environ.get("BENCH_USAGE_BIG_EVENTS", "10000000"))
METRICS = ["SMS_SENT", "SMS_RECEIVED", "API_REQUEST", "AI_TOKENS", "CONTACT_CREATED"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def run_clients(count: int, work) -> float:
    """`work(client_index)` in `count` threads released together; answers the wall time."""
    barrier = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait()
            work(i)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - start


def events_for(prefix: str, count: int) -> list[dict]:
    now = timezone.now()
    return [
        {
            "metric": METRICS[i % len(METRICS)],
            "quantity": 1 + i % 4,
            "idempotency_key": f"{prefix}-{i}",
            "occurred_at": (now - timedelta(minutes=i % 2880)).isoformat(),
            "user_id": f"u{i % 50}",
            "resource_type": "message",
            "resource_id": f"r{i}",
            "dimensions": {"platform": ("ios", "android", "web")[i % 3]},
        }
        for i in range(count)
    ]


def dsn(dbname: str | None = None) -> str:
    d = connection.settings_dict
    params = {
        "dbname": dbname or d["NAME"],
        "user": d.get("USER") or None,
        "password": d.get("PASSWORD") or None,
    }
    params["host"] = (d.get("OPTIONS") or {}).get("host") or d.get("HOST") or None
    params["port"] = d.get("PORT") or None
    return " ".join(f"{k}={v}" for k, v in params.items() if v)


def new_orgs(count: int, prefix: str, plan: Plan | None = None) -> list[Organization]:
    return Organization.objects.bulk_create(
        [
            Organization(
                name=f"{prefix} {i}", billing_email=f"{prefix}{i}@bench.test", plan=plan,
                subscription_status="active" if plan else "",
            )
            for i in range(count)
        ]
    )  # fmt: skip


# --------------------------------------------------------------------------- raw paths
COPY_SQL = (
    "COPY usage_usageevent (organization_id, occurred_at, id, metric_id, quantity, recorded_at, "
    "idempotency_key, user_id, resource_type, resource_id, dimensions, credits) FROM STDIN"
)


def raw_rows(events: list[dict]):
    """The rows as the statement binds them (built before the clock starts)."""
    catalog = metric_catalog()
    from datetime import datetime
    from decimal import Decimal

    return [
        (
            uuid.uuid4(), e["idempotency_key"], catalog[e["metric"]].id, Decimal(e["quantity"]),
            datetime.fromisoformat(e["occurred_at"]), e["user_id"], e["resource_type"], e["resource_id"],
            json.dumps(e["dimensions"]),
        )
        for e in events
    ]  # fmt: skip


def raw_prepared(events: list[dict]) -> list:
    """The same events as the service hands them to its statement (checked before the clock)."""
    from usage.services.recording import prepare

    good, bad = prepare(events, catalog=metric_catalog(), now=timezone.now())
    assert not bad
    return good


def raw_statement(conn, org_id, rows, batch: int) -> None:
    """The service's own statement (keys, events, rollups), bound as the service binds it."""
    for start in range(0, len(rows), batch):
        sql, params = statement_params(org_id, rows[start : start + batch], timezone.now())
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(sql, params, prepare=True)


def raw_copy(conn, org_id, rows, batch: int) -> None:
    now = timezone.now()
    for start in range(0, len(rows), batch):
        with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
            for r in rows[start : start + batch]:
                copy.write_row((org_id, r[4], r[0], r[2], r[3], now, r[1], r[5], r[6], r[7], r[8], 0))


# --------------------------------------------------------------------------- gunicorn
class Server:
    def __init__(self, **env: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            # The product's own server configuration (config/gunicorn.py: gthread, workers x
            # threads, garbage collection), as `make run` and docker-compose.yml serve.
            [sys.executable, "-m", "gunicorn", "-c", str(BASE_DIR / "config" / "gunicorn.py"),
             os.environ.get("BENCH_WSGI_APP", "config.wsgi:application")],
            cwd=BASE_DIR,
            env=child_env(THROTTLE_USER="100000000/min", THROTTLE_ANON="100000000/min", DEBUG="false",
                          PYTHONWARNINGS="ignore", WEB_BIND=f"127.0.0.1:{self.port}",
                          WEB_CONCURRENCY=os.environ.get("BENCH_GUNICORN_WORKERS", "2"),
                          FORWARDED_ALLOW_IPS="*", **env),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(self._answers, timeout=60, what="gunicorn")
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _answers(self) -> bool:
        try:
            conn = Connection("127.0.0.1", self.port, timeout=5)
            conn.request("GET", "/api/v1/credit-packs")
            return conn.getresponse().status == 200
        except OSError:
            return False

    def cpu(self) -> float:
        try:
            procs = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
        except psutil.Error:
            return 0.0

    def stop(self) -> None:
        stop_process(self.proc)


class Connection(http.client.HTTPConnection):
    """http.client with TCP_NODELAY (as urllib3 sets it): without it, Nagle's algorithm and the
    server's delayed ACK add about 40 ms to a request whose headers and body go in two sends."""

    def connect(self):
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def http_post(conn: http.client.HTTPConnection, path: str, body: bytes, key: str) -> tuple[int, bytes]:
    conn.request(
        "POST",
        path,
        body=body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = conn.getresponse()
    return response.status, response.read()


def http_get(conn: http.client.HTTPConnection, path: str, key: str) -> tuple[int, bytes]:
    conn.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = conn.getresponse()
    return response.status, response.read()


# --------------------------------------------------------------------------- 1 and 2
WARM_CLIENTS, WARM_REQUESTS = 4, 10


def warm_up(server: Server, plan: Plan) -> None:
    """Untimed requests first (4 connections x 10 batches of 10 events, on an organization of their
    own), so the timed HTTP figures are a warm server's: a worker loads the URLconf and each of its
    threads opens its database connection on its first requests after the fork (about 1.5 ms of
    server CPU a request over the first 400 requests of batch 100)."""
    org = new_orgs(1, "warm-up", plan)[0]
    key = api_key_create(organization=org, name="bench").raw_key
    target = f"/api/v1/organizations/{org.pk}/usage/events"

    def work(c: int) -> None:
        conn = Connection("127.0.0.1", server.port, timeout=120)
        events = events_for(f"warm-up-{c}", 10 * WARM_REQUESTS)
        for i in range(WARM_REQUESTS):
            body = json.dumps({"events": events[10 * i : 10 * i + 10]}).encode()
            status, answer = http_post(conn, target, body, key)
            assert status == 200, answer[:300]
        conn.close()

    run_clients(WARM_CLIENTS, work)


def test_ingestion_and_track_throughput():
    counters.reset()
    rows_out: list[str] = []
    plan, _ = Plan.objects.update_or_create(
        code="bench-usage", defaults={"name": "bench", "limits": {m: 10**12 for m in METRICS}}
    )
    server = Server()
    try:
        warm_up(server, plan)
        for batch in (100, 1000):
            figures: dict[str, list[tuple[float, float, float]]] = {}
            details: list[tuple[float, float, float]] = []
            for rnd in range(ROUNDS):
                # raw COPY, raw statement, service, HTTP: the same events, each on fresh organizations.
                for path in ("raw COPY (events only)", "raw statement", "service", "HTTP"):
                    label = f"{path}-{batch}-r{rnd}"
                    orgs = new_orgs(CLIENTS, label, plan)
                    keys = (
                        [api_key_create(organization=o, name="bench").raw_key for o in orgs]
                        if path == "HTTP"
                        else []
                    )
                    events = [events_for(f"{label}-{c}", EVENTS) for c in range(CLIENTS)]
                    prepared = (
                        [(raw_rows if "COPY" in path else raw_prepared)(e) for e in events]
                        if path.startswith("raw")
                        else None
                    )
                    bodies = (
                        [
                            [
                                json.dumps({"events": e[i : i + batch]}).encode()
                                for i in range(0, EVENTS, batch)
                            ]
                            for e in events
                        ]
                        if path == "HTTP"
                        else None
                    )
                    request_times: list[float] = []

                    def work(
                        c,
                        path=path,
                        orgs=orgs,
                        keys=keys,
                        events=events,
                        prepared=prepared,
                        bodies=bodies,
                        batch=batch,
                        request_times=request_times,
                    ):
                        if path.startswith("raw"):
                            with psycopg.connect(dsn()) as conn:
                                (raw_copy if "COPY" in path else raw_statement)(
                                    conn, orgs[c].pk, prepared[c], batch
                                )
                        elif path == "service":
                            for s in range(0, EVENTS, batch):
                                result = usage_events_record(
                                    organization=orgs[c], events=events[c][s : s + batch]
                                )
                                assert result.accepted == len(events[c][s : s + batch])
                        else:
                            conn = Connection("127.0.0.1", server.port, timeout=120)
                            target = f"/api/v1/organizations/{orgs[c].pk}/usage/events"
                            for body in bodies[c]:
                                started = time.perf_counter()
                                status, answer = http_post(conn, target, body, keys[c])
                                request_times.append(time.perf_counter() - started)
                                assert status == 200 and json.loads(answer)["rejected"] == [], answer[:300]
                            conn.close()

                    cpu_before, server_before = time.process_time(), server.cpu()
                    machine_before = machine_cpu_seconds()
                    seconds = run_clients(CLIENTS, work)
                    client_cpu = (time.process_time() - cpu_before) / seconds
                    server_cpu = (server.cpu() - server_before) / seconds
                    machine = (machine_cpu_seconds() - machine_before) / seconds / (os.cpu_count() or 1)
                    figures.setdefault(path, []).append(
                        (CLIENTS * EVENTS / seconds, client_cpu, server_cpu, machine)
                    )
                    if request_times:
                        details.append(
                            (
                                pct(request_times, 0.5),
                                1000 * server_cpu * seconds / len(request_times),
                                1e6 * server_cpu * seconds / (CLIENTS * EVENTS),
                            )
                        )
            raws = [r[0] for r in figures["raw statement"]]
            median_at = {path: sorted(range(ROUNDS), key=lambda i, p=path: figures[p][i][0])[ROUNDS // 2]
                         for path in figures}  # fmt: skip
            for path, rounds in figures.items():
                rate, client_cpu, server_cpu, machine = rounds[median_at[path]]
                ratios = sorted(r[0] / raw for r, raw in zip(rounds, raws, strict=True))
                ratio = statistics.median(ratios)
                detail = details[median_at["HTTP"]]
                extra = (
                    f"  client CPU {client_cpu:.0%} of a core, server {server_cpu:.0%}; a request: "
                    f"p50 {detail[0]:.1f} ms wall, {detail[1]:.1f} ms server CPU "
                    f"({detail[2]:.0f} us an event)"
                    if path == "HTTP"
                    else ""
                )
                rounds_text = ", ".join(f"{r[0]:.0f}" for r in rounds)
                ratio_text = ", ".join(f"{x:.2f}" for x in ratios)
                rows_out.append(
                    f"  batch {batch:>5}  {path:<24} {rate:>9.0f} events/s  {ratio:>5.2f}x of raw "
                    f"(rounds {rounds_text} events/s; ratios {ratio_text}); machine {machine:.0%} busy{extra}"
                )

        # track: 4 clients over 50 organizations with credits.
        track_orgs = new_orgs(50, "track", plan)
        for org in track_orgs:
            credit_grant(organization=org, amount=10**6, source="purchase", reference=f"bench-{org.pk}")
        keys = {o.pk: api_key_create(organization=o, name="bench").raw_key for o in track_orgs}
        track_figures = {}
        for path in ("service", "HTTP"):
            latencies: list[list[float]] = [[] for _ in range(4)]

            def track_work(c, path=path, latencies=latencies):
                conn = Connection("127.0.0.1", server.port, timeout=60) if path == "HTTP" else None
                for i in range(TRACKS):
                    org = track_orgs[(c * TRACKS + i) % len(track_orgs)]
                    key = f"{path}-{c}-{i}"
                    start = time.perf_counter()
                    if conn is None:
                        usage_track(organization=org, metric="SMS_SENT", idempotency_key=key)
                    else:
                        body = json.dumps({"metric": "SMS_SENT", "idempotency_key": key}).encode()
                        status, answer = http_post(
                            conn, f"/api/v1/organizations/{org.pk}/usage/track", body, keys[org.pk]
                        )
                        assert status == 201, answer[:300]
                    latencies[c].append(time.perf_counter() - start)

            seconds = run_clients(4, track_work)
            flat = [x for lat in latencies for x in lat]
            track_figures[path] = (len(flat) / seconds, pct(flat, 0.5), pct(flat, 0.99))
    finally:
        server.stop()

    print()
    print(
        f"usage ingestion, {CLIENTS} concurrent clients x {EVENTS} events each, {ROUNDS} rounds taking turns "
        f"(cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f})"
    )
    for row in rows_out:
        print(row)
    print("track (quota + credits + event in one transaction), 4 concurrent clients, 50 organizations")
    for path, (rate, p50, p99) in track_figures.items():
        print(f"  {path:<8} {rate:>7.0f} calls/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms")


# --------------------------------------------------------------------------- 3
ROLLUPS_FROM_EVENTS = """
INSERT INTO usage_usagerollup (organization_id, metric_id, hour, quantity, events, quantity_max, credits)
SELECT organization_id, metric_id, date_trunc('hour', occurred_at, 'UTC'), sum(quantity), count(*),
    max(quantity), 0
FROM usage_usageevent GROUP BY 1, 2, 3
"""
DAYS_FROM_HOURS = """
INSERT INTO usage_usagerollupday (organization_id, metric_id, day, quantity, events, quantity_max, credits)
SELECT organization_id, metric_id, date_trunc('day', hour, 'UTC'), sum(quantity), sum(events),
    max(quantity_max), 0
FROM usage_usagerollup GROUP BY 1, 2, 3
"""


def big_database() -> str:
    """A database with BIG events (built once, reused): 1,000 organizations, one of them with
    10 % of the events, all within the last 30 days; rollups built from the events."""
    name = f"billing_bench_usage_{migrations_hash()}_{BIG}"
    template = settings.DATABASES["default"]["TEST"]["TEMPLATE"]
    with _admin_connection() as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            with psycopg.connect(dsn(name)) as conn:
                done = conn.execute("SELECT to_regclass('bench_meta') IS NOT NULL").fetchone()[0]
                if done and conn.execute("SELECT v FROM bench_meta WHERE k = 'events'").fetchone() == (
                    str(BIG),
                ):
                    return name
            admin.execute(f'DROP DATABASE "{name}"')
        for (old,) in admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'billing\\_bench\\_usage\\_%%'"
        ):
            admin.execute(f'DROP DATABASE IF EXISTS "{old}"')
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    started = time.perf_counter()
    print(f"\nbuilding {BIG:,} events in {name} (once; later runs reuse it)...", flush=True)
    with psycopg.connect(dsn(name), autocommit=True) as conn:
        now = timezone.now()
        month_ago = now - timedelta(days=30)
        conn.execute(
            "INSERT INTO billing_organization (id, name, billing_email, plan_interval, subscription_status, "
            "stripe_subscription_id, created_at, updated_at) SELECT gen_random_uuid(), 'bench ' || g, "
            "'b' || g || '@bench.test', '', '', '', now() - (g || ' seconds')::interval, now() "
            "FROM generate_series(1, 1000) g"
        )
        conn.execute(
            """
            WITH orgs AS (SELECT array_agg(id ORDER BY created_at DESC) AS ids FROM billing_organization),
                 metrics AS (SELECT array_agg(id ORDER BY id) AS ids FROM usage_metric)
            INSERT INTO usage_usageevent (organization_id, occurred_at, id, metric_id, quantity, recorded_at,
                idempotency_key, dimensions)
            SELECT CASE WHEN g %% 10 = 0 THEN orgs.ids[1] ELSE orgs.ids[2 + g %% 999] END,
                   %(start)s + (random() * (%(now)s - %(start)s)), gen_random_uuid(),
                   metrics.ids[1 + g %% array_length(metrics.ids, 1)], 1 + g %% 5, %(now)s, 'b' || g,
                   jsonb_build_object('platform', (ARRAY['ios', 'android', 'web'])[1 + g %% 3])
            FROM generate_series(1, %(count)s) g, orgs, metrics
            """,
            {"start": month_ago, "now": now, "count": BIG},
        )
        conn.execute(ROLLUPS_FROM_EVENTS)
        conn.execute(DAYS_FROM_HOURS)
        conn.execute("VACUUM ANALYZE")
        conn.execute("CREATE TABLE bench_meta (k text PRIMARY KEY, v text)")
        conn.execute("INSERT INTO bench_meta VALUES ('events', %s)", (str(BIG),))
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return name


def test_get_usage_latency_with_ten_million_events():
    name = big_database()
    saved = connection.settings_dict["NAME"]
    connection.close()
    connection.settings_dict["NAME"] = name
    try:
        partitions_ensure()
        from usage.selectors import usage_summary_get

        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM usage_usagerollup")
            (rollups,) = cursor.fetchone()
        big = Organization.objects.filter(name__startswith="bench ").order_by("-created_at").first()
        small = Organization.objects.filter(name__startswith="bench ").order_by("created_at").first()
        keys = {o.pk: api_key_create(organization=o, name="bench").raw_key for o in (big, small)}
        results = {}
        for label, org in (("busiest organization (1M events)", big), ("ordinary organization (9k)", small)):
            for _ in range(20):
                usage_summary_get(organization=org, now=timezone.now())
            latencies = []
            for _ in range(READS):
                start = time.perf_counter()
                usage_summary_get(organization=org, now=timezone.now())
                latencies.append(time.perf_counter() - start)
            results[("service", label)] = latencies
        server = Server(DATABASE_URL=database_url(name))
        try:
            for label, org in (
                ("busiest organization (1M events)", big),
                ("ordinary organization (9k)", small),
            ):
                conn = Connection("127.0.0.1", server.port, timeout=30)
                path = f"/api/v1/organizations/{org.pk}/usage"
                for _ in range(20):
                    http_get(conn, path, keys[org.pk])
                latencies = []
                for _ in range(READS):
                    start = time.perf_counter()
                    status, body = http_get(conn, path, keys[org.pk])
                    latencies.append(time.perf_counter() - start)
                    assert status == 200, body[:300]
                results[("HTTP", label)] = latencies
                conn.close()
        finally:
            server.stop()
    finally:
        connection.close()
        connection.settings_dict["NAME"] = saved
    print()
    print(f"GET /usage with {BIG:,} events ({rollups:,} hourly rollup rows), {READS} calls each, one client")
    for (path, label), latencies in results.items():
        p50, p99, mean = pct(latencies, 0.5), pct(latencies, 0.99), statistics.mean(latencies) * 1000
        print(f"  {path:<8} {label:<34} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   mean {mean:6.2f} ms")
