"""`debtor show`: everything the ledger knows about one phone number.

The JSON form (`debtor_snapshot`) is a documented, versioned contract that
other tools read (README, "debtor show --json"). Add keys freely; never
rename or remove one without bumping `SCHEMA`.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from cobrador.ledger.models import Account, Debtor, Escalation, Message, OptOut, PaymentPlan

SCHEMA = "cobrador.debtor/1"
LAST_MESSAGES = 20


def _money(value: Optional[Decimal]) -> Optional[str]:
    # Strings, not JSON numbers: a reader must never round money through float.
    return None if value is None else f"{value:.2f}"


def _time(value: Optional[dt.datetime]) -> Optional[str]:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _date(value: Optional[dt.date]) -> Optional[str]:
    return None if value is None else value.isoformat()


def _account(account: Account, today: dt.date) -> dict[str, Any]:
    return {
        "reference": account.reference,
        "creditor": account.creditor.code,
        "creditor_name": account.creditor.display_name,
        "product": account.product,
        "currency": account.currency,
        "original_amount": _money(account.original_amount),
        "balance": _money(account.balance),
        "balance_as_of": _date(account.balance_as_of),
        "due_date": _date(account.due_date),
        "days_overdue": max(0, (today - account.due_date).days),
        "status": account.status,
        "promises": [
            {
                "id": promise.id,
                "amount": _money(promise.amount),
                "due_date": _date(promise.due_date),
                "status": promise.status,
                "created_by": promise.created_by,
                "created_at": _time(promise.created_at),
            }
            for promise in account.promises
        ],
        "plans": [_plan(plan) for plan in account.plans],
        "payments": [
            {
                "amount": _money(payment.amount),
                "paid_on": _date(payment.paid_on),
                "reference": payment.external_reference,
            }
            for payment in account.payments
        ],
        "payment_claims": [
            {
                "id": claim.id,
                "amount": _money(claim.amount),
                "paid_on": _date(claim.paid_on),
                "reference": claim.reference,
                "status": claim.status,
                "created_at": _time(claim.created_at),
            }
            for claim in account.payment_claims
        ],
    }


def _plan(plan: PaymentPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "total_amount": _money(plan.total_amount),
        "discount_amount": _money(plan.discount_amount),
        "frequency": plan.frequency,
        "status": plan.status,
        "created_at": _time(plan.created_at),
        "installments": [
            {
                "seq": installment.seq,
                "due_date": _date(installment.due_date),
                "amount": _money(installment.amount),
                "status": installment.status,
            }
            for installment in plan.installments
        ],
    }


def debtor_snapshot(session: Session, phone: str, today: dt.date) -> Optional[dict[str, Any]]:
    """The documented JSON view of a debtor, or `None` if the phone is unknown.

    Args:
        session: an open unit of work.
        phone: E.164 phone number.
        today: the date `days_overdue` is counted against.

    Returns:
        A dict following schema `cobrador.debtor/1`.
    """
    debtor = session.execute(
        select(Debtor)
        .where(Debtor.phone == phone)
        .options(
            selectinload(Debtor.accounts).selectinload(Account.creditor),
            selectinload(Debtor.accounts).selectinload(Account.promises),
            selectinload(Debtor.accounts).selectinload(Account.plans).selectinload(PaymentPlan.installments),
            selectinload(Debtor.accounts).selectinload(Account.payments),
            selectinload(Debtor.accounts).selectinload(Account.payment_claims),
        )
    ).scalar_one_or_none()
    if debtor is None:
        return None
    escalations = session.execute(select(Escalation).where(Escalation.phone == phone).order_by(Escalation.id)).scalars()
    opt_outs = session.execute(select(OptOut).where(OptOut.phone == phone).order_by(OptOut.id)).scalars()
    messages = list(
        session.execute(
            select(Message).where(Message.phone == phone).order_by(Message.id.desc()).limit(LAST_MESSAGES)
        ).scalars()
    )
    return {
        "schema": SCHEMA,
        "debtor": {
            "phone": debtor.phone,
            "name": debtor.name,
            "language": debtor.language,
            "timezone": debtor.timezone,
            "birth_year_on_file": debtor.birth_year is not None,
            "whatsapp_opt_in_at": _time(debtor.whatsapp_opt_in_at),
            "wrong_number_at": _time(debtor.wrong_number_at),
        },
        "accounts": [_account(account, today) for account in debtor.accounts],
        "escalations": [
            {
                "case_number": escalation.case_number,
                "reason": escalation.reason,
                "status": escalation.status,
                "summary": escalation.summary,
                "account": escalation.account.reference if escalation.account else None,
                "created_at": _time(escalation.created_at),
            }
            for escalation in escalations
        ],
        "opt_outs": [
            {
                "channel": opt_out.channel,
                "keyword": opt_out.keyword,
                "created_at": _time(opt_out.created_at),
                "active": opt_out.revoked_at is None,
            }
            for opt_out in opt_outs
        ],
        "messages": [
            {
                "direction": message.direction,
                "sender": message.sender,
                "body": message.body,
                "media": message.media or [],
                "status": message.status,
                "provider_sid": message.provider_sid,
                "created_at": _time(message.created_at),
            }
            for message in reversed(messages)
        ],
    }


def render_text(snapshot: dict[str, Any]) -> str:
    """A human-readable rendering of `debtor_snapshot` for the terminal."""
    debtor = snapshot["debtor"]
    lines = [
        f"{debtor['name']}  {debtor['phone']}  lang={debtor['language']}  tz={debtor['timezone']}",
        f"  WhatsApp opt-in: {debtor['whatsapp_opt_in_at'] or 'none'}"
        + (f"   WRONG NUMBER since {debtor['wrong_number_at']}" if debtor["wrong_number_at"] else ""),
        "",
        "Accounts:",
    ]
    for account in snapshot["accounts"]:
        lines.append(
            f"  {account['creditor']}/{account['reference']}  {account['status']}  "
            f"balance {account['balance']} {account['currency']} (as of {account['balance_as_of']})  "
            f"due {account['due_date']}  {account['days_overdue']} days overdue"
        )
        for promise in account["promises"]:
            lines.append(f"    promise {promise['amount']} by {promise['due_date']}  [{promise['status']}]")
        for plan in account["plans"]:
            lines.append(
                f"    plan {plan['total_amount']} {plan['frequency']} x{len(plan['installments'])}  [{plan['status']}]"
            )
            for item in plan["installments"]:
                lines.append(f"      #{item['seq']} {item['due_date']} {item['amount']}  [{item['status']}]")
        for claim in account["payment_claims"]:
            lines.append(f"    payment claim {claim['amount']} on {claim['paid_on']}  [{claim['status']}]")
        for payment in account["payments"]:
            lines.append(f"    payment {payment['amount']} on {payment['paid_on']}")
    if not snapshot["accounts"]:
        lines.append("  (none)")
    lines += ["", "Escalations:"]
    lines += [
        f"  {e['case_number'] or '-'}  {e['reason']}  [{e['status']}]  {e['summary']}" for e in snapshot["escalations"]
    ] or ["  (none)"]
    lines += ["", "Opt-outs:"]
    lines += [
        f"  {o['channel']} {o['keyword'] or ''} at {o['created_at']}{'' if o['active'] else ' (revoked)'}"
        for o in snapshot["opt_outs"]
    ] or ["  (none)"]
    lines += ["", f"Last {LAST_MESSAGES} messages:"]
    lines += [
        f"  {m['created_at']}  {'<-' if m['direction'] == 'inbound' else '->'} {m['sender']}: {m['body']}"
        + (f"  [{m['status']}]" if m["direction"] == "outbound" else "")
        for m in snapshot["messages"]
    ] or ["  (none)"]
    return "\n".join(lines)
