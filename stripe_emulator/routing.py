"""The route table: `@api(method, path, allowed=...)` registers an endpoint handler.

Handlers live in `endpoints/`, one module per section of Stripe's API reference; importing
`stripe_emulator.endpoints` registers them all. `Emulator.handle()` (`app.py`) looks them up here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# Parameters every list endpoint takes besides the cursor ones (`limit`, `starting_after`,
# `ending_before`, added for every GET).
LIST = frozenset({"created"})


@dataclass
class Route:
    method: str
    path: str
    pattern: re.Pattern[str]
    handler: Callable[..., Any]
    allowed: frozenset[str] | None


ROUTES: list[Route] = []


def api(method: str, path: str, allowed: set[str] | frozenset[str] | None = None) -> Callable:
    """Registers a handler for `method path`; `{name}` in the path is passed as a keyword argument.
    `allowed` lists the parameters Stripe accepts there (others answer `parameter_unknown`)."""
    regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"

    def register(handler: Callable) -> Callable:
        ROUTES.append(
            Route(
                method, path, re.compile(regex), handler, frozenset(allowed) if allowed is not None else None
            )
        )
        return handler

    return register
