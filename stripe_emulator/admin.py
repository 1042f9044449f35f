"""The emulator's own admin paths, under `/_emulator/` (no API key; a local tool):

    GET    /_emulator                      a page: the time, buttons to advance it, recent events
    GET    /_emulator/state                the whole state (JSON)
    GET    /_emulator/webhooks             webhook deliveries
    POST   /_emulator/webhooks/deliver     send what is due now (`retry_now=true` sends retries too)
    GET    /_emulator/time                 the emulator's time and every test clock's
    POST   /_emulator/advance              days / hours / seconds (or `to`), optional `customer` or
                                           `test_clock`: runs renewals, trials, retries on the way
    GET    /_emulator/faults               injected faults waiting to fire
    POST   /_emulator/faults               method, path, status, retry_after, hang, processed,
                                           decline, times, message
    POST   /_emulator/faults/webhooks      duplicate, delay_seconds, reorder, times, event_type
    DELETE /_emulator/faults               clear all (`/_emulator/faults/{id}`: one)
    POST   /_emulator/charges/{id}/dispute reason, amount, inquiry
    POST   /_emulator/disputes/{id}/close  outcome=won|lost
    POST   /_emulator/settings             retry_days (e.g. `3,5,7`), final_action
    GET    /_emulator/requests             ?method=&path=&include_replays=: API requests carried out

Bodies are JSON or form-encoded; answers are JSON (303 back to the page for its own forms).
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from .clock import format_date
from .errors import StripeError

if TYPE_CHECKING:
    from .app import Emulator, Response


def _json(status: int, data: Any) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(data, indent=2).encode()


def _fields(body: Any, headers: dict[str, str], query: str) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    data: dict[str, Any] = {k: v[0] for k, v in parse_qs(query or "", keep_blank_values=True).items()}
    body = (body or "").strip()
    if body.startswith("{") or "json" in headers.get("content-type", ""):
        if body:
            data.update(json.loads(body))
    elif body:
        data.update({k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()})
    return data


def _seconds(data: dict[str, Any]) -> int:
    total = 0.0
    for key, factor in (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1)):
        if data.get(key) not in (None, ""):
            total += float(data[key]) * factor
    return int(total)


def handle_admin(
    emu: Emulator, method: str, path: str, query: str, body: Any, headers: dict[str, str]
) -> Response:
    try:
        data = _fields(body, headers, query)
    except (ValueError, json.JSONDecodeError) as exc:
        return _json(400, {"error": {"message": f"Invalid body: {exc}"}})
    from_page = data.pop("_from_page", None)
    try:
        response = _route(emu, method, path, data)
    except StripeError as error:
        return _json(error.status, error.body("req_admin"))
    except (ValueError, TypeError, KeyError) as exc:
        return _json(400, {"error": {"message": str(exc)}})
    if from_page and response[0] < 300:
        return 303, {"Location": "/_emulator", "Content-Type": "text/html"}, b""
    return response


def _route(emu: Emulator, method: str, path: str, data: dict[str, Any]) -> Response:
    path = path.rstrip("/") or "/"
    if path == "/_emulator" and method == "GET":
        return dashboard(emu)
    if path == "/_emulator/state" and method == "GET":
        return _json(200, emu.to_json())
    if path == "/_emulator/webhooks" and method == "GET":
        with emu.lock:
            return _json(200, emu.webhooks.to_json())
    if path == "/_emulator/webhooks/deliver" and method == "POST":
        retry_now = str(data.get("retry_now", "")).lower() in ("1", "true", "yes")
        return _json(200, {"attempted": emu.deliver_webhooks(retry_now=retry_now)})
    if path == "/_emulator/time" and method == "GET":
        return _json(200, emu.time_report())
    if path == "/_emulator/advance" and method == "POST":
        to = data.get("to")
        return _json(
            200,
            emu.advance(
                seconds=_seconds(data),
                to=int(to) if to not in (None, "") else None,
                customer=data.get("customer") or None,
                test_clock=data.get("test_clock") or None,
            ),
        )
    if path == "/_emulator/faults":
        if method == "GET":
            return _json(200, {"faults": emu.faults.active()})
        if method == "POST":
            return _json(200, emu.faults.from_json(data))
        if method == "DELETE":
            emu.faults.clear()
            return _json(200, {"faults": []})
    if path == "/_emulator/faults/webhooks" and method == "POST":
        return _json(200, emu.faults.from_json(data, webhook=True))
    match = re.fullmatch(r"/_emulator/faults/(fault_\d+)", path)
    if match and method == "DELETE":
        return _json(200 if emu.faults.remove(match.group(1)) else 404, {"id": match.group(1)})
    match = re.fullmatch(r"/_emulator/charges/(ch_[A-Za-z0-9]+)/dispute", path)
    if match and method == "POST":
        amount = data.get("amount")
        return _json(
            200,
            emu.create_dispute(
                match.group(1),
                reason=data.get("reason") or "fraudulent",
                amount=int(amount) if amount not in (None, "") else None,
                inquiry=str(data.get("inquiry", "")).lower() in ("1", "true", "yes"),
            ),
        )
    match = re.fullmatch(r"/_emulator/disputes/(dp_[A-Za-z0-9]+)/close", path)
    if match and method == "POST":
        return _json(200, emu.close_dispute(match.group(1), won=data.get("outcome", "won") == "won"))
    if path == "/_emulator/settings" and method == "POST":
        retry = data.get("retry_days")
        if isinstance(retry, str):
            retry = [int(x) for x in retry.split(",") if x.strip()]
        emu.settings(retry_days=retry, final_action=data.get("final_action") or None)
        with emu.lock:
            return _json(200, {k: emu.store.extra.get(k) for k in ("retry_days", "final_action")})
    if path == "/_emulator/requests" and method == "GET":
        count = emu.request_count(
            data.get("method") or None,
            data.get("path") or None,
            include_replays=str(data.get("include_replays", "")).lower() in ("1", "true"),
        )
        return _json(200, {"count": count})
    return _json(404, {"error": {"message": f"No admin path {method} {path}"}})


def dashboard(emu: Emulator) -> Response:
    """A page for a person running `make run`: the time, buttons to move it, what happened."""
    report = emu.time_report()
    e = html.escape
    with emu.lock:
        events = list(reversed(emu.store.all("event")))[:30]
        subs = [s for s in reversed(emu.store.all("subscription")) if s["status"] not in ("canceled",)][:20]
        rows = "".join(
            f"<tr><td>{e(format_date(ev['created']))}</td><td>{e(ev['type'])}</td>"
            f"<td>{e(str(ev['data']['object'].get('id')))}</td></tr>"
            for ev in events
        )
        sub_rows = ""
        for sub in subs:
            from .invoicing import period_of

            _, end = period_of(emu, sub)  # type: ignore[arg-type]
            sub_rows += (
                f"<tr><td>{e(sub['id'])}</td><td>{e(sub['customer'])}</td><td>{e(sub['status'])}</td>"
                f"<td>{e(format_date(end))}</td><td><form method='post' action='/_emulator/advance'>"
                f"<input type='hidden' name='_from_page' value='1'><input type='hidden' name='customer' "
                f"value='{e(sub['customer'])}'><button name='days' value='31'>+31 days for this customer"
                "</button></form></td></tr>"
            )
    buttons = "".join(
        f"<button name='days' value='{d}'>+{label}</button> "
        for d, label in ((1, "1 day"), (7, "7 days"), (31, "31 days"))
    )
    body = (
        "<h1>Stripe emulator</h1>"
        f"<p>Emulator time: <strong>{e(report['now_iso'])}</strong> "
        f"(shifted {e(str(report['shift_days']))} days "
        "from real time)</p>"
        "<form method='post' action='/_emulator/advance'><input type='hidden' name='_from_page' value='1'>"
        f"Advance everyone: {buttons}</form>"
        "<h2>Subscriptions</h2><table><tr><th>Subscription</th><th>Customer</th><th>Status</th>"
        f"<th>Period ends</th><th></th></tr>{sub_rows}</table>"
        "<h2>Latest events</h2><table><tr><th>When</th><th>Type</th><th>Object</th></tr>"
        f"{rows}</table><p>JSON: <a href='/_emulator/time'>time</a> · <a href='/_emulator/faults'>faults</a>"
        " · <a href='/_emulator/webhooks'>webhooks</a></p>"
    )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Stripe emulator</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto}table{width:100%;"
        "border-collapse:collapse}td,th{padding:4px;border-bottom:1px solid #ddd;text-align:left}</style>"
        f"</head><body>{body}</body></html>"
    )
    return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()
