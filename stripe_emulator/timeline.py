"""Time passing: test clocks (`test_helpers.test_clock`) and the scheduler that moves
subscriptions, invoices and Checkout Sessions along when their time comes.

Whose time it is (`Emulator.now_for`): a customer on a test clock lives at the clock's frozen time;
any other customer at the emulator's clock plus its own time shift (zero unless someone advanced
that one customer). Objects follow their customer. Moving a clock forward runs, in time order,
everything that falls due on the way, each at its own moment (events carry that time in `created`):

- three days before a trial ends: `customer.subscription.trial_will_end`;
- a period ends: cancel (`cancel_at_period_end`, `cancel_at`), or end the trial, or renew: a new
  invoice (licensed prices for the period ahead, metered usage of the period behind) charged to
  the default payment method, `invoice.paid`, `customer.subscription.updated`;
- a renewal payment fails: the subscription goes `past_due`, and the invoice is retried
  `retry_days` after each failure (default 3, 5, 7: on days 3, 8 and 15), then the final action
  runs (`cancel` by default, or `unpaid`, or `past_due` to leave it); `emu.settings(...)`;
- an `incomplete` subscription is 23 hours old: `incomplete_expired`, its invoice voided;
- a bank debit settles a minute after it was confirmed (`payment_intent.succeeded` or
  `payment_failed`, and for Checkout `checkout.session.async_payment_succeeded` / `_failed`);
- a Checkout Session's `expires_at` passes: `checkout.session.expired`.

Three ways to move time: a test clock (`POST /v1/test_helpers/test_clocks/{id}/advance`), one
customer without a test clock (its time shift), or the emulator's clock for everyone without a
test clock. `run_due` runs what real time has made due (the server calls it every second).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import balance, customers, invoicing, objects, subscriptions
from .clock import add_interval
from .errors import InvalidRequestError, StripeError, invalid

if TYPE_CHECKING:
    from .app import Context

log = logging.getLogger("stripe_emulator")
Obj = dict[str, Any]
TRIAL_WILL_END = 3 * 86400
INCOMPLETE_EXPIRES = 23 * 3600
MAX_STEPS = 100_000
RANK = {
    "trial_will_end": 0,
    "expire_incomplete": 1,
    "period_end": 2,
    "finalize": 3,
    "retry": 4,
    "settle": 5,
    "checkout_expire": 6,
    "payout": 7,
    "payout_paid": 8,
}


@dataclass(order=True)
class Happening:
    at: int  # in the frame's time
    rank: int
    seq: int
    kind: str = field(compare=False)
    object_id: str = field(compare=False)


# ---------------------------------------------------------------------- frames: whose time moves
class Frame:
    """A group of customers whose time moves together."""

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def customers(self) -> dict[str, Obj]:
        raise NotImplementedError

    def offset(self, customer: Obj | None) -> int:
        """Frame time = the customer's time - offset."""
        return 0

    def now(self) -> int:
        raise NotImplementedError

    def move_to(self, t: int) -> None:
        raise NotImplementedError

    includes_customerless = False


class TestClockFrame(Frame):
    def __init__(self, ctx: Context, clock: Obj):
        super().__init__(ctx)
        self.clock = clock

    def customers(self) -> dict[str, Obj]:
        return {c["id"]: c for c in self.ctx.store.all("customer") if c.get("test_clock") == self.clock["id"]}

    def now(self) -> int:
        return int(self.clock["frozen_time"])

    def move_to(self, t: int) -> None:
        self.clock["frozen_time"] = max(int(t), int(self.clock["frozen_time"]))


class CustomerFrame(Frame):
    """One customer without a test clock: its own time shift moves."""

    def __init__(self, ctx: Context, customer: Obj):
        super().__init__(ctx)
        self.customer = customer
        self.base = ctx.emulator.clock.now()  # real time passing during the advance is not counted

    def customers(self) -> dict[str, Obj]:
        return {self.customer["id"]: self.customer}

    def now(self) -> int:
        return self.base + int(self.customer.get("_time_shift", 0))

    def move_to(self, t: int) -> None:
        if int(t) > self.now():
            self.customer["_time_shift"] = int(t) - self.base


