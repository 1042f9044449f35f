"""Pages outside `/v1`: hosted invoices and their PDFs, receipts, the 3-D Secure stand-in page,
hosted Checkout and portal pages (`hosted.py`), and the admin paths under `/_emulator/`
(`admin.py`)."""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from . import invoicing, payments
from .clock import format_date
from .errors import StripeError

if TYPE_CHECKING:
    from .app import Emulator, Response


def _html(status: int, title: str, body: str) -> Response:
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>"
        + html.escape(title)
        + "</title><style>body{font-family:sans-serif;max-width:720px;margin:2em auto}"
        "table{width:100%;border-collapse:collapse}td,th{padding:4px;border-bottom:1px solid "
        "#ddd;text-align:left}"
        "</style></head><body>" + body + "</body></html>"
    )
    return status, {"Content-Type": "text/html; charset=utf-8"}, page.encode()


def _json(status: int, data: Any) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(data, indent=2).encode()


def _not_found() -> Response:
    return _html(404, "Not found", "<h1>Not found</h1>")


def handle_page(
    emu: Emulator, method: str, path: str, query: str, body: Any = None, headers: dict[str, str] | None = None
) -> Response:
    if path == "/healthz":
        return _json(200, {"ok": True})
    if path == "/_emulator" or (
        path.startswith("/_emulator/") and not path.startswith("/_emulator/authenticate/")
    ):
        from .admin import handle_admin

        return handle_admin(emu, method, path, query, body, headers or {})  # takes the lock itself
    with emu.lock:
        return _handle_page(emu, method, path, query, body)


def _handle_page(emu: Emulator, method: str, path: str, query: str, body: Any) -> Response:
    from . import hosted

    match = re.fullmatch(r"/c/pay/(cs_[A-Za-z0-9_]+)(/return)?", path)
    if match:
        return hosted.checkout_page(emu, method, match.group(1), match.group(2) or "", body)
    match = re.fullmatch(r"/p/session/(bps_[A-Za-z0-9]+)(/card_return)?", path)
    if match:
        return hosted.portal_page(emu, method, match.group(1), match.group(2) or "", query, body)
    match = re.fullmatch(r"/i/([^/]+)/([^/]+)(/pdf|/pay)?", path)
    if match:
        inv = emu.store.get("invoice", match.group(1))
        if inv is None or inv.get("_hosted_token") != match.group(2) or inv["status"] == "draft":
            return _not_found()
        if match.group(3) == "/pay" and method == "POST":
            return hosted.invoice_pay(emu, inv, body)
        return invoice_pdf(emu, inv) if match.group(3) == "/pdf" else invoice_page(emu, inv)
    match = re.fullmatch(r"/receipts/(ch_[A-Za-z0-9]+)", path)
    if match:
        ch = emu.store.get("charge", match.group(1))
        if ch is None or ch["status"] != "succeeded":
            return _not_found()
        amount = invoicing.money(ch["amount"], ch["currency"])
        return _html(200, "Receipt", f"<h1>Receipt</h1><p>Paid {amount} on {format_date(ch['created'])}.</p>")
    match = re.fullmatch(r"/_emulator/authenticate/((?:pi|seti)_[A-Za-z0-9]+)", path)
    if match:
        return authenticate_page(emu, method, match.group(1), query)
    return _not_found()


def invoice_page(
    emu: Emulator, inv: dict[str, Any], *, error: str | None = None, status: int = 200
) -> Response:
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td><td>{line['quantity']}</td>"
        f"<td>{invoicing.money(line['amount'], line['currency'])}</td></tr>"
        for line in invoicing.lines_of(emu, inv)
    )
    body = (
        f"<h1>Invoice {html.escape(inv['number'] or inv['id'])}</h1>"
        f"<p>Status: <strong>{inv['status']}</strong></p>"
        f"<p>Billed to {html.escape(inv['customer_email'] or inv['customer'])}</p>"
        f"<table><tr><th>Description</th><th>Qty</th><th>Amount</th></tr>{rows}</table>"
        f"<p>Total: {invoicing.money(inv['total'], inv['currency'])}<br>"
        f"Amount due: {invoicing.money(inv['amount_due'], inv['currency'])}<br>"
        f"Amount paid: {invoicing.money(inv['amount_paid'], inv['currency'])}</p>"
        f"<p><a href='{html.escape(inv['invoice_pdf'] or '')}'>Download PDF</a></p>"
    )
    if error:
        body += f"<p class='error' role='alert' style='color:#a4141d'>{html.escape(error)}</p>"
    if inv["status"] == "open":
        from .checkout import PAGE_CARDS

        buttons = "".join(
            f"<button name='card' value='{key}'>Pay with {number} ({effect})</button><br>"
            for key, (_, number, effect) in PAGE_CARDS.items()
        )
        body += f"<form method='post' action='/i/{inv['id']}/{inv['_hosted_token']}/pay'>{buttons}</form>"
    return _html(status, f"Invoice {inv['number']}", body)


def invoice_pdf(emu: Emulator, inv: dict[str, Any]) -> Response:
    lines = [
        f"Invoice {inv['number']}",
        f"Status: {inv['status']}",
        f"Customer: {inv['customer_email'] or inv['customer']}",
        "",
    ]
    for line in invoicing.lines_of(emu, inv):
        lines.append(f"{line['description']}  {invoicing.money(line['amount'], line['currency'])}")
    lines += [
        "",
        f"Total: {invoicing.money(inv['total'], inv['currency'])}",
        f"Amount due: {invoicing.money(inv['amount_due'], inv['currency'])}",
    ]
    return (
        200,
        {
            "Content-Type": "application/pdf",
            "Content-Disposition": f'inline; filename="{inv["number"]}.pdf"',
        },
        simple_pdf(lines),
    )


def simple_pdf(lines: list[str]) -> bytes:
    """A one-page PDF with the given lines of text (Helvetica), valid enough for any reader."""

    def escape(text: str) -> str:
        text = text.encode("latin-1", "replace").decode("latin-1")
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 11 Tf 50 790 Td 14 TL " + " ".join(f"({escape(t)}) '" for t in lines) + " ET"
    stream = content.encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def authenticate_page(emu: Emulator, method: str, intent_id: str, query: str) -> Response:
    """The bank's 3-D Secure page: `POST ?result=succeed|fail` completes the authentication."""
    kind = "payment_intent" if intent_id.startswith("pi_") else "setup_intent"
    intent = emu.store.get(kind, intent_id)
    if intent is None:
        return _not_found()
    if method == "POST":
        result = parse_qs(query).get("result", ["succeed"])[0]
        return_url = ((intent.get("next_action") or {}).get("redirect_to_url") or {}).get("return_url")
        try:
            with emu.context() as ctx:
                payments.complete_authentication(ctx, intent, succeed=result == "succeed")
        except StripeError as error:
            return _json(error.status, error.body("req_page"))
        if return_url:  # a browser goes back where it came from, as after a bank's page
            return 303, {"Location": return_url, "Content-Type": "text/html; charset=utf-8"}, b""
        return _json(200, emu.render(intent))
    return _html(
        200,
        "Authenticate",
        f"<h1>Test authentication</h1><p>{html.escape(intent_id)}</p>"
        f"<form method='post' action='?result=succeed'><button>Complete</button></form>"
        f"<form method='post' action='?result=fail'><button>Fail</button></form>",
    )
