"""`make soak`: mixed load for SOAK_MINUTES (default 30) on a real `make run` stack, with Redis
restarted and a Celery worker process killed midway; then reconcile, exactly-once checks and
memory figures.

    SOAK_MINUTES=30 PORT=8102 STRIPE_EMULATOR_PORT=12202 make soak

What it does:
- starts `make run` (gunicorn + Celery worker + beat + the Stripe emulator on embedded
  PostgreSQL/Redis) in its own process group, waits for /healthz;
- creates its organizations through the services (`manage.py shell`): three with API keys,
  cards and credits (one with auto-refill), two subscribed to Business on Stripe test clocks;
- runs a few client threads over HTTP: consumes (some replayed with the same key), usage
  batches, pack purchases (some replayed), platform grants, reads; and a renewal thread that
  moves a test clock a month on (invoice, payment, webhooks, period credits). A client retries
  a request that answered 5xx/429 or failed to connect, with the same idempotency key, as a
  client of a billing API must;
- at 40% of the time stops Redis for 5 s and starts it again on the same port (its snapshot
  kept); at 60% kills one Celery pool process with SIGKILL (the worker replaces it; the task it
  held is delivered again);
- samples the RSS of the web and worker process trees every 15 s;
- at the end waits for the queues to drain, runs `manage.py reconcile` (ledger + Stripe), and
  compares every effect the clients were told about with what the database holds.

Prints the figures and writes them to .local/soak/report.json; exits 1 if a check failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import psutil
import requests

BASE = Path(__file__).resolve().parents[2]
PY = sys.executable
OUT = BASE / ".local" / "soak"
MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "3"))
PORT = int(os.environ.get("PORT", "8000"))
SITE = f"http://127.0.0.1:{PORT}"


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- the stack
class Stack:
    def __init__(self):
        OUT.mkdir(parents=True, exist_ok=True)
        self.log = open(OUT / "make-run.log", "w")  # noqa: SIM115
        env = {**os.environ, "PORT": str(PORT)}
        self.proc = subprocess.Popen(
            [PY, "-m", "config.devstack", "run"],
            cwd=BASE,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.redis: subprocess.Popen | None = None  # the Redis this script restarted, if any
        self.env: dict[str, str] = {}

    def wait_ready(self, timeout: float = 1200) -> None:
        deadline = time.monotonic() + timeout
        stack_file = BASE / ".local" / "stack.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"make run exited with {self.proc.returncode}; see {OUT / 'make-run.log'}")
            with contextlib.suppress(Exception):
                data = json.loads(stack_file.read_text())
                if data.get("pid") and requests.get(f"{SITE}/healthz", timeout=3).status_code == 200:
                    self.env = {k: str(v) for k, v in data["env"].items()}
                    return
            time.sleep(2)
        raise RuntimeError("make run did not become healthy")

    def manage_shell(self, script: Path, **extra: str) -> str:
        env = {**os.environ, **self.env, "DJANGO_SETTINGS_MODULE": "config.settings", **extra}
        done = subprocess.run(
            [PY, "manage.py", "shell", "-c", script.read_text()],
            cwd=BASE,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise RuntimeError(f"{script.name} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
        return subprocess.run(
            [PY, "manage.py", *args], cwd=BASE, env=env, capture_output=True, text=True, check=False
        )

    def tree(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.NoSuchProcess):
            return psutil.Process(self.proc.pid).children(recursive=True)
        return []

    def group(self, kind: str) -> list[psutil.Process]:
        found = []
        for p in self.tree():
            with contextlib.suppress(psutil.Error):
                cmd = " ".join(p.cmdline())
                matches = {
                    "web": "gunicorn" in cmd,
                    "worker": "celery" in cmd and " worker" in cmd,
                    "redis": "redis-server" in p.name() + cmd,
                }
                if matches[kind]:
                    found.append(p)
        return found

    def rss_mb(self, kind: str) -> float:
        total = 0
        for p in self.group(kind):
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total / 2**20

    def restart_redis(self, down_seconds: float = 5) -> float:
        (redis,) = self.group("redis")[:1] or [None]
        if redis is None:
            raise RuntimeError("no embedded Redis under make run")
        # redis-server rewrites its process title, so its arguments are those of
        # config.devstack.EmbeddedRedis (persisting, as for `make run`), on the same port.
        port = int(self.env["REDIS_URL"].rsplit(":", 1)[1].split("/", 1)[0])
        workdir = BASE / ".local" / "redis"
        cmdline = [
            redis.exe(),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
            "--appendonly",
            "no",
            "--logfile",
            str(workdir / "redis.log"),
            "--save",
            "60 1",
            "--dbfilename",
            "dump.rdb",
        ]
        started = time.monotonic()
        redis.send_signal(signal.SIGTERM)  # saves its snapshot, as a restart in production would
        while port_open(port):  # (its parent, make run, reaps it only at the end: poll the port)
            time.sleep(0.1)
        time.sleep(down_seconds)
        self.redis = subprocess.Popen(cmdline, stdin=subprocess.DEVNULL, start_new_session=True)
        while not port_open(port):
            time.sleep(0.1)
        return time.monotonic() - started

    def kill_worker_process(self) -> int:
        """SIGKILL one prefork pool process of the Celery worker (the worker starts another)."""
        workers = self.group("worker")
        children = [p for p in workers if p.ppid() in {w.pid for w in workers}]
        victim = children[0] if children else workers[-1]
        victim.send_signal(signal.SIGKILL)
        return victim.pid

    def queue_length(self) -> int:
        import redis as redis_lib

        with contextlib.suppress(Exception):
            return int(redis_lib.Redis.from_url(self.env["REDIS_URL"]).llen("celery"))
        return -1

    def webhooks_pending(self) -> int:
        with contextlib.suppress(Exception):
            answer = requests.get(f"{self.env['STRIPE_API_HOST']}/_emulator/webhooks", timeout=60).json()
            deliveries = answer.get("deliveries", []) if isinstance(answer, dict) else answer
            return sum(1 for d in deliveries if d.get("status") in ("pending", "sending"))
        return -1

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGTERM)
            self.redis.wait(30)
        self.log.close()


# --------------------------------------------------------------------------- the clients
class Book:
    """What the clients were told: every effect acknowledged, by organization and key."""

    def __init__(self):
        self.lock = threading.Lock()
        self.consumed = defaultdict(dict)  # org -> key -> amount
        self.granted = defaultdict(dict)
        self.bought = defaultdict(set)
        self.usage = defaultdict(dict)  # org -> key -> quantity
        self.renewals = Counter()
        self.status = Counter()
        self.retried = Counter()
        self.latency = defaultdict(list)
        self.replays_ok = 0
        self.gave_up = Counter()


def call(session, book: Book, op: str, method: str, url: str, body=None, headers=None, tries: int = 40):
    """One logical request; retried with the same body (and so the same idempotency key) on a
    5xx, a 429 or a connection failure, with a capped backoff."""
    delay = 0.2
    for attempt in range(tries):
        started = time.monotonic()
        try:
            response = session.request(method, url, json=body, headers=headers, timeout=30)
        except requests.RequestException:
            status = "conn"
            response = None
        else:
            status = response.status_code
        with book.lock:
            book.latency[op].append(time.monotonic() - started)
            book.status[(op, status)] += 1
        if response is not None and status < 500 and status != 429:
            if attempt:
                with book.lock:
                    book.retried[op] += 1
            return response
        time.sleep(delay + random.random() * delay)
        delay = min(delay * 2, 5)
    with book.lock:
        book.gave_up[op] += 1
    return None


def client(n: int, setup: dict, book: Book, stop_at: float) -> None:
    rng = random.Random(n)
    session = requests.Session()
    orgs, clocks = setup["orgs"], setup["clocks"]
    platform = {"Authorization": f"Bearer {setup['platform_key']}"}
    sent_consumes: list[tuple[str, str, str, dict]] = []
    sent_buys: list[tuple[str, dict, dict]] = []
    while time.monotonic() < stop_at:
        roll = rng.random()
        org = rng.choice(orgs)
        auth = {"Authorization": f"Bearer {org['key']}"}
        base = f"{SITE}/api/v1/organizations/{org['id']}"
        if roll < 0.40:
            if sent_consumes and rng.random() < 0.08:  # a client that did not hear the answer
                org_id, key, amount, headers = rng.choice(sent_consumes)
                body = {"amount": amount, "reason": "soak", "idempotency_key": key}
                r = call(
                    session,
                    book,
                    "consume-replay",
                    "POST",
                    f"{SITE}/api/v1/organizations/{org_id}/credits/consume",
                    body,
                    headers,
                )
                if r is not None and r.status_code == 200:
                    with book.lock:
                        book.replays_ok += int(r.headers.get("Idempotent-Replayed") == "true")
                continue
            key = f"soak-c-{uuid.uuid4().hex}"
            amount = str(Decimal(rng.randint(50, 900)) / 100)
            body = {"amount": amount, "reason": "soak", "idempotency_key": key}
            r = call(session, book, "consume", "POST", f"{base}/credits/consume", body, auth)
            if r is not None and r.status_code == 200:
                with book.lock:
                    book.consumed[org["id"]][key] = Decimal(amount)
                sent_consumes.append((org["id"], key, amount, auth))
        elif roll < 0.62:
            target = rng.choice(orgs + clocks)
            events = [
                {
                    "metric": "SMS_SENT",
                    "quantity": rng.randint(1, 5),
                    "idempotency_key": f"soak-u-{uuid.uuid4().hex}",
                }
                for _ in range(25)
            ]
            url = f"{SITE}/api/v1/organizations/{target['id']}/usage/events"
            r = call(
                session,
                book,
                "usage-batch",
                "POST",
                url,
                {"events": events},
                {"Authorization": f"Bearer {target['key']}"},
            )
            if r is not None and r.status_code in (200, 201, 202):
                rejected = {item["index"] for item in r.json().get("rejected", [])}
                with book.lock:
                    for i, event in enumerate(events):
                        if i not in rejected:
                            book.usage[target["id"]][event["idempotency_key"]] = event["quantity"]
        elif roll < 0.65:  # each purchase makes five webhooks: kept rarer than the rest
            if sent_buys and rng.random() < 0.25:
                url, body, headers = rng.choice(sent_buys)
                call(session, book, "purchase-replay", "POST", url, body, headers)
                continue
            key = f"soak-p-{uuid.uuid4().hex}"
            body = {"pack": setup["pack"], "idempotency_key": key}
            r = call(session, book, "purchase", "POST", f"{base}/credits/purchase", body, auth)
            if r is not None and r.status_code in (200, 201) and r.json().get("status") == "succeeded":
                with book.lock:
                    book.bought[org["id"]].add(key)
                sent_buys.append((f"{base}/credits/purchase", body, auth))
        elif roll < 0.77:
            key = f"soak-g-{uuid.uuid4().hex}"
            amount = str(rng.randint(5, 60))
            body = {"amount": amount, "reason": "soak goodwill", "idempotency_key": key}
            r = call(session, book, "grant", "POST", f"{base}/credits/grant", body, platform)
            if r is not None and r.status_code == 201:
                with book.lock:
                    book.granted[org["id"]][key] = Decimal(amount)
        else:
            call(
                session,
                book,
                "read",
                "GET",
                rng.choice([f"{base}/credits", f"{base}/usage", f"{base}/credits/transactions"]),
                None,
                auth,
            )
        time.sleep(rng.random() * 0.05)


def renewals(setup: dict, book: Book, stack: Stack, stop_at: float, every: float) -> None:
    """Moves a subscribed organization's Stripe test clock a month on, one clock at a time."""
    api = stack.env["STRIPE_API_HOST"]
    key = ("sk_test_" + "x" * 24, "")
    i = 0
    while time.monotonic() + every < stop_at:
        time.sleep(every)
        item = setup["clocks"][i % len(setup["clocks"])]
        i += 1
        with contextlib.suppress(requests.RequestException):
            clock = requests.get(
                f"{api}/v1/test_helpers/test_clocks/{item['clock']}", auth=key, timeout=30
            ).json()
            target = int(clock["frozen_time"]) + 31 * 86400
            answer = requests.post(
                f"{api}/v1/test_helpers/test_clocks/{item['clock']}/advance",
                data={"frozen_time": target},
                auth=key,
                timeout=60,
            )
            if answer.status_code == 200:
                with book.lock:
                    book.renewals[item["id"]] += 1
                log(f"renewal: clock of {item['id'][:8]} moved a month on")