class EmulatorFrame(Frame):
    """Everyone without a test clock: the emulator's clock moves."""

    includes_customerless = True

    def customers(self) -> dict[str, Obj]:
        return {c["id"]: c for c in self.ctx.store.all("customer") if not c.get("test_clock")}

    def offset(self, customer: Obj | None) -> int:
        return int((customer or {}).get("_time_shift", 0))

    def now(self) -> int:
        return self.ctx.emulator.clock.now()

    def move_to(self, t: int) -> None:
        delta = int(t) - self.now()
        if delta > 0:
            self.ctx.emulator.clock.advance(delta)


# ---------------------------------------------------------------------- what falls due
def happenings(ctx: Context, frame: Frame, seen: set[tuple[str, str, int]]) -> list[Happening]:
    customers = frame.customers()
    out: list[Happening] = []

    def add(kind: str, obj: Obj, at: int, customer: Obj | None) -> None:
        t = int(at) - frame.offset(customer)
        if (kind, obj["id"], t) not in seen:
            out.append(Happening(t, RANK[kind], obj["_seq"], kind, obj["id"]))

    for sub in ctx.store.all("subscription"):
        customer = customers.get(sub["customer"])
        if customer is None:
            continue
        status = sub["status"]
        if status in ("canceled", "incomplete_expired", "paused"):
            continue
        if status == "incomplete":
            add("expire_incomplete", sub, sub["created"] + INCOMPLETE_EXPIRES, customer)
            continue
        if status == "trialing" and sub["trial_end"] and not sub.get("_trial_will_end_sent"):
            start = sub["trial_start"] or sub["created"]
            add("trial_will_end", sub, max(sub["trial_end"] - TRIAL_WILL_END, start), customer)
        _, end = invoicing.period_of(ctx, sub)
        if sub["cancel_at"] and sub["cancel_at"] < end:
            end = sub["cancel_at"]
        add("period_end", sub, end, customer)
    for inv in ctx.store.all("invoice"):
        customer = customers.get(inv["customer"])
        if customer is not None and inv["status"] == "draft" and inv.get("automatically_finalizes_at"):
            add("finalize", inv, inv["automatically_finalizes_at"], customer)
        if (
            customer is not None
            and inv["status"] == "open"
            and inv["next_payment_attempt"]
            and inv["collection_method"] == "charge_automatically"
        ):
            add("retry", inv, inv["next_payment_attempt"], customer)
    clock_id = frame.clock["id"] if isinstance(frame, TestClockFrame) else None
    if isinstance(frame, TestClockFrame | EmulatorFrame):
        at = balance.next_payout_at(ctx, clock_id)
        if at is not None:
            add("payout", {"id": f"payouts:{clock_id or ''}", "_seq": 0}, at, None)
        for payout in ctx.store.all("payout"):
            if payout.get("_clock") == clock_id and payout["status"] == "pending":
                add("payout_paid", payout, payout["arrival_date"], None)
    for pi in ctx.store.all("payment_intent"):
        if pi["status"] != "processing" or not pi.get("_settle_at"):
            continue
        customer = customers.get(pi["customer"]) if pi["customer"] else None
        if customer is None and not (frame.includes_customerless and not pi["customer"]):
            continue
        add("settle", pi, pi["_settle_at"], customer)
    for session in ctx.store.all("checkout_session"):
        if session["status"] != "open":
            continue
        customer = customers.get(session["customer"]) if session["customer"] else None
        if customer is None and not (frame.includes_customerless and not session["customer"]):
            continue
        add("checkout_expire", session, session["expires_at"], customer)
    return out


