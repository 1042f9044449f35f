"""Drift checks that apps above the ledger add to `manage.py reconcile`.

The command lives in the credits app; the usage app, above it, registers its checks here when
it loads (`AppConfig.ready`), so the command runs them without importing upwards.
A check is `fn(*, organization_ids) -> list[str]` (one line per drift)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class DriftCheck:
    name: str
    run: Callable[..., list[str]]
    stripe: bool  # needs Stripe (skipped with --no-stripe)


_checks: dict[str, DriftCheck] = {}


def register(name: str, run: Callable[..., list[str]], *, stripe: bool) -> None:
    _checks[name] = DriftCheck(name, run, stripe)


def registered(*, stripe: bool) -> list[DriftCheck]:
    return [check for check in _checks.values() if stripe or not check.stripe]
