"""Bounded exponential backoff with jitter, for everything that waits on a rate limit.

The wait honours the server's `Retry-After` (never shorter), doubles with each attempt, is never
longer than `cap`, and is spread by up to +50% so that many workers limited at the same moment
do not come back at the same moment."""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int, *, retry_after: float | None = None, base: float = 1.0, cap: float = 30.0, rng=random
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first retry)."""
    floor = min(cap, max(retry_after or 0.0, base * (2 ** min(attempt, 30))))
    return min(cap, floor * (1 + rng.random() / 2))
