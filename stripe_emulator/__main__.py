"""`python -m stripe_emulator`: the emulator as an HTTP server (see README, "Stripe emulator")."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from .app import Emulator
from .server import EmulatorServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stripe_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("STRIPE_EMULATOR_PORT", "12111")))
    parser.add_argument(
        "--state",
        default=".local/stripe_emulator/state.json",
        help="JSON file the state is kept in across restarts ('' keeps it in memory only)",
    )
    parser.add_argument("--public-url", help="base of hosted invoice URLs (default http://HOST:PORT)")
    parser.add_argument(
        "--webhook-retry-base", type=float, default=60.0, help="seconds before the first retry"
    )
    parser.add_argument(
        "--webhook-interval", type=float, default=0.25, help="seconds between delivery rounds"
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
        emulator, args.host, args.port, state, webhook_interval=args.webhook_interval, verbose=args.verbose
    )
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


if __name__ == "__main__":
    sys.exit(main())
