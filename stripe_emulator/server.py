"""Server mode: the emulator behind a threaded HTTP server, its state in a JSON file (written
atomically, shortly after each change and at shutdown), webhooks sent by a background thread, and
what real time makes due (renewals of customers without a test clock, expiries) run every second."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .app import Emulator

log = logging.getLogger("stripe_emulator")


def save_state(emulator: Emulator, path: Path) -> None:
    with emulator.lock:  # a consistent snapshot: no request changes the state while it is written out
        data = json.dumps(emulator.to_json())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_state(emulator: Emulator, path: Path) -> bool:
    if not path.exists():
        return False
    emulator.load_json(json.loads(path.read_text()))
    return True


class EmulatorServer:
    """`start()` serves in background threads; `stop()` flushes the state and stops them."""

    def __init__(
        self,
        emulator: Emulator,
        host: str = "127.0.0.1",
        port: int = 12111,
        state_path: Path | None = None,
        *,
        webhook_interval: float = 0.25,
        save_delay: float = 0.2,
        tick_interval: float = 1.0,
        verbose: bool = False,
    ):
        self.emulator = emulator
        self.state_path = state_path
        self.webhook_interval = webhook_interval
        self.tick_interval = tick_interval
        self.save_delay = save_delay
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if state_path is not None:
            load_state(emulator, state_path)
            emulator.on_change = self._dirty.set
        self.httpd = ThreadingHTTPServer((host, port), _handler(emulator, verbose))
        self.httpd.daemon_threads = True

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        for target in (self.httpd.serve_forever, self._deliver_loop, self._save_loop, self._tick_loop):
            thread = threading.Thread(target=target, daemon=True, name=f"stripe-emulator-{target.__name__}")
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.flush()

    def flush(self) -> None:
        if self.state_path is not None:
            self._dirty.clear()
            save_state(self.emulator, self.state_path)

    def _save_loop(self) -> None:
        while not self._stop.is_set():
            if self._dirty.wait(0.5) and not self._stop.is_set():
                self._stop.wait(self.save_delay)
                self.flush()

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.tick_interval):
            try:
                self.emulator.tick()
            except Exception:
                log.exception("the scheduler failed")

    def _deliver_loop(self) -> None:
        while not self._stop.wait(self.webhook_interval):
            try:
                for result in self.emulator.deliver_webhooks():
                    log.info(
                        "webhook %s %s -> %s", result.get("type"), result.get("url"), result.get("status")
                    )
            except Exception:
                log.exception("webhook delivery failed")


def _handler(emulator: Emulator, verbose: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "stripe-emulator"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            status, headers, payload = emulator.handle(
                self.command, self.path, dict(self.headers.items()), body
            )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (an injected hang)
                self.close_connection = True

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: object) -> None:
            if verbose:
                log.info("%s - %s", self.address_string(), format % args)

    return Handler
