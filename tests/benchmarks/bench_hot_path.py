"""The API's hot paths in one table, one run (`make bench ARGS=tests/benchmarks/bench_hot_path.py`;
figures printed, never asserted).

- `POST /credits/consume` for one hot organization and across 1,000: raw SQL (psycopg: lock the
  account, update it, insert the ledger row), the service `credit_consume`, and HTTP;
- HTTP `POST /usage/track` (quota + credits + event) and `POST /usage/events` with 100 events;
- the read paths `GET /credits`, `GET /usage` and `GET /subscription` of a subscribed
  organization (200 consumptions, 500 events in five metrics this period), in the service (the
  selectors the views call) and over HTTP.

Raw SQL and the service run in this process, CLIENTS threads each (the median of ROUNDS paired
rounds; the service's reads: the round with the median p99 of ROUNDS). HTTP runs against gunicorn
as the product serves (`config/gunicorn.py`, DEBUG off, only the throttles raised out of the way),
driven by `wrk` (C, event loop) with tests/benchmarks/wrk/api.lua, CLIENTS connections. The last
columns show what the client cost: its CPU time over the run's wall time (in cores; wrk runs 2
threads) and its share of all CPU time used on the machine meanwhile, so a client-bound HTTP
figure shows as such. The read paths are measured after the writes have settled (a checkpoint,
no autovacuum running: `settle`), each over HTTP after a 2 s warm-up.

Variables: as bench_credits.py (BENCH_CLIENTS 8, BENCH_OPS_PER_CLIENT 250, BENCH_ROUNDS 3,
BENCH_HTTP_SECONDS 10), BENCH_READ_SECONDS (6) for each HTTP read.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import time
import uuid
from pathlib import Path

import psutil
import pytest
from django.utils import timezone

from billing.models import Plan
from billing.selectors import subscription_summary_get
from billing.services import api_key_create, subscription_create
from credits.selectors import credit_summary_get, ledger_drift_list
from credits.services import credit_consume, credit_grant
from tests.benchmarks.bench_credits import (
    CLIENTS,
    HTTP_SECONDS,
    MANY,
    OPS,
    ROUNDS,
    WARMUP,
    Figures,
    ensure_wrk,
    gunicorn_server,
    machine_cpu_seconds,
    measure,
    median_round,
    organizations,
    raw_client,
    raw_consume,
)
from usage.selectors import usage_summary_get
from usage.services import usage_events_record

pytestmark = pytest.mark.django_db(transaction=True)

READ_SECONDS = int(os.environ.get("BENCH_READ_SECONDS", "6"))
LUA = Path(__file__).parent / "wrk" / "api.lua"
METRIC = "API_REQUEST"


def settle(timeout: float = 90.0) -> float:
    """Before the read paths: the writes measured before them have left PostgreSQL work behind
    (dirty pages, autovacuum of the tables they grew). A checkpoint, then a wait until no
    autovacuum worker runs, so the reads' figures are theirs. Answers the seconds waited."""
    from django.db import DatabaseError, connection

    start = time.monotonic()
    with connection.cursor() as cursor:
        with contextlib.suppress(DatabaseError):  # not a superuser (DATABASE_URL elsewhere)
            cursor.execute("CHECKPOINT")
        while time.monotonic() - start < timeout:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.5)
    connection.close()
    return time.monotonic() - start