# --------------------------------------------------------------------------- main
def main() -> int:
    run_id = uuid.uuid4().hex[:8]
    log(f"soak {run_id}: {MINUTES:g} minutes, {CLIENTS} clients, make run on port {PORT}")
    stack = Stack()
    report: dict = {"run": run_id, "minutes": MINUTES, "clients": CLIENTS}
    failures: list[str] = []
    try:
        stack.wait_ready()
        log("make run is healthy; creating the soak's organizations")
        out = stack.manage_shell(BASE / "tests" / "soak" / "setup_data.py", SOAK_RUN=run_id)
        setup = json.loads(out.split("SOAK-SETUP ", 1)[1].splitlines()[0])
        book = Book()
        started = time.monotonic()
        stop_at = started + MINUTES * 60
        memory: list[tuple[float, float, float]] = []
        threads = [
            threading.Thread(target=client, args=(n, setup, book, stop_at), daemon=True)
            for n in range(CLIENTS)
        ]
        threads.append(
            threading.Thread(
                target=renewals, args=(setup, book, stack, stop_at, max(MINUTES * 60 / 8, 30)), daemon=True
            )
        )
        for t in threads:
            t.start()
        redis_done = worker_done = False
        while time.monotonic() < stop_at:
            elapsed = time.monotonic() - started
            memory.append((elapsed, stack.rss_mb("web"), stack.rss_mb("worker")))
            if not redis_done and elapsed >= MINUTES * 60 * 0.4:
                redis_done = True
                log("stopping Redis for 5 s")
                report["redis_outage_s"] = round(stack.restart_redis(), 1)
                log(f"Redis back after {report['redis_outage_s']} s")
            if not worker_done and elapsed >= MINUTES * 60 * 0.6:
                worker_done = True
                report["worker_killed_pid"] = stack.kill_worker_process()
                log(f"killed Celery pool process {report['worker_killed_pid']} with SIGKILL")
            time.sleep(15)
        for t in threads:
            t.join(120)
        log("load over; waiting for the queue and the refills to settle")
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and stack.queue_length() not in (0,):
            time.sleep(2)
        deadline = time.monotonic() + 600  # the emulator delivers webhooks one at a time
        while time.monotonic() < deadline and stack.webhooks_pending() > 0:
            time.sleep(5)
        report["webhooks_pending_at_end"] = stack.webhooks_pending()
        time.sleep(20)  # the tasks the last webhooks enqueued
        memory.append((time.monotonic() - started, stack.rss_mb("web"), stack.rss_mb("worker")))

        ids = [o["id"] for o in setup["orgs"]] + [c["id"] for c in setup["clocks"]]
        # Webhooks and tasks settle after the load stops (the emulator delivers renewals'
        # events with its retry schedule; the worker works through its reserved tasks): check
        # again every 20 s until everything agrees, for up to 2 minutes.
        settle_deadline = time.monotonic() + 120
        while True:
            failures = []
            verify = json.loads(
                stack.manage_shell(BASE / "tests" / "soak" / "verify_data.py", SOAK_ORGS=json.dumps(ids))
                .split("SOAK-VERIFY ", 1)[1]
                .splitlines()[0]
            )
            for org_id in ids:
                held = verify[org_id]
                told_consumed = sum(book.consumed[org_id].values(), Decimal(0))
                told_granted = sum(book.granted[org_id].values(), Decimal(0))
                told_usage = sum(book.usage[org_id].values())
                checks = {
                    "consumes": (held["consumes"], len(book.consumed[org_id])),
                    "consumed": (Decimal(held["consumed"]), told_consumed),
                    "grants": (held["grants"], len(book.granted[org_id])),
                    "granted": (Decimal(held["granted"]), told_granted),
                    "packs": (held["packs_succeeded"], len(book.bought[org_id])),
                    "usage events": (held["usage_events"], len(book.usage[org_id])),
                    "usage quantity": (Decimal(held["usage_quantity"]), Decimal(told_usage)),
                    "balance = ledger": (Decimal(held["balance"]), Decimal(held["ledger_sum"])),
                }
                if org_id in [c["id"] for c in setup["clocks"]]:
                    checks["period credits"] = (held["subscription_grants"], 1 + book.renewals[org_id])
                for name, (db_value, told) in checks.items():
                    if db_value != told:
                        failures.append(f"{org_id[:8]} {name}: database {db_value}, clients told {told}")
            if not failures:
                break
            if time.monotonic() > settle_deadline:
                if "failures_before_repair" in report:
                    break
                # What lost or late webhooks left undone: reported, then repaired from Stripe as
                # the hourly catch-up / `reconcile --repair` would, and checked once more.
                report["failures_before_repair"] = failures
                repair = stack.manage("reconcile", "--repair")
                report["repaired"] = [ln for ln in repair.stdout.splitlines() if ln.startswith("repaired")]
                log(f"reconcile --repair: {len(report['repaired'])} repair(s); checking again")
                time.sleep(20)
                continue
            log(f"not settled yet ({len(failures)} difference(s)); checking again in 20 s")
            time.sleep(20)
        report["settled_after_s"] = round(time.monotonic() - started - MINUTES * 60, 1)
        meters = stack.manage_shell(BASE / "tests" / "soak" / "meter_sync.py")
        report["meter_sync"] = json.loads(meters.split("SOAK-METERS ", 1)[1].splitlines()[0])
        log(f"meter sync: {report['meter_sync']}")
        reconcile = stack.manage("reconcile")
        report["reconcile_exit"] = reconcile.returncode
        report["reconcile"] = reconcile.stdout.strip().splitlines()[-12:]
        if reconcile.returncode:
            failures.append("reconcile found drift:\n  " + "\n  ".join(report["reconcile"]))

        total = sum(book.status.values())
        duration = time.monotonic() - started
        by_op = defaultdict(Counter)
        for (op, status), n in book.status.items():
            by_op[op][str(status)] += n
        warm = [m for m in memory if m[0] >= 60] or memory
        quarter = max(1, len(warm) // 4)
        report.update(
            {
                "requests": total,
                "requests_per_s": round(total / duration, 1),
                "by_operation": {op: dict(c) for op, c in sorted(by_op.items())},
                "retried_then_ok": dict(book.retried),
                "gave_up": dict(book.gave_up),
                "latency_ms": {
                    op: {
                        "p50": round(statistics.median(v) * 1000, 1),
                        "p95": round(sorted(v)[int(len(v) * 0.95) - 1] * 1000, 1),
                    }
                    for op, v in sorted(book.latency.items())
                    if v
                },
                "effects_acknowledged": {
                    "consumes": sum(len(v) for v in book.consumed.values()),
                    "grants": sum(len(v) for v in book.granted.values()),
                    "purchases": sum(len(v) for v in book.bought.values()),
                    "usage_events": sum(len(v) for v in book.usage.values()),
                    "replays_answered_as_replays": book.replays_ok,
                    "renewals": sum(book.renewals.values()),
                },
                "auto_refills": verify[setup["orgs"][0]["id"]]["refills"],
                "rss_mb": {
                    "web_first_quarter": round(statistics.mean(m[1] for m in warm[:quarter]), 1),
                    "web_last_quarter": round(statistics.mean(m[1] for m in warm[-quarter:]), 1),
                    "web_max": round(max(m[1] for m in memory), 1),
                    "worker_first_quarter": round(statistics.mean(m[2] for m in warm[:quarter]), 1),
                    "worker_last_quarter": round(statistics.mean(m[2] for m in warm[-quarter:]), 1),
                    "worker_max": round(max(m[2] for m in memory), 1),
                    "samples": len(memory),
                },
                "failures": failures,
            }
        )
        for part in ("web", "worker"):
            first, last = report["rss_mb"][f"{part}_first_quarter"], report["rss_mb"][f"{part}_last_quarter"]
            report["rss_mb"][f"{part}_growth_pct"] = round((last - first) / first * 100, 1) if first else None
        (OUT / "report.json").write_text(json.dumps(report, indent=2, default=str))
        print(json.dumps(report, indent=2, default=str))
    finally:
        stack.stop()
    if failures:
        log("FAILED:\n  " + "\n  ".join(failures))
        return 1
    log(f"passed; report in {OUT / 'report.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
