"""What the console does, as plain functions on the ledger (the web layer is thin).

Access rules: an agent sees the queue (open escalations) and the
conversations assigned to them; a supervisor sees every open or assigned one
and the audit log. Acting on a conversation (reply, promise, plan, note,
return, close) needs it assigned to you, or a supervisor. Every action is
written to the audit log in the same transaction as its effect.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Optional
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cobrador.console.auth import SignedIn
from cobrador.ledger import commands
from cobrador.ledger.models import Account, Agent, Creditor, Debtor, Escalation, EscalationNote, utcnow
from cobrador.ledger.models_console import AuditEntry
from cobrador.policy.plan_options import INSTALLMENTS, PlanOption, PlanPolicy, fits_policy, schedule
from cobrador.policy.plans import split_evenly
from cobrador.policy.promises import check_promise

ACTIVE = ("open", "assigned")
PROMISE_ERRORS = {
    "amount_not_positive": "The amount must be more than zero.",
    "amount_above_balance": "The amount is more than the balance.",
    "date_in_past": "The date is in the past.",
    "beyond_horizon": "The date is further away than this portfolio allows; offer a plan instead.",
}


class Refused(Exception):
    """The agent may not do this (HTTP 403)."""


class Invalid(ValueError):
    """The request makes no sense for this conversation (shown to the agent)."""


@dataclass(frozen=True)
class QueueItem:
    id: int
    case_number: str
    reason: str
    status: str
    age: dt.timedelta
    debtor: str
    phone: str
    assignee: str
    summary: str


def audit(session: Session, agent: SignedIn, action: str, escalation: Optional[Escalation], **details: Any) -> None:
    session.add(
        AuditEntry(
            agent_id=agent.agent_id, action=action, escalation_id=escalation.id if escalation else None,
            debtor_id=escalation.debtor_id if escalation else None, details=details, at=utcnow(),
        )
    )  # fmt: skip


def queue(session: Session, agent: SignedIn) -> list[QueueItem]:
    """Open escalations (oldest first), then those assigned to the agent (all, for a supervisor)."""
    query = (
        select(Escalation, Debtor.name, Agent.name)
        .outerjoin(Debtor, Debtor.id == Escalation.debtor_id)
        .outerjoin(Agent, Agent.id == Escalation.assignee_id)
        .where(Escalation.status.in_(ACTIVE))
        .order_by(Escalation.status.desc(), Escalation.created_at, Escalation.id)
    )
    if not agent.supervisor:
        query = query.where((Escalation.status == "open") | (Escalation.assignee_id == agent.agent_id))
    now = utcnow()
    return [
        QueueItem(
            e.id, e.case_number or f"#{e.id}", e.reason, e.status, now - _aware(e.created_at),
            debtor or "(unknown number)", e.phone, assignee or "", (e.summary or "")[:160],
        )
        for e, debtor, assignee in session.execute(query).all()
    ]  # fmt: skip


def escalation_for(session: Session, agent: SignedIn, escalation_id: int, *, act: bool = False) -> Escalation:
    """The escalation if the agent may see it (or act on it); raises Refused otherwise."""
    escalation = session.get(Escalation, escalation_id)
    if escalation is None:
        raise Refused("no such conversation")
    mine = escalation.status == "assigned" and escalation.assignee_id == agent.agent_id
    if agent.supervisor:
        return escalation
    if act and not mine:
        raise Refused("take the conversation first")
    if not act and not (mine or escalation.status == "open"):
        raise Refused("this conversation belongs to another agent")
    return escalation


def claim(session: Session, agent: SignedIn, escalation_id: int) -> bool:
    """Takes an open escalation; False if someone else took it first (atomic)."""
    taken = session.execute(
        update(Escalation)
        .where(Escalation.id == escalation_id, Escalation.status == "open")
        .values(status="assigned", assignee_id=agent.agent_id, updated_at=utcnow())
    ).rowcount
    if taken:
        audit(session, agent, "claim", session.get(Escalation, escalation_id))
    return bool(taken)


def assign(session: Session, agent: SignedIn, escalation: Escalation, assignee_id: str) -> None:
    """A supervisor hands an open or assigned conversation to an agent."""
    if not agent.supervisor:
        raise Refused("supervisors only")
    if escalation.status not in ACTIVE:
        raise Invalid("This case is finished.")
    try:
        assignee = session.get(Agent, int(assignee_id))
    except (TypeError, ValueError):
        assignee = None
    if assignee is None or not assignee.active:
        raise Invalid("Pick an active agent.")
    escalation.status, escalation.assignee_id, escalation.updated_at = "assigned", assignee.id, utcnow()
    audit(session, agent, "assign", escalation, to=assignee.email)


def add_note(session: Session, agent: SignedIn, escalation: Escalation, body: str) -> None:
    body = body.strip()
    if not body:
        raise Invalid("The note is empty.")
    session.add(EscalationNote(escalation_id=escalation.id, author_id=agent.agent_id, body=body[:5000]))
    audit(session, agent, "note", escalation, length=len(body))


def finish(session: Session, agent: SignedIn, escalation: Escalation, status: str) -> None:
    """`resolved` returns the conversation to the bot; `closed` ends the case."""
    commands.resolve_escalation(session, escalation.id, status=status)
    audit(session, agent, "return_to_bot" if status == "resolved" else "close", escalation)


def _account(session: Session, escalation: Escalation, account_id: str) -> tuple[Account, Creditor, dt.date]:
    try:
        account = session.get(Account, int(account_id))
    except (TypeError, ValueError):
        account = None
    if account is None or account.debtor_id != escalation.debtor_id:
        raise Invalid("Pick one of this debtor's accounts.")
    debtor = session.get(Debtor, account.debtor_id)
    today = utcnow().astimezone(ZoneInfo(debtor.timezone)).date()
    return account, session.get(Creditor, account.creditor_id), today


def record_promise(
    session: Session, agent: SignedIn, escalation: Escalation, account_id: str, amount: str, day: str
) -> int:
    """A promise taken by the agent, with the bot's validation."""
    account, creditor, today = _account(session, escalation, account_id)
    value, date = _money(amount), _date(day)
    problem = check_promise(value, date, today, account.balance, creditor.promise_horizon_days)
    if problem:
        raise Invalid(PROMISE_ERRORS.get(problem, problem))
    promise_id = commands.record_promise(session, account.id, value, date, created_by=f"agent:{agent.agent_id}")
    audit(session, agent, "promise", escalation, account=account.reference, amount=f"{value:.2f}", date=day)
    return promise_id


