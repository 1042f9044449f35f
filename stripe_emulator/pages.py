"""Pages outside `/v1`: hosted invoices and their PDFs, receipts, the 3-D Secure stand-in page,
and the admin paths under `/_emulator/` (state, reset, webhook flush)."""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from . import billing, payments
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


def handle_page(emu: Emulator, method: str, path: str, query: str) -> Response:
    if path == "/healthz":
        return _json(200, {"ok": True})
    match = re.fullmatch(r"/i/([^/]+)/([^/]+)(/pdf)?", path)
    if match:
        inv = emu.store.get("invoice", match.group(1))
        if inv is None or inv.get("_hosted_token") != match.group(2) or inv["status"] == "draft":
            return _not_found()
        return invoice_pdf(emu, inv) if match.group(3) else invoice_page(emu, inv)
    match = re.fullmatch(r"/receipts/(ch_[A-Za-z0-9]+)", path)
    if match:
        ch = emu.store.get("charge", match.group(1))
        if ch is None or ch["status"] != "succeeded":
            return _not_found()
        amount = billing.money(ch["amount"], ch["currency"])
        return _html(200, "Receipt", f"<h1>Receipt</h1><p>Paid {amount} on {format_date(ch['created'])}.</p>")
    match = re.fullmatch(r"/_emulator/authenticate/((?:pi|seti)_[A-Za-z0-9]+)", path)
    if match:
        return authenticate_page(emu, method, match.group(1), query)
    if path == "/_emulator/state" and method == "GET":
        return _json(200, emu.to_json())
    if path == "/_emulator/webhooks" and method == "GET":
        return _json(200, emu.webhooks.to_json())
    return _not_found()


def invoice_page(emu: Emulator, inv: dict[str, Any]) -> Response:
    rows = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td><td>{line['quantity']}</td>"
        f"<td>{billing.money(line['amount'], line['currency'])}</td></tr>"
        for line in billing.lines_of(emu, inv)
    )
    body = (
        f"<h1>Invoice {html.escape(inv['number'] or inv['id'])}</h1>"
        f"<p>Status: <strong>{inv['status']}</strong></p>"
        f"<p>Billed to {html.escape(inv['customer_email'] or inv['customer'])}</p>"
        f"<table><tr><th>Description</th><th>Qty</th><th>Amount</th></tr>{rows}</table>"
        f"<p>Total: {billing.money(inv['total'], inv['currency'])}<br>"
        f"Amount due: {billing.money(inv['amount_due'], inv['currency'])}<br>"
        f"Amount paid: {billing.money(inv['amount_paid'], inv['currency'])}</p>"
        f"<p><a href='{html.escape(inv['invoice_pdf'] or '')}'>Download PDF</a></p>"
    )
    return _html(200, f"Invoice {inv['number']}", body)


def invoice_pdf(emu: Emulator, inv: dict[str, Any]) -> Response:
    lines = [
        f"Invoice {inv['number']}",
        f"Status: {inv['status']}",
        f"Customer: {inv['customer_email'] or inv['customer']}",
        "",
    ]
    for line in billing.lines_of(emu, inv):
        lines.append(f"{line['description']}  {billing.money(line['amount'], line['currency'])}")
    lines += [
        "",
        f"Total: {billing.money(inv['total'], inv['currency'])}",
        f"Amount due: {billing.money(inv['amount_due'], inv['currency'])}",
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
        try:
            with emu.context() as ctx:
                payments.complete_authentication(ctx, intent, succeed=result == "succeed")
        except StripeError as error:
            return _json(error.status, error.body("req_page"))
        return _json(200, emu.render(intent))
    return _html(
        200,
        "Authenticate",
        f"<h1>Test authentication</h1><p>{html.escape(intent_id)}</p>"
        f"<form method='post' action='?result=succeed'><button>Complete</button></form>"
        f"<form method='post' action='?result=fail'><button>Fail</button></form>",
    )
