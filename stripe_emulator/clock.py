"""Emulator time: real time by default, frozen or shifted when a test asks.

Every object's "now" comes from `Emulator.now_for(...)`: the frozen time of the object's test clock
(`test_helpers.test_clock`, see `timeline.py`) when it has one, this clock otherwise.
"""

from __future__ import annotations

import calendar
import threading
import time
from datetime import UTC, datetime


class Clock:
    """Seconds since the epoch. `freeze()` stops it, `advance()` moves it forward."""

    def __init__(self, frozen_at: int | None = None):
        self._lock = threading.Lock()
        self._frozen_at = frozen_at
        self._offset = 0.0

    def now(self) -> int:
        return int(self.now_float())

    def now_float(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return float(self._frozen_at)
            return time.time() + self._offset

    def freeze(self, at: int | None = None) -> None:
        with self._lock:
            self._frozen_at = int(time.time() + self._offset) if at is None else int(at)

    def unfreeze(self) -> None:
        with self._lock:
            if self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
            self._frozen_at = None

    def advance(self, seconds: float) -> int:
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at = int(self._frozen_at + seconds)
            else:
                self._offset += seconds
        return self.now()

    def to_json(self) -> dict[str, float | int | None]:
        """The shift from real time (kept across a server restart, so an advanced demo stays so)."""
        with self._lock:
            return {"frozen_at": self._frozen_at, "offset": self._offset}

    def load_json(self, data: dict) -> None:
        with self._lock:
            self._frozen_at = data.get("frozen_at")
            self._offset = float(data.get("offset") or 0.0)


def add_interval(start: int, interval: str, count: int = 1, *, anchor_day: int | None = None) -> int:
    """`start` plus `count` intervals, the way Stripe bills: months keep the anchor's day of month,
    clamped to the month's last day (Jan 31 -> Feb 28 -> Mar 31)."""
    if interval == "day":
        return start + 86400 * count
    if interval == "week":
        return start + 7 * 86400 * count
    dt = datetime.fromtimestamp(start, UTC)
    months = count * (12 if interval == "year" else 1)
    month_index = dt.month - 1 + months
    year, month = dt.year + month_index // 12, month_index % 12 + 1
    day = min(anchor_day or dt.day, calendar.monthrange(year, month)[1])
    return int(dt.replace(year=year, month=month, day=day).timestamp())


def day_of_month(ts: int) -> int:
    return datetime.fromtimestamp(ts, UTC).day


def format_date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d %b %Y")