def run(ctx: Context, frame: Frame, target: int) -> int:
    """Runs everything due up to `target` (frame time) in time order, then leaves the frame at
    `target`. Returns how many happenings ran."""
    seen: set[tuple[str, str, int]] = set()
    steps = 0
    while steps < MAX_STEPS:
        due = [h for h in happenings(ctx, frame, seen) if h.at <= target]
        if not due:
            break
        happening = min(due)
        seen.add((happening.kind, happening.object_id, happening.at))
        if happening.at > frame.now():
            frame.move_to(happening.at)
        _run_one(ctx, happening)
        steps += 1
    if target > frame.now():
        frame.move_to(target)
    return steps


def _run_one(ctx: Context, happening: Happening) -> None:
    try:
        if happening.kind in ("trial_will_end", "period_end", "expire_incomplete"):
            sub = ctx.store.get("subscription", happening.object_id)
            if sub is None:
                return
            if happening.kind == "trial_will_end":
                sub["_trial_will_end_sent"] = True
                ctx.emit("customer.subscription.trial_will_end", sub)
            elif happening.kind == "period_end":
                subscriptions.renew_subscription(ctx, sub)
            else:
                expire_incomplete(ctx, sub)
        elif happening.kind == "finalize":
            inv = ctx.store.get("invoice", happening.object_id)
            if inv is not None and inv["status"] == "draft":
                subscriptions.finalize_and_collect(ctx, inv)
        elif happening.kind == "retry":
            inv = ctx.store.get("invoice", happening.object_id)
            if inv is not None and inv["status"] == "open":
                invoicing.retry_invoice_payment(ctx, inv)
        elif happening.kind == "settle":
            from .payments import settle_bank_debit

            pi = ctx.store.get("payment_intent", happening.object_id)
            if pi is not None:
                settle_bank_debit(ctx, pi)
        elif happening.kind == "payout":
            clock_id = happening.object_id.split(":", 1)[1] or None
            balance.pay_out(ctx, clock_id, happening.at)
        elif happening.kind == "payout_paid":
            payout = ctx.store.get("payout", happening.object_id)
            if payout is not None:
                balance.payout_arrived(ctx, payout)
        elif happening.kind == "checkout_expire":
            from .checkout import expire_session

            session = ctx.store.get("checkout_session", happening.object_id)
            if session is not None and session["status"] == "open":
                expire_session(ctx, session)
    except StripeError as error:  # e.g. a renewal nobody can pay: logged, time goes on
        log.warning("stripe emulator: %s %s: %s", happening.kind, happening.object_id, error.message)


def expire_incomplete(ctx: Context, sub: Obj) -> None:
    """23 hours without a first payment: `incomplete_expired`, the first invoice voided."""
    now = ctx.now(sub)
    inv = ctx.store.get("invoice", sub["latest_invoice"])
    if inv is not None and inv["status"] in ("open", "uncollectible"):
        invoicing.void_invoice(ctx, inv)
    before = {"status": sub["status"], "canceled_at": sub["canceled_at"], "ended_at": sub["ended_at"]}
    sub["status"] = "incomplete_expired"
    sub["canceled_at"] = sub["canceled_at"] or now
    sub["ended_at"] = now
    ctx.emit("customer.subscription.updated", sub, before)


# ---------------------------------------------------------------------- the ways time moves
def advance_test_clock(ctx: Context, clock: Obj, frozen_time: int) -> Obj:
    """Moves a test clock forward; emits `test_helpers.test_clock.advancing`, everything due on the
    way, then `test_helpers.test_clock.ready`. Returns the clock as it was while advancing."""
    if frozen_time <= clock["frozen_time"]:
        raise invalid(
            "frozen_time",
            f"The frozen_time must be after the test clock's current frozen_time ({clock['frozen_time']}).",
            "parameter_invalid_integer",
        )
    clock["status"] = "advancing"
    clock["status_details"] = {"advancing": {"target_frozen_time": frozen_time}}
    ctx.emit("test_helpers.test_clock.advancing", clock)
    snapshot = ctx.render(clock)
    try:
        run(ctx, TestClockFrame(ctx, clock), frozen_time)
    except Exception:  # an emulator bug: say so on the clock, as Stripe's internal_failure does
        clock["status"] = "internal_failure"
        ctx.emit("test_helpers.test_clock.internal_failure", clock)
        raise
    clock["frozen_time"] = frozen_time
    clock["status"] = "ready"
    clock["status_details"] = {}
    ctx.emit("test_helpers.test_clock.ready", clock)
    return snapshot


