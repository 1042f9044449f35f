"""`python -m stripe_emulator`: the emulator as an HTTP server (see README, "Stripe emulator"),
and commands for a running one.

    python -m stripe_emulator [--host 127.0.0.1] [--port 12111] [--state FILE] ...   # serve
    python -m stripe_emulator advance --days 31 [--customer cus_...] [--test-clock clock_...]
    python -m stripe_emulator time
    python -m stripe_emulator fault --path /v1/payment_intents --status 500 [--times 2]
    python -m stripe_emulator fault --decline insufficient_funds      # the next card payment anywhere

The commands talk to `--url` (default `$STRIPE_EMULATOR_URL`, else http://127.0.0.1:12111).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

COMMANDS = ("serve", "advance", "time", "fault")


def default_url() -> str:
    port = os.environ.get("STRIPE_EMULATOR_PORT", "12111")
    return os.environ.get("STRIPE_EMULATOR_URL") or f"http://127.0.0.1:{port}"


def serve(argv: list[str]) -> int:
    from .app import Emulator
    from .server import EmulatorServer

    parser = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STRIPE_EMULATOR_PORT", "12111")))
    parser.add_argument(
        "--state",
        default=".local/stripe_emulator/state.json",
        help="JSON file the state is kept in across restarts ('' keeps it in memory only)",
    )
    parser.add_argument("--public-url", help="base of hosted page URLs (default http://HOST:PORT)")
    parser.add_argument(
        "--webhook-retry-base", type=float, default=60.0, help="seconds before the first retry"
    )
    parser.add_argument(
        "--webhook-interval", type=float, default=0.25, help="seconds between delivery rounds"
    )
    parser.add_argument(
        "--tick-interval", type=float, default=1.0, help="seconds between runs of what real time made due"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(asctime)s %(message)s"
    )

    public_url = args.public_url or f"http://{args.host}:{args.port}"
    emulator = Emulator(base_url=public_url, seed=args.seed, webhook_retry_base=args.webhook_retry_base)
    state = Path(args.state) if args.state else None
    server = EmulatorServer(
        emulator,
        args.host,
        args.port,
        state,
        webhook_interval=args.webhook_interval,
        tick_interval=args.tick_interval,
        verbose=args.verbose,
    )
    if not args.public_url and args.port == 0:  # `--port 0`: a free port, told on the first line
        emulator.base_url = f"http://{args.host}:{server.port}"
    stopped = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopped.set())
    server.start()
    print(
        f"Stripe emulator listening on http://{args.host}:{server.port} (state: {state or 'memory'})",
        flush=True,
    )
    stopped.wait()
    server.stop()
    return 0


def _call(url: str, method: str, path: str, data: dict | None = None) -> dict:
    if not url.startswith(("http://", "https://")):
        raise SystemExit(f"--url must be an http(s) URL, not {url!r}")
    body = json.dumps(data).encode() if data is not None else None
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked above
        url.rstrip("/") + path, data=body, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 - a local URL we are given
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        raise SystemExit(f"{method} {path}: HTTP {error.code}: {detail}") from None
    except OSError as error:
        raise SystemExit(f"Cannot reach the Stripe emulator at {url} ({error}). Is it running?") from None


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def advance(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_emulator advance",
        description="Move the running emulator's time forward: renewals, trial ends and payment retries "
        "due on the way happen, in order, and their webhooks go out. Without --customer/--test-clock: "
        "everyone (the emulator's clock and every test clock).",
    )
    parser.add_argument("--days", type=float, default=0)
    parser.add_argument("--hours", type=float, default=0)
    parser.add_argument("--seconds", type=float, default=0)
    parser.add_argument("--customer", help="only this customer (its test clock, if it has one)")
    parser.add_argument("--test-clock", help="only this test clock")
    parser.add_argument("--url", default=default_url())
    args = parser.parse_args(argv)
    if not (args.days or args.hours or args.seconds):
        parser.error("say how far: --days, --hours or --seconds")
    payload = {"days": args.days, "hours": args.hours, "seconds": args.seconds}
    if args.customer:
        payload["customer"] = args.customer
    if args.test_clock:
        payload["test_clock"] = args.test_clock
    result = _call(args.url, "POST", "/_emulator/advance", payload)
    counts = Counter(result["events"])
    print(f"Advanced {_date(result['from'])} -> {_date(result['to'])}: {len(result['events'])} events")
    for event_type, count in sorted(counts.items()):
        print(f"  {count:4d}  {event_type}")
    return 0


def show_time(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator time")
    parser.add_argument("--url", default=default_url())
    args = parser.parse_args(argv)
    print(json.dumps(_call(args.url, "GET", "/_emulator/time"), indent=2))
    return 0


def fault(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator fault", description="Inject a fault.")
    parser.add_argument("--method")
    parser.add_argument("--path", help="e.g. /v1/payment_intents or /v1/payment_intents/*/confirm")
    parser.add_argument("--status", type=int)
    parser.add_argument("--retry-after", type=float)
    parser.add_argument("--hang", type=float, help="seconds")
    parser.add_argument("--decline", help="a decline code, e.g. insufficient_funds")
    parser.add_argument("--times", default="1", help="a number, or 'forever'")
    parser.add_argument("--clear", action="store_true", help="remove every fault instead")
    parser.add_argument("--url", default=default_url())
    args = parser.parse_args(argv)
    if args.clear:
        print(json.dumps(_call(args.url, "DELETE", "/_emulator/faults"), indent=2))
        return 0
    payload = {
        key: value
        for key, value in {
            "method": args.method,
            "path": args.path,
            "status": args.status,
            "retry_after": args.retry_after,
            "hang": args.hang,
            "decline": args.decline,
            "times": args.times,
        }.items()
        if value is not None
    }
    print(json.dumps(_call(args.url, "POST", "/_emulator/faults", payload), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else "serve"
    if argv and argv[0] in COMMANDS:
        argv = argv[1:]
    return {"serve": serve, "advance": advance, "time": show_time, "fault": fault}[command](argv)


if __name__ == "__main__":
    sys.exit(main())
