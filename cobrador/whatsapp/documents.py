"""PDF attachments (plan schedules, account statements) behind expiring
signed URLs.

WhatsApp fetches media by URL, so a document must be reachable without a
login; the URL therefore carries an HMAC-signed token naming the document and
its expiry, and nothing else (no phone, no amount). Anyone without a valid,
unexpired token gets 403. The PDF is generated from the ledger when fetched,
so it always shows the current state.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import time
from typing import Optional

from fpdf import FPDF
from sqlalchemy.orm import Session

from cobrador.language.format import format_date, format_money, frequency_label
from cobrador.ledger.models import Account, PaymentPlan

MEDIA_PATH = "/webhooks/whatsapp/media/"
DEFAULT_TTL_SECONDS = 24 * 3600
KINDS = ("plan", "statement")


def media_key(secret: str) -> bytes:
    """The HMAC key for media URLs, derived from the channel's secret."""
    return hashlib.sha256(b"cobrador-media:" + secret.encode("utf-8")).digest()


def sign(
    key: bytes, kind: str, object_id: int, lang: str, ttl: int = DEFAULT_TTL_SECONDS, now: Optional[float] = None
) -> str:
    """A token for document `kind`/`object_id`, valid for `ttl` seconds."""
    if kind not in KINDS or lang not in ("es", "en"):
        raise ValueError(f"unknown document {kind!r}/{lang!r}")
    expires = int((now if now is not None else time.time()) + ttl)
    payload = f"{kind}.{object_id}.{lang}.{expires}"
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]
    return f"{payload}.{base64.urlsafe_b64encode(mac).decode().rstrip('=')}"


def verify(key: bytes, token: str, now: Optional[float] = None) -> Optional[tuple[str, int, str]]:
    """(kind, id, lang) of a valid, unexpired token; None otherwise."""
    try:
        kind, object_id, lang, expires, mac = token.split(".")
        payload = f"{kind}.{object_id}.{lang}.{expires}"
        expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()[:18]
        given = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        if not hmac.compare_digest(expected, given) or kind not in KINDS:
            return None
        if int(expires) < (now if now is not None else time.time()):
            return None
        return kind, int(object_id), lang
    except (ValueError, TypeError):
        return None


def url(base: str, key: bytes, kind: str, object_id: int, lang: str) -> str:
    return base.rstrip("/") + MEDIA_PATH + sign(key, kind, object_id, lang)


def _latin1(text: str) -> str:
    # The PDF core fonts cover Latin-1 (á, é, ñ, ü, ¿, ¡); anything else is replaced.
    return text.encode("latin-1", "replace").decode("latin-1")


class _Document(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(format="Letter")
        self.set_title(_latin1(title))
        self.set_creator("Cobrador")
        self.add_page()
        self.set_font("Helvetica", "B", 15)
        self.cell(0, 10, _latin1(title), new_x="LMARGIN", new_y="NEXT")
        self.set_font("Helvetica", size=11)

    def line_text(self, text: str, bold: bool = False) -> None:
        self.set_font("Helvetica", "B" if bold else "", 11)
        self.multi_cell(0, 7, _latin1(text), new_x="LMARGIN", new_y="NEXT")

    def row(self, cells: list[str], widths: list[int], bold: bool = False) -> None:
        self.set_font("Helvetica", "B" if bold else "", 11)
        for text, width in zip(cells, widths, strict=True):
            self.cell(width, 8, _latin1(text), border=1)
        self.ln()


def plan_pdf(session: Session, plan_id: int, lang: str, today: dt.date) -> Optional[bytes]:
    """The schedule of a payment plan as a PDF, or None if there is no such plan."""
    plan = session.get(PaymentPlan, plan_id)
    if plan is None:
        return None
    account = plan.account
    creditor = account.creditor
    es = lang == "es"
    doc = _Document("Plan de pagos" if es else "Payment plan")
    doc.line_text(f"{creditor.legal_name}")
    doc.line_text(f"{'Cuenta' if es else 'Account'}: {account.reference} · {account.product or ''}")
    doc.line_text(
        f"{'Total' if es else 'Total'}: {format_money(plan.total_amount, account.currency, lang)} · "
        f"{frequency_label(plan.frequency, lang)}"
    )
    if plan.discount_amount:
        doc.line_text(
            f"{'Descuento' if es else 'Discount'}: {format_money(plan.discount_amount, account.currency, lang)}"
        )
    doc.ln(3)
    widths = [15, 95, 50, 30]
    doc.row(["#", "Fecha" if es else "Date", "Monto" if es else "Amount", "Estado" if es else "Status"], widths, True)
    for item in plan.installments:
        day = format_date(item.due_date, lang, today=today)
        doc.row([str(item.seq), day, format_money(item.amount, account.currency, lang), item.status], widths)
    doc.ln(3)
    _footer(doc, creditor, account, lang)
    return bytes(doc.output())


def statement_pdf(session: Session, account_id: int, lang: str, today: dt.date) -> Optional[bytes]:
    """An account statement as a PDF, or None if there is no such account."""
    account = session.get(Account, account_id)
    if account is None:
        return None
    creditor = account.creditor
    es = lang == "es"
    doc = _Document("Estado de cuenta" if es else "Account statement")
    doc.line_text(creditor.legal_name)
    doc.line_text(f"{'Cuenta' if es else 'Account'}: {account.reference} · {account.product or ''}")
    doc.line_text(f"{'Titular' if es else 'Holder'}: {account.debtor.name}")
    doc.ln(2)
    doc.line_text(
        f"{'Saldo' if es else 'Balance'}: {format_money(account.balance, account.currency, lang)} "
        f"({'al' if es else 'as of'} {format_date(account.balance_as_of, lang, today=today)})",
        bold=True,
    )
    doc.line_text(
        ("Monto original: " if es else "Original amount: ")
        + format_money(account.original_amount, account.currency, lang)
    )
    doc.line_text(f"{'Vencimiento' if es else 'Due date'}: {format_date(account.due_date, lang, today=today)}")
    if account.payments:
        doc.ln(2)
        doc.line_text("Pagos recibidos" if es else "Payments received", bold=True)
        for payment in account.payments:
            doc.line_text(
                format_date(payment.paid_on, lang, today=today)
                + ": "
                + format_money(payment.amount, account.currency, lang)
            )
    doc.ln(3)
    _footer(doc, creditor, account, lang)
    return bytes(doc.output())


def _footer(doc: _Document, creditor, account: Account, lang: str) -> None:  # noqa: ANN001
    es = lang == "es"
    doc.line_text(("Los pagos se hacen solo a " if es else "Payments go only to ") + creditor.display_name + ":")
    if creditor.payment_link_template:
        doc.line_text(
            creditor.payment_link_template.replace("{reference}", account.reference).replace(
                "{amount}", str(account.balance)
            )
        )
    if creditor.bank_reference:
        doc.line_text(f"{creditor.bank_name or ''}: {creditor.bank_reference}")
    if creditor.complaints_contact:
        doc.line_text(("Quejas: " if es else "Complaints: ") + creditor.complaints_contact)