def server_cpu(pid: int) -> float:
    """CPU seconds used so far by gunicorn's master and workers."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        return sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    except psutil.Error:
        return 0.0


def wrk(name: str, server, targets: Path, seconds: int, kind: str, suffix: str, **env: str) -> Figures:
    """wrk with CLIENTS connections on 2 threads; its CPU time comes from wait4's rusage, the
    server's from /proc (gunicorn's processes): CPU per call does not depend on the machine's load
    the way calls per second do."""
    url = server.url
    environment = {
        **os.environ,
        "BENCH_TARGETS": str(targets),
        "BENCH_NONCE": uuid.uuid4().hex[:12],
        "BENCH_KIND": kind,
        "BENCH_SUFFIX": suffix,
        "BENCH_METRIC": METRIC,
        **env,
    }
    machine0, server0 = machine_cpu_seconds(), server_cpu(server.pid)
    proc = subprocess.Popen(
        ["wrk", "-t", "2", "-c", str(CLIENTS), "-d", f"{seconds}s", "--timeout", "30s", "-s", str(LUA), url],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output = proc.stdout.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    machine = machine_cpu_seconds() - machine0
    server_seconds = server_cpu(server.pid) - server0
    line = next((x for x in output.splitlines() if x.startswith("WRK_RESULT ")), None)
    if os.waitstatus_to_exitcode(status) != 0 or line is None:
        pytest.fail(f"wrk failed:\n{output}", pytrace=False)
    r = json.loads(line.split(" ", 1)[1])
    figures = Figures(
        name,
        r["requests"],
        r["duration_us"] / 1e6,
        {"p50": r["p50_us"] / 1000, "p99": r["p99_us"] / 1000},
        client_cpu=usage.ru_utime + usage.ru_stime,
        machine_cpu=machine,
    )
    figures.server_cpu = server_seconds
    errors = {
        k: r[k] for k in ("connect_errors", "read_errors", "write_errors", "non_2xx", "timeouts") if r[k]
    }
    if errors:
        figures.notes.append(f"{name}: errors {errors}")
    return figures


def row(figures: Figures, unit: str = "") -> str:
    lat = figures.latencies_ms
    if figures.client_cpu is None:
        cores, share = "in-process", "in-process"
    else:
        cores = f"{figures.client_cpu / figures.seconds:.2f}"
        share = f"{100 * figures.client_cpu / figures.machine_cpu:.0f}%" if figures.machine_cpu else "?"
    server = getattr(figures, "server_cpu", None)
    per_call = f"{1000 * server / figures.ops:.1f}" if server and figures.ops else "-"
    return (
        f"| {figures.name:<40} | {figures.ops:>7} | {figures.rate:>9.0f}{unit} | {lat['p50']:>7.2f} "
        f"| {lat['p99']:>7.2f} | {per_call:>10} | {cores:>10} | {share:>10} |"
    )


def measure_in_processes(name: str, op, processes: int = 2) -> Figures:
    """`measure`'s figures for `op` called by CLIENTS clients spread over `processes` forked
    processes (CLIENTS / processes threads each), as the product's web server calls the service
    (config/gunicorn.py: 2 workers x 4 threads): the interpreter lock is per process."""
    import multiprocessing

    from django.db import connections

    from tests.benchmarks.bench_credits import percentiles

    ctx = multiprocessing.get_context("fork")
    per = CLIENTS // processes
    start, done = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1)
    results = ctx.Queue()

    def child() -> None:
        import threading

        latencies: list[float] = []
        warm, go = threading.Barrier(per + 1), threading.Event()

        def client() -> None:
            mine = []
            for i in range(WARMUP):
                op(None, -1 - i)
            warm.wait()
            go.wait()
            for i in range(OPS):
                began = time.perf_counter()
                op(None, i)
                mine.append(time.perf_counter() - began)
            latencies.extend(mine)  # one list.extend: atomic under the interpreter lock
            connections.close_all()

        threads = [threading.Thread(target=client) for _ in range(per)]
        for t in threads:
            t.start()
        warm.wait()  # every thread of this process warmed up
        start.wait()  # and every process
        go.set()
        for t in threads:
            t.join()
        results.put(latencies)
        done.wait()

    connections.close_all()  # the children open their own
    children = [ctx.Process(target=child) for _ in range(processes)]
    for c in children:
        c.start()
    start.wait()
    cpu0, began = machine_cpu_seconds(), time.perf_counter()
    latencies = [x for _ in children for x in results.get(timeout=120)]
    seconds = time.perf_counter() - began
    done.wait()
    for c in children:
        c.join(timeout=30)
    return Figures(
        name, len(latencies), seconds, percentiles(latencies), machine_cpu=machine_cpu_seconds() - cpu0
    )


def targets_file(path: Path, orgs, keys) -> Path:
    path.write_text("".join(f"{org.pk} {keys[org.pk]}\n" for org in orgs))
    return path


def test_hot_paths(catalogue, billing_owner, tmp_path, allow_ledger_drift):
    """Raw SQL moves balances without grants (by design: it is the lower bound), so the ledger
    check after the test is left to the end of this one, for every organization but those."""
    ensure_wrk()
    load_before = os.getloadavg()
    steal_before = getattr(psutil.cpu_times(), "steal", 0.0)  # Linux: CPU time the hypervisor took
    budget = (OPS + WARMUP) * CLIENTS * (ROUNDS + 1)
    plan, _ = Plan.objects.update_or_create(
        code="bench-hot", defaults={"name": "bench", "limits": {METRIC: 10**12, "SMS_SENT": 10**12}}
    )
    hot_raw, hot_service, hot_http = (organizations(1, name, 10**8)[0] for name in ("raw", "svc", "http"))
    many_raw = organizations(MANY, "raw-many", budget)
    many_service = organizations(MANY, "svc-many", budget)
    many_http = organizations(MANY, "http-many", 10**7)
    usage_orgs = organizations(50, "usage", 10**8)
    type(usage_orgs[0]).objects.filter(pk__in=[o.pk for o in usage_orgs]).update(
        plan=plan, subscription_status="active"
    )
    # A subscribed organization (the emulator, a card, the plan's credits) with some history.
    from billing.services import organization_create

    reader = organization_create(name="Reader", billing_email="reader@bench.test", owner=billing_owner)
    subscription_create(organization=reader, plan="starter", interval="month", payment_method="pm_card_visa")
    credit_grant(organization=reader, amount=10**6, source="purchase", reference="bench-reader")
    for i in range(200):
        credit_consume(organization=reader, amount=1, reason="history", idempotency_key=f"h-{i}")
    # Usage in five metrics this period (so GET /usage has totals to add up, not only zeros).
    used = ("SMS_SENT", "API_REQUEST", "AI_TOKENS", "STORAGE_USED_MB", "CONTACT_CREATED")
    usage_events_record(
        organization=reader,
        events=[
            {"metric": used[i % 5], "quantity": 1 + i % 7, "idempotency_key": f"u-{i}"} for i in range(500)
        ],
    )

    keys = {
        org.pk: api_key_create(organization=org, name="bench").raw_key
        for org in [hot_http, *many_http, *usage_orgs, reader]
    }
    hot_targets = targets_file(tmp_path / "hot.txt", [hot_http], keys)
    many_targets = targets_file(tmp_path / "many.txt", many_http, keys)
    usage_targets = targets_file(tmp_path / "usage.txt", usage_orgs, keys)
    reader_targets = targets_file(tmp_path / "reader.txt", [reader], keys)

    def service(orgs):
        return lambda _client, i: credit_consume(
            organization=random.choice(orgs), amount=1, reason="bench", idempotency_key=uuid.uuid4().hex
        )

    def paired(label, raw_op, service_op):
        raws, services = [], []
        for _ in range(ROUNDS):
            raws.append(
                measure(f"consume raw SQL, {label}", raw_client, raw_op, client_is_this_process=False)
            )
            services.append(
                measure(f"consume service, {label}", lambda: None, service_op, client_is_this_process=False)
            )
        ratios = sorted(svc.rate / raw.rate for raw, svc in zip(raws, services, strict=True))
        return median_round(raws), median_round(services), ratios

    started = time.time()
    hot = paired("1 hot org", lambda c, i: raw_consume(c, hot_raw.pk), service([hot_service]))
    many = paired(
        f"{MANY} orgs", lambda c, i: raw_consume(c, random.choice(many_raw).pk), service(many_service)
    )

    reads = {
        "GET /credits": lambda _c, i: credit_summary_get(organization=reader),
        "GET /usage": lambda _c, i: usage_summary_get(organization=reader, now=timezone.now()),
        # As the views call them: by the organization's id (each reads the organization fresh
        # where it needs more than the id, in its own statement).
        "GET /subscription": lambda _c, i: subscription_summary_get(organization=reader),
    }
    settled = [settle()]
    # Each read ROUNDS times, the paths taking turns; the round with the median p99 is shown (a
    # round is 2,000 calls in a fraction of a second: one pause of this process, a checkpoint,
    # moves its p99 by milliseconds), every round's p99 is printed below.
    read_rounds: dict[str, list[Figures]] = {name: [] for name in reads}
    for _ in range(ROUNDS):
        for name, op in reads.items():
            read_rounds[name].append(
                measure(f"{name} service", lambda: None, op, client_is_this_process=False)
            )
    service_reads = {
        name: sorted(rounds, key=lambda f: f.latencies_ms["p99"])[len(rounds) // 2]
        for name, rounds in read_rounds.items()
    }
    # The same reads as the product's server calls them: 2 processes x 4 threads (one
    # interpreter lock per 4 clients, not per 8), ROUNDS times, the median-p99 round.
    forked_rounds: dict[str, list[Figures]] = {name: [] for name in reads}
    for _ in range(ROUNDS):
        for name, op in reads.items():
            forked_rounds[name].append(measure_in_processes(f"{name} service, 2 x 4", op))
    forked_reads = {
        name: sorted(rounds, key=lambda f: f.latencies_ms["p99"])[len(rounds) // 2]
        for name, rounds in forked_rounds.items()
    }

    with gunicorn_server() as server:
        wrk("warm-up", server, many_targets, 2, "consume", "/credits/consume")
        hot_api = wrk(
            "consume HTTP, 1 hot org", server, hot_targets, HTTP_SECONDS, "consume", "/credits/consume"
        )
        many_api = wrk(
            f"consume HTTP, {MANY} orgs",
            server,
            many_targets,
            HTTP_SECONDS,
            "consume",
            "/credits/consume",
        )
        track_api = wrk(
            "track HTTP (SMS_SENT, 1 credit), 50 orgs", server, usage_targets, HTTP_SECONDS, "track",
            "/usage/track", BENCH_METRIC="SMS_SENT",
        )  # fmt: skip
        events_api = wrk(
            "events HTTP, 100 per call, 50 orgs", server, usage_targets, HTTP_SECONDS, "events",
            "/usage/events", BENCH_EVENTS="100",
        )  # fmt: skip
        settled.append(settle())
        http_reads = {}
        for name, suffix in (
            ("GET /credits", "/credits"),
            ("GET /usage", "/usage"),
            ("GET /subscription", "/subscription"),
        ):
            # As the consumptions: a short warm-up first (each thread's first call of a path
            # prepares its statements and fills the catalogue cache).
            wrk("warm-up", server, reader_targets, 2, "get", suffix)
            http_reads[name] = wrk(f"{name} HTTP", server, reader_targets, READ_SECONDS, "get", suffix)
        description = server.description
    # What two of the settings cost, on the same load: each alone, on a server of its own.
    variants = []
    for label, setting in (
        ("no key cache", {"API_KEY_CACHE_SECONDS": "0"}),
        ("no health check", {"CONN_HEALTH_CHECKS": "false"}),
        # The throttles counting every call in Redis (a round trip per call), as before the leases.
        ("throttle/call", {"THROTTLE_LEASE_FRACTION": "0"}),
    ):
        with gunicorn_server(**setting) as variant:
            wrk("warm-up", variant, many_targets, 2, "consume", "/credits/consume")
            variants.append(
                wrk(f"consume HTTP, {MANY} orgs, {label}", variant, many_targets, HTTP_SECONDS, "consume",
                    "/credits/consume")
            )  # fmt: skip
    load_after = os.getloadavg()
    stolen = getattr(psutil.cpu_times(), "steal", 0.0) - steal_before

    print()
    when = dt.datetime.fromtimestamp(started, dt.UTC)
    print(
        f"Hot paths, {when:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, load average (1 min) "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after. {CLIENTS} concurrent clients everywhere; "
        f"raw SQL and service: {OPS} calls per client, median of {ROUNDS} rounds; HTTP: wrk for "
        f"{HTTP_SECONDS} s (reads {READ_SECONDS} s) against {description}. Before the reads, the "
        f"writes settled in {settled[0]:.1f} s and {settled[1]:.1f} s. CPU time stolen by the "
        f"hypervisor meanwhile (steal, all cores): {stolen:.1f} s in {time.time() - started:.0f} s."
    )
    print()
    print(
        f"| {'path':<40} | {'calls':>7} | {'calls/s':>9} | {'p50 ms':>7} | {'p99 ms':>7} "
        f"| {'server CPU':>10} | {'client CPU':>10} | {'CPU share':>10} |"
    )
    print(f"|{'-' * 42}|{'-' * 9}|{'-' * 11}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 12}|{'-' * 12}|")
    lines = [hot[0], hot[1], hot_api, many[0], many[1], many_api, *variants, track_api]
    for figures in lines:
        print(row(figures))
    print(row(events_api))
    for name in reads:
        print(row(service_reads[name]))
        print(row(forked_reads[name]))
        print(row(http_reads[name]))
    print()
    print(f"events HTTP: {100 * events_api.rate:.0f} events/s")
    for name in reads:
        for label, rounds in (("8 threads", read_rounds[name]), ("2 x 4", forked_rounds[name])):
            p99s = ", ".join(f"{f.latencies_ms['p99']:.2f}" for f in rounds)
            print(f"{name} service ({label}), p99 of each round: {p99s} ms")
    for label, (raw, svc, ratios), api in (("1 hot org", hot, hot_api), (f"{MANY} orgs", many, many_api)):
        print(
            f"consume, {label}: service/raw {statistics.median(ratios):.2f}x "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}), HTTP/raw {api.rate / raw.rate:.2f}x, "
            f"HTTP/service {api.rate / svc.rate:.2f}x"
        )
    print(
        "server CPU: gunicorn's CPU ms per call (PostgreSQL's and Redis's not included); client CPU: "
        "wrk's CPU seconds / the run's wall seconds (cores); CPU share: wrk's share of all the CPU time "
        "the machine used during the run"
    )
    notes = [
        n
        for f in [hot_api, many_api, *variants, track_api, events_api, *http_reads.values()]
        for n in f.notes
    ]
    for note in notes:
        print(note)
    assert not notes, notes
    raw_ids = {str(org.pk) for org in [hot_raw, *many_raw]}
    drifts = [d for d in ledger_drift_list().drifts if str(d.organization_id) not in raw_ids]
    assert not drifts, drifts