def record_plan(
    session: Session, agent: SignedIn, escalation: Escalation, account_id: str, count: str, frequency: str, first: str
) -> int:
    """A plan agreed by the agent: equal instalments of the balance, within the portfolio's rules."""
    account, creditor, today = _account(session, escalation, account_id)
    try:
        number = int(count)
    except ValueError:
        raise Invalid("The number of instalments must be a whole number.") from None
    start = _date(first)
    if start < today or start > today + dt.timedelta(days=creditor.promise_horizon_days):
        raise Invalid("The first instalment must fall between today and the portfolio's horizon.")
    policy = PlanPolicy(
        max_installments=creditor.plan_max_installments, min_installment=creditor.plan_min_installment,
        frequencies=tuple(f.strip() for f in creditor.plan_frequencies.split(",") if f.strip()),
    )  # fmt: skip
    if frequency not in policy.frequencies or number < 2:
        raise Invalid("Pick an allowed frequency and at least 2 instalments.")
    amounts = split_evenly(account.balance, number)
    option = PlanOption(INSTALLMENTS, frequency, tuple(amounts), tuple(schedule(start, frequency, number)), Decimal(0))
    if not fits_policy(option, account.balance, policy):
        raise Invalid(
            f"This portfolio allows at most {policy.max_installments} instalments of at least "
            f"{policy.min_installment:.2f}."
        )
    plan_id = commands.record_plan(
        session, account.id, frequency, list(option.amounts), list(option.dates), created_by=f"agent:{agent.agent_id}"
    )
    audit(session, agent, "plan", escalation, account=account.reference, count=number, frequency=frequency)
    return plan_id


def _money(text: str) -> Decimal:
    try:
        value = Decimal(text.replace(",", "").strip())
    except (InvalidOperation, AttributeError):
        raise Invalid("The amount must be a number such as 1500.00.") from None
    if value != value.quantize(Decimal("0.01")):
        raise Invalid("At most two decimals.")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise Invalid("The date must be YYYY-MM-DD.") from None


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)
