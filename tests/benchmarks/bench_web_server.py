"""Which gunicorn configuration serves `POST /credits/consume` best on this machine (`make bench`;
figures printed, never asserted). The machine is shared, so the configurations take turns, round
after round, and the table shows each one's median round: a drift in the machine's load touches
them all alike.

BENCH_SERVER_CONFIGS lists them: `gthread:WORKERSxTHREADS` (the product's threaded worker class,
`config.gunicorn_worker.BalancedThreadWorker` unless `+WEB_WORKER_CLASS=gthread` asks for gunicorn's
own), `sync:WORKERS` or `granian:WORKERSxTHREADS` (Granian's WSGI server, when installed)
(default `gthread:2x4,gthread:2x4+WEB_WORKER_CLASS=gthread,sync:4`); BENCH_SERVER_ROUNDS (3),
BENCH_SERVER_SECONDS (6).
BENCH_SERVER_PATH: `consume` (default, across 100 organizations) or a read of one subscribed
organization: `credits`, `usage` or `subscription` (`GET /credits`, ...).
The product's default (config/gunicorn.py) is its balanced gthread worker, 2 x 4.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys

import pytest

from billing.services import api_key_create
from tests.benchmarks.bench_credits import (
    CLIENTS,
    Server,
    _answers,
    ensure_wrk,
    gunicorn_server,
    organizations,
    run_wrk,
)
from tests.processes import BASE_DIR, child_env, free_port, stop_process, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CONFIGS = os.environ.get(
    "BENCH_SERVER_CONFIGS", "gthread:2x4,gthread:2x4+WEB_WORKER_CLASS=gthread,sync:4"
).split(",")
ROUNDS = int(os.environ.get("BENCH_SERVER_ROUNDS", "3"))
SECONDS = int(os.environ.get("BENCH_SERVER_SECONDS", "6"))
ORGS = 100
PATH = os.environ.get("BENCH_SERVER_PATH", "consume")
READS = {"credits": "/credits", "usage": "/usage", "subscription": "/subscription"}


@contextlib.contextmanager
def granian_server(workers: str, threads: str):
    """Granian (Rust, WSGI interface) on the same settings as gunicorn_server, for comparison:
    `granian:WORKERSxTHREADS` (blocking threads per worker); needs `pip install granian`."""
    port = free_port()
    env = child_env(
        THROTTLE_USER="100000000/min", THROTTLE_ANON="100000000/min", DEBUG="false",
        PYTHONWARNINGS="ignore", DB_APPLICATION_NAME="billing-web-bench",
    )  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "granian", "--interface", "wsgi", "--host", "127.0.0.1", "--port", str(port),
         "--workers", workers, "--blocking-threads", threads, "--no-ws", "config.wsgi:application"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(lambda: _answers(port), timeout=60, what="granian")
        yield Server(
            f"http://127.0.0.1:{port}", f"granian wsgi {workers} workers x {threads} threads", proc.pid
        )
    finally:
        stop_process(proc)


def server_for(config: str):
    """`kind:shape`, then optional `+NAME=value` environment settings for gunicorn's processes
    (`gthread:2x4+WEB_THREADS=8`; `+BENCH_CHECKOUT=/path` serves another checkout's code, for an
    A/B comparison of two commits in one run)."""
    config, *settings = config.split("+")
    env = dict(setting.split("=", 1) for setting in settings)
    kind, _, shape = config.partition(":")
    if kind == "granian":
        return granian_server(*shape.partition("x")[::2])
    if kind == "sync":
        return gunicorn_server(["-k", "sync", "--threads", "1"], WEB_CONCURRENCY=shape, **env)
    workers, _, threads = shape.partition("x")
    return gunicorn_server(WEB_CONCURRENCY=workers, WEB_THREADS=threads, **env)


def test_web_server_configurations(catalogue, billing_owner, tmp_path):
    ensure_wrk()
    if PATH == "consume":
        orgs, kind, suffix, title = organizations(ORGS, "srv", 10_000_000), "consume", "/credits/consume", ""
    else:
        from billing.services import organization_create, subscription_create

        reader = organization_create(name="Reader", billing_email="reader@bench.test", owner=billing_owner)
        subscription_create(
            organization=reader, plan="starter", interval="month", payment_method="pm_card_visa"
        )
        orgs, kind, suffix = [reader], "get", READS[PATH]
        title = f"GET {suffix} of one subscribed organization"
    targets = tmp_path / "targets.txt"
    targets.write_text(
        "".join(f"{org.pk} {api_key_create(organization=org, name='bench').raw_key}\n" for org in orgs)
    )
    load_before = os.getloadavg()
    results: dict[str, list] = {config: [] for config in CONFIGS}
    descriptions: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        servers = {config: stack.enter_context(server_for(config)) for config in CONFIGS}
        for config, server in servers.items():
            descriptions[config] = " ".join([server.description, *config.split("+")[1:]])
            run_wrk("warm-up", server.url, targets, 2, kind, suffix)
        for _ in range(ROUNDS):
            for config, server in servers.items():
                results[config].append(run_wrk(config, server.url, targets, SECONDS, kind, suffix))

    print()
    print(
        f"{title or f'POST /credits/consume across {ORGS} organizations'}, wrk with {CLIENTS} connections, "
        f"{SECONDS} s per run, {ROUNDS} rounds taking turns (cores: {os.cpu_count()}, load average "
        f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after)"
    )
    print(f"{'server':<64} {'ops/s (median)':>14} {'rounds':>22} {'p50 ms':>8} {'p99 ms':>8}")
    for config, rounds in results.items():
        rates = [f.rate for f in rounds]
        median = sorted(rounds, key=lambda f: f.rate)[len(rounds) // 2]
        print(
            f"{descriptions[config]:<64} {statistics.median(rates):>14.0f} "
            f"{', '.join(f'{r:.0f}' for r in rates):>22} {median.latencies_ms['p50']:>8.1f} "
            f"{median.latencies_ms['p99']:>8.1f}"
        )
        for figures in rounds:
            assert not figures.notes, figures.notes  # every request answered 2xx
