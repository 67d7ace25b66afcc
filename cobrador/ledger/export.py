"""Outcomes export: what happened in the conversations, for the creditor's system.

`python -m cobrador export --since DATE [--until DATE] [--creditor CODE]`
writes one CSV row per event, oldest first: promises, plans, payment claims,
payments applied, disputes, other escalations, opt-outs, wrong numbers, and
outbound messages by delivery status.

Privacy first: no message bodies and no free text written by a debtor leave
through the export (a claim's payment reference is the one exception: the
creditor needs it to reconcile). Cells that a spreadsheet would read as a
formula are prefixed with a quote (OWASP CSV injection).
"""

from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator, Optional, TextIO

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from cobrador.ledger.models import (
    Account,
    Creditor,
    Debtor,
    Escalation,
    Message,
    OptOut,
    Payment,
    PaymentClaim,
    PaymentPlan,
    Promise,
)

COLUMNS = (
    "event", "occurred_at", "creditor", "account_reference", "phone", "amount", "currency", "date", "status",
    "case_number", "detail",
)  # fmt: skip
_SAFE = {"occurred_at", "phone", "amount", "date"}  # values we generate or validate ourselves
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UTC = dt.timezone.utc


@dataclass(frozen=True)
class Event:
    event: str
    occurred_at: dt.datetime
    creditor: str = ""
    account_reference: str = ""
    phone: str = ""
    amount: Optional[Decimal] = None
    currency: str = ""
    date: Optional[dt.date] = None
    status: str = ""
    case_number: str = ""
    detail: str = ""

    def cells(self) -> list[str]:
        values = {
            "event": self.event,
            "occurred_at": _aware(self.occurred_at).isoformat(timespec="seconds"),
            "creditor": self.creditor,
            "account_reference": self.account_reference,
            "phone": self.phone,
            "amount": "" if self.amount is None else f"{self.amount:.2f}",
            "currency": self.currency,
            "date": self.date.isoformat() if self.date else "",
            "status": self.status,
            "case_number": self.case_number,
            "detail": self.detail,
        }
        return [values[c] if c in _SAFE else inert(values[c]) for c in COLUMNS]


def inert(cell: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def write_export(
    session: Session,
    out: TextIO,
    since: dt.datetime,
    until: Optional[dt.datetime] = None,
    creditor: Optional[str] = None,
) -> int:
    """Writes the CSV (header first) of the events in [since, until); returns the row count."""
    until = until or dt.datetime.max.replace(tzinfo=_UTC)
    events = sorted(events_between(session, since, until, creditor), key=lambda e: (_aware(e.occurred_at), e.event))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow(event.cells())
    return len(events)


def events_between(
    session: Session, since: dt.datetime, until: dt.datetime, creditor: Optional[str]
) -> Iterator[Event]:
    """Every exported event in [since, until), for one creditor or all."""

    def account_rows(model, moment):  # noqa: ANN001, ANN202 - rows of `model` joined to their account
        query = (
            select(model, Account.reference, Account.currency, Creditor.code, Debtor.phone)
            .join(Account, Account.id == model.account_id)
            .join(Creditor, Creditor.id == Account.creditor_id)
            .join(Debtor, Debtor.id == Account.debtor_id)
            .where(and_(moment >= since, moment < until))
        )
        if creditor:
            query = query.where(Creditor.code == creditor)
        return session.execute(query).all()

    for promise, ref, currency, code, phone in account_rows(Promise, Promise.created_at):
        yield Event("promise", promise.created_at, code, ref, phone, promise.amount, currency, promise.due_date,
                    promise.status, detail=f"by {promise.created_by}")  # fmt: skip
    for plan, ref, currency, code, phone in account_rows(PaymentPlan, PaymentPlan.created_at):
        first = min((i.due_date for i in plan.installments), default=None)
        detail = f"{len(plan.installments)} x {plan.frequency}; by {plan.created_by}"
        if plan.discount_amount:
            detail += f"; discount {plan.discount_amount:.2f}"
        yield Event("plan", plan.created_at, code, ref, phone, plan.total_amount, currency, first, plan.status,
                    detail=detail)  # fmt: skip
    for claim, ref, currency, code, phone in account_rows(PaymentClaim, PaymentClaim.created_at):
        yield Event("payment_claim", claim.created_at, code, ref, phone, claim.amount, currency, claim.paid_on,
                    claim.status, detail=claim.reference or "")  # fmt: skip
    for payment, ref, currency, code, phone in account_rows(Payment, Payment.created_at):
        yield Event("payment", payment.created_at, code, ref, phone, payment.amount, currency, payment.paid_on,
                    "applied", detail=payment.external_reference or "")  # fmt: skip
    yield from _escalations(session, since, until, creditor)
    yield from _debtor_events(session, since, until, creditor)


def _escalations(session: Session, since: dt.datetime, until: dt.datetime, creditor: Optional[str]) -> Iterator[Event]:
    query = (
        select(Escalation, Account.reference, Creditor.code)
        .outerjoin(Account, Account.id == Escalation.account_id)
        .outerjoin(Creditor, Creditor.id == Account.creditor_id)
        .where(Escalation.created_at >= since, Escalation.created_at < until)
    )
    allowed = _phones_of(session, creditor)
    for escalation, ref, code in session.execute(query).all():
        if creditor and code != creditor and not (code is None and escalation.phone in allowed):
            continue
        kind = "dispute" if escalation.reason == "dispute" else "escalation"
        yield Event(kind, escalation.created_at, code or "", ref or "", escalation.phone, status=escalation.status,
                    case_number=escalation.case_number or "", detail=escalation.reason)  # fmt: skip


def _debtor_events(
    session: Session, since: dt.datetime, until: dt.datetime, creditor: Optional[str]
) -> Iterator[Event]:
    """Opt-outs, wrong numbers and outbound messages belong to a phone, not an account."""
    allowed = _phones_of(session, creditor)
    opt_outs = session.execute(select(OptOut).where(OptOut.created_at >= since, OptOut.created_at < until)).scalars()
    for opt_out in opt_outs:
        if allowed is None or opt_out.phone in allowed:
            status = "revoked" if opt_out.revoked_at else "active"
            yield Event("opt_out", opt_out.created_at, phone=opt_out.phone, status=status, detail=opt_out.channel)
    wrong = session.execute(
        select(Debtor.phone, Debtor.wrong_number_at).where(
            Debtor.wrong_number_at >= since, Debtor.wrong_number_at < until
        )
    ).all()
    for phone, at in wrong:
        if allowed is None or phone in allowed:
            yield Event("wrong_number", at, phone=phone)
    sent = session.execute(
        select(Message).where(Message.direction == "outbound", Message.updated_at >= since, Message.updated_at < until)
    ).scalars()
    for message in sent:
        if allowed is not None and message.phone not in allowed:
            continue
        if message.status in ("delivered", "read"):
            event = "message_delivered"
        elif message.status in ("failed", "undelivered"):
            event = "message_failed"
        else:
            event = "message_sent"
        detail = " ".join(p for p in (message.sender, message.template_sid or "", message.error_code or "") if p)
        yield Event(event, message.updated_at, phone=message.phone, status=message.status, detail=detail)


def _phones_of(session: Session, creditor: Optional[str]) -> Optional[set[str]]:
    """Phones of the creditor's debtors (None: no filter)."""
    if not creditor:
        return None
    rows = session.execute(
        select(Debtor.phone)
        .join(Account, Account.debtor_id == Debtor.id)
        .join(Creditor, Creditor.id == Account.creditor_id)
        .where(Creditor.code == creditor)
    )
    return {phone for (phone,) in rows}


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_UTC)