INTERVAL_SECONDS = {"day": 86400, "week": 7 * 86400, "month": 31 * 86400, "year": 366 * 86400}


def advance_limit(ctx: Context, clock: Obj) -> int | None:
    """How far the API may move a test clock in one step, as in Stripe: two intervals of the
    shortest recurring price among the clock's live subscriptions (None: no subscription)."""
    customers = {c["id"] for c in ctx.store.all("customer") if c.get("test_clock") == clock["id"]}
    shortest: tuple[int, str, int] | None = None
    for sub in ctx.store.all("subscription"):
        if sub["customer"] not in customers or sub["status"] in ("canceled", "incomplete_expired"):
            continue
        for item in invoicing.items_of(ctx, sub):
            recurring = invoicing.price_of(ctx, item)["recurring"] or {}
            if not recurring:
                continue
            length = INTERVAL_SECONDS[recurring["interval"]] * recurring["interval_count"]
            if shortest is None or length < shortest[0]:
                shortest = (length, recurring["interval"], recurring["interval_count"])
    if shortest is None:
        return None
    return add_interval(int(clock["frozen_time"]), shortest[1], 2 * shortest[2])


def check_advance(ctx: Context, clock: Obj, frozen_time: int) -> None:
    limit = advance_limit(ctx, clock)
    if limit is not None and frozen_time > limit:
        raise invalid(
            "frozen_time",
            "Cannot advance a test clock more than two intervals of its shortest subscription interval at a "
            f"time: the furthest frozen_time now is {limit}.",
            "parameter_invalid_integer",
        )


def advance_customer(ctx: Context, customer: Obj, seconds: int) -> None:
    if customer.get("test_clock"):
        clock = ctx.store.require("test_clock", customer["test_clock"])
        advance_test_clock(ctx, clock, int(clock["frozen_time"]) + seconds)
        return
    frame = CustomerFrame(ctx, customer)
    run(ctx, frame, frame.now() + seconds)


def advance_everyone(ctx: Context, seconds: int, *, test_clocks: bool = True) -> None:
    """The emulator's clock moves `seconds` ahead (and, with `test_clocks`, every test clock)."""
    frame = EmulatorFrame(ctx)
    run(ctx, frame, frame.now() + seconds)
    if test_clocks:
        for clock in list(ctx.store.all("test_clock")):
            advance_test_clock(ctx, clock, int(clock["frozen_time"]) + seconds)


def run_due(ctx: Context) -> int:
    """What real time has made due for everyone without a test clock (nothing moves)."""
    frame = EmulatorFrame(ctx)
    return run(ctx, frame, frame.now())


def new_test_clock(ctx: Context, frozen_time: int, name: str | None) -> Obj:
    clock = objects.test_clock(ctx.store.new_id("test_clock", 24), ctx.now(), frozen_time, name)
    ctx.store.add("test_clock", clock)
    ctx.emit("test_helpers.test_clock.created", clock)
    return clock


def delete_test_clock(ctx: Context, clock: Obj) -> Obj:
    """Deletes the clock and, as Stripe does, every customer attached to it."""
    for customer in [c for c in ctx.store.all("customer") if c.get("test_clock") == clock["id"]]:
        customers.delete_customer(ctx, customer)
    snapshot = ctx.render(clock)
    ctx.store.remove("test_clock", clock["id"])
    ctx.emit("test_helpers.test_clock.deleted", snapshot)
    return {"id": clock["id"], "object": "test_helpers.test_clock", "deleted": True}


def require_clock_param(ctx: Context, clock_id: str) -> Obj:
    clock = ctx.store.get("test_clock", clock_id)
    if clock is None:
        raise InvalidRequestError(
            f"No such test_helpers.test_clock: '{clock_id}'", code="resource_missing", param="test_clock"
        )
    return clock
