"""Real processes for integration tests: a Celery worker, a web server, each on the test database."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from django.conf import settings
from django.db import connection

BASE_DIR = Path(settings.BASE_DIR)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url(name: str | None = None) -> str:
    """A DATABASE_URL for the database this test session uses (the test database)."""
    d = connection.settings_dict
    user = quote(d.get("USER") or "", safe="")
    password = quote(d.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    name = name or d["NAME"]
    socket_host = (d.get("OPTIONS") or {}).get("host")
    if socket_host:
        return f"postgres://{auth}/{name}?host={quote(socket_host)}"
    host = d.get("HOST") or "127.0.0.1"
    port = f":{d['PORT']}" if d.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{name}"


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url()
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def celery_worker(
    *, concurrency: int = 1, log_path: Path | None = None, **env: str
) -> Iterator[subprocess.Popen]:
    """A real `celery worker` process on the test database and the test Redis, ready when yielded."""
    from config.celery import app

    name = f"test-{os.getpid()}-{time.monotonic_ns()}@%h"
    log = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-l",
            "INFO",
            "-n",
            name,
            "--concurrency",
            str(concurrency),
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=BASE_DIR,
        env=child_env(**env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def answered() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"celery worker exited with {proc.returncode}")
            replies = app.control.ping(timeout=0.5)
            return any(name.split("@")[0] in key for reply in replies for key in reply)

        wait_until(answered, timeout=60, what="the celery worker to answer a ping")
        yield proc
    finally:
        stop_process(proc)
        if log_path:
            log.close()


@contextlib.contextmanager
def stripe_emulator_server(tmp_path: Path) -> Iterator[str]:
    """`python -m stripe_emulator` as a real server on a free port; yields its base URL.
    While inside, stripe-python in this process talks to it over HTTP."""
    import requests
    import stripe

    # `--port 0`: the server binds a free port itself and names it on its first line (a port
    # picked here could be taken by another process before the server binds it).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "--port",
            "0",
            "--state",
            str(tmp_path / "stripe.json"),
        ],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    # Read everything it prints (its pipe never fills), keeping the lines for an error message.
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def listening() -> bool:
        if any("listening on http://" in line for line in lines):
            return True
        if proc.poll() is not None:
            raise RuntimeError(f"the Stripe emulator server exited with {proc.returncode}: {''.join(lines)}")
        return False

    try:
        wait_until(listening, timeout=90, what="the Stripe emulator server to listen")
    except BaseException:
        stop_process(proc)
        raise
    url = re.search(r"listening on (http://\S+)", "".join(lines)).group(1).rstrip("/")

    def up() -> bool:
        try:
            return requests.get(f"{url}/_emulator/faults", timeout=5).status_code == 200
        except requests.RequestException:  # too slow to answer (a loaded machine)
            if proc.poll() is not None:
                raise RuntimeError(f"the Stripe emulator server exited with {proc.returncode}") from None
            return False

    saved = stripe.api_base, stripe.default_http_client
    try:
        wait_until(up, timeout=90, what="the Stripe emulator server")
        stripe.api_base, stripe.default_http_client = url, stripe.RequestsClient()
        yield url
    finally:
        stripe.api_base, stripe.default_http_client = saved
        stop_process(proc)
