"""The outreach worker: plans what is due, checks the contact rules, sends once.

One pass (`run_once`) plans, then takes due jobs in batches. Every job is
claimed in its own committed transaction before anything is sent (PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so concurrent workers take different jobs; SQLite:
the ledger's `BEGIN IMMEDIATE` serialises the claims), then judged against the
ledger and `cobrador.policy.contact`, then sent and recorded. A blocked job is
deferred to the next allowed moment (window, cap) or held while a standing
block lasts, and every decision is logged with its reason.

Exactly once: in local mode the outbox row and the "sent" mark are one
transaction. With Twilio the outbound message is recorded, then sent, then
marked; a worker that dies after claiming and before marking leaves the job
`claimed`, and the next pass marks it `unknown` (logged) instead of sending
it again: a possible gap is reported, a double message never happens.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Optional

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cobrador.language.format import format_date, format_money
from cobrador.ledger import lookups, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import (
    Account,
    Creditor,
    Debtor,
    Escalation,
    Installment,
    Payment,
    PaymentClaim,
    PaymentPlan,
    Promise,
)
from cobrador.ledger.models_outreach import ContactDecisionLog, OutreachJob
from cobrador.outreach.config import OutreachConfig, Template, load_config
from cobrador.outreach.planner import EXPIRES_AFTER_DAYS, local_today, plan, rules_for
from cobrador.outreach.planner import zone as planner_zone
from cobrador.policy import contact
from cobrador.whatsapp.twilio_api import SendError, TwilioConfig, TwilioSender

logger = logging.getLogger(__name__)

CLAIM_TIMEOUT = dt.timedelta(minutes=10)  # a claim older than this belongs to a dead worker
# Standing blocks (dispute, escalation, claim) are re-checked this often; a
# missing opt-in changes only with an import, so less often.
HOLD_RECHECK = dt.timedelta(hours=1)
HOLD_RECHECK_NO_OPT_IN = dt.timedelta(hours=6)
RETRY_AFTER = dt.timedelta(minutes=5)  # a transient Twilio failure is retried this much later
WAIT_FIRST_NOTICE = dt.timedelta(minutes=1)
EXPIRING = ("pre_due", "due", "overdue", "promise_reminder", "installment_reminder")
PERMANENT = (contact.OPTED_OUT, contact.WRONG_NUMBER)
OPT_OUT_LINE = {"es": "Responde BAJA para no recibir más mensajes.", "en": "Reply STOP to opt out."}
DISCLOSURE = {"es": "despacho de cobranza", "en": "a debt collector"}
_UTC = dt.timezone.utc


@dataclass
class RunReport:
    """What one pass did."""

    planned: int = 0
    sent: int = 0
    deferred: int = 0
    held: int = 0
    cancelled: int = 0
    unknown: int = 0
    lines: list[str] = field(default_factory=list)  # dry run: what would happen


@dataclass(frozen=True)
class SentRecord:
    account_reference: str
    creditor: str
    phone: str
    kind: str
    sent_at: dt.datetime
    template_sid: Optional[str]
    variables: dict[str, str]


@dataclass(frozen=True)
class DecisionRecord:
    account_reference: str
    kind: str
    at: dt.datetime
    outcome: str
    reason: str
    next_at: Optional[dt.datetime]


@dataclass(frozen=True)
class _Verdict:
    outcome: str  # send / deferred / held / cancelled
    reason: str
    next_at: Optional[dt.datetime] = None
    template: Optional[Template] = None
    values: Optional[dict[str, str]] = None


def run_once(
    now: dt.datetime,
    *,
    database_url: Optional[str] = None,
    config_path: Optional[str] = None,
    sender: Optional[TwilioConfig | str] = None,
    worker_id: str = "worker",
    sleep: Callable[[float], None] = time.sleep,
    batch: int = 100,
) -> RunReport:
    """One pass: plan, then send every due job that the rules allow.

    Args:
        now: the current moment, aware (the clock is injected for tests).
        database_url: the ledger (default: DATABASE_URL).
        config_path: the outreach configuration (default: config/outreach.yml).
        sender: a TwilioConfig to send through, "local" for the outbox, or None
            for what the environment configures.
        worker_id: recorded with claims and decisions.
        sleep: how to wait between sends (the throttle).
        batch: jobs claimed at a time.
    """
    now = now.astimezone(_UTC)
    config = load_config(config_path)
    twilio = _twilio(sender)
    report = RunReport()
    with session_scope(database_url) as session:
        report.planned = plan(session, now, config)
    with session_scope(database_url) as session:
        report.unknown = _expire_stale_claims(session, now, worker_id)
    loop = asyncio.new_event_loop() if twilio else None
    client = TwilioSender(twilio) if twilio else None
    try:
        last_send = 0.0
        interval = 60.0 / config.default.rate_per_minute  # sends per worker process
        while True:
            with session_scope(database_url) as session:
                ids = _claim(session, now, worker_id, batch)
            if not ids:
                break
            for job_id in ids:
                # The throttle waits outside any transaction (a sleeping
                # transaction would hold SQLite's write lock, or row locks).
                wait = last_send + interval - time.monotonic()
                if wait > 0:
                    sleep(wait)
                with session_scope(database_url) as session:
                    job = session.get(OutreachJob, job_id)
                    verdict = judge(session, job, now, config)
                    if job.kind == "promise_broken" and verdict.outcome != "cancelled":
                        _mark_broken(session, job.subject_id, now)
                    if verdict.outcome != "send":
                        _settle(session, job, verdict, now, worker_id)
                        setattr(report, verdict.outcome, getattr(report, verdict.outcome) + 1)
                        continue
                    last_send = time.monotonic()
                    message_id = _record(session, job, verdict, now, worker_id, local=twilio is None)
                outcome = "sent"
                if twilio is not None:
                    assert loop is not None and client is not None
                    outcome = _deliver(loop, client, database_url, job_id, message_id, verdict, now, worker_id)
                setattr(report, outcome, getattr(report, outcome) + 1)
    finally:
        if loop is not None:
            if client is not None:
                loop.run_until_complete(client.close())
            loop.close()
    return report


def _twilio(sender: Optional[TwilioConfig | str]) -> Optional[TwilioConfig]:
    if isinstance(sender, TwilioConfig):
        return sender
    if sender == "local":
        return None
    from cobrador.whatsapp.settings import ChannelSettings

    return ChannelSettings.from_env().twilio


def _expire_stale_claims(session: Session, now: dt.datetime, worker_id: str) -> int:
    """Claims a dead worker left behind: marked unknown, never resent."""
    stale = session.execute(
        select(OutreachJob).where(OutreachJob.status == "claimed", OutreachJob.claimed_at < now - CLAIM_TIMEOUT)
    ).scalars()
    count = 0
    for job in stale:
        job.status, job.reason = "unknown", "crashed_mid_send"
        _log(session, job, now, "cancelled", "crashed_mid_send", None, worker_id)
        logger.error("job %s (%s) was claimed by %s and never finished: not resent", job.id, job.kind, job.claimed_by)
        count += 1
    return count


def _claim(session: Session, now: dt.datetime, worker_id: str, batch: int) -> list[int]:
    query = (
        select(OutreachJob.id)
        .where(OutreachJob.status == "pending", OutreachJob.not_before <= now)
        .order_by(OutreachJob.not_before, OutreachJob.id)
        .limit(batch)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    ids = list(session.execute(query).scalars())
    if not ids:
        return []
    session.execute(
        update(OutreachJob)
        .where(OutreachJob.id.in_(ids), OutreachJob.status == "pending")
        .values(status="claimed", claimed_by=worker_id, claimed_at=now)
    )
    kinds = dict(session.execute(select(OutreachJob.id, OutreachJob.kind).where(OutreachJob.id.in_(ids))).all())
    # First notices first: nothing else may reach an account before its first notice.
    return sorted(ids, key=lambda i: (kinds[i] != "first_notice", i))


def judge(session: Session, job: OutreachJob, now: dt.datetime, config: OutreachConfig) -> _Verdict:
    """Whether this job goes now, and if not, why and until when. Pure reading."""
    account = session.get(Account, job.account_id)
    debtor = session.get(Debtor, job.debtor_id)
    creditor = session.get(Creditor, account.creditor_id)
    today = local_today(now, debtor.timezone)
    stale = _stale(session, job, account, today)
    if stale is not None:
        return _Verdict("cancelled", stale)
    if job.kind != "first_notice" and not _first_notice_sent(session, account.id):
        return _Verdict("deferred", "awaiting_first_notice", now + WAIT_FIRST_NOTICE)
    rules = rules_for(creditor.contact_window_start, creditor.contact_window_end, creditor.max_attempts_per_7_days)
    decision = contact.decide(now, _state(session, debtor, account, now, rules), rules)
    if decision.reason in PERMANENT:
        return _Verdict("cancelled", decision.reason)
    if not decision.allowed and decision.next_allowed_at is None:
        recheck = HOLD_RECHECK_NO_OPT_IN if decision.reason == contact.NO_OPT_IN else HOLD_RECHECK
        return _Verdict("held", decision.reason, now + recheck)
    if not decision.allowed:
        return _Verdict("deferred", decision.reason, decision.next_allowed_at)
    portfolio = config.for_creditor(creditor.code)
    template = portfolio.template(job.kind, debtor.language)
    values = variables(session, job, account, debtor, creditor, today)
    missing = [name for name in template.variables if not values.get(name, "").strip()]
    if missing:
        logger.error("job %s: no value for %s", job.id, ", ".join(missing))
        return _Verdict("cancelled", "missing_variable")
    return _Verdict("send", contact.ALLOWED, None, template, {n: values[n] for n in template.variables})


def _stale(session: Session, job: OutreachJob, account: Account, today: dt.date) -> Optional[str]:
    """Why the job no longer makes sense (paid, superseded, expired), if it does not."""
    if job.kind != "thank_you" and (account.status in ("paid", "closed") or account.balance <= 0):
        return "paid"
    if job.kind in EXPIRING:
        if today > job.due_on + dt.timedelta(days=EXPIRES_AFTER_DAYS):
            return "expired"
        newer = session.execute(
            select(func.count())
            .select_from(OutreachJob)
            .where(
                OutreachJob.account_id == account.id,
                OutreachJob.kind.in_(EXPIRING),
                OutreachJob.due_on > job.due_on,
                OutreachJob.due_on <= today,
            )
        ).scalar_one()
        if newer:
            return "superseded"
    if job.kind in ("pre_due", "due", "overdue") and _has_promise_or_plan(session, account.id):
        return "superseded"
    if job.kind in ("promise_reminder", "promise_broken"):
        promise = session.get(Promise, job.subject_id)
        if promise.status == "kept":
            return "paid"
        if promise.status == "cancelled" or (job.kind == "promise_reminder" and promise.status != "pending"):
            return "superseded"
    if job.kind == "installment_reminder":
        installment = session.get(Installment, job.subject_id)
        if installment.status == "paid":
            return "paid"
        if installment.status != "pending" or installment.plan.status != "active":
            return "superseded"
    return None


def _has_promise_or_plan(session: Session, account_id: int) -> bool:
    promise = session.execute(
        select(Promise.id).where(Promise.account_id == account_id, Promise.status == "pending").limit(1)
    ).first()
    plan_row = session.execute(
        select(PaymentPlan.id).where(PaymentPlan.account_id == account_id, PaymentPlan.status == "active").limit(1)
    ).first()
    return promise is not None or plan_row is not None


def _first_notice_sent(session: Session, account_id: int) -> bool:
    return (
        session.execute(
            select(OutreachJob.id).where(
                OutreachJob.account_id == account_id,
                OutreachJob.kind == "first_notice",
                OutreachJob.status == "sent",
            )
        ).first()
        is not None
    )


def _state(
    session: Session, debtor: Debtor, account: Account, now: dt.datetime, rules: contact.ContactRules
) -> contact.DebtorState:
    attempts = session.execute(
        select(OutreachJob.sent_at).where(
            OutreachJob.account_id == account.id,
            OutreachJob.status == "sent",
            OutreachJob.sent_at > now - rules.period,
        )
    ).scalars()
    escalated = session.execute(
        select(Escalation.id)
        .where(Escalation.phone == debtor.phone, Escalation.status.in_(("open", "assigned")))
        .limit(1)
    ).first()
    claim = session.execute(
        select(PaymentClaim.id).where(PaymentClaim.account_id == account.id, PaymentClaim.status == "pending").limit(1)
    ).first()
    opt_in = debtor.whatsapp_opt_in_at is not None and _aware(debtor.whatsapp_opt_in_at) <= now
    return contact.DebtorState(
        timezone=debtor.timezone,
        opted_out=lookups.is_opted_out(session, debtor.phone),
        wrong_number=debtor.wrong_number_at is not None,
        disputed=account.status == "disputed",
        open_escalation=escalated is not None,
        opt_in=opt_in,
        payment_claim_pending=claim is not None,
        attempts=tuple(_aware(t) for t in attempts),
    )


def variables(
    session: Session, job: OutreachJob, account: Account, debtor: Debtor, creditor: Creditor, today: dt.date
) -> dict[str, str]:
    """Every template variable this job can fill, formatted in the debtor's language."""
    lang = debtor.language

    def money(amount: Decimal) -> str:
        return format_money(amount, account.currency, lang)

    collector = creditor.collector_name
    if creditor.debt_collector_disclosure:
        collector = f"{collector}, {DISCLOSURE[lang]}"
    link = lookups.payment_link(creditor.payment_link_template, account.reference, account.balance)
    values = {
        "name": debtor.name.split()[0] if debtor.name.strip() else debtor.name,
        "collector": collector,
        "creditor": creditor.display_name,
        "reference": account.reference,
        "last4": account.last4,
        "amount": money(account.balance),
        "balance": money(account.balance),
        "as_of": format_date(account.balance_as_of, lang),
        "due_date": format_date(account.due_date, lang),
        "pay_how": _pay_how(creditor, account, link, lang),
        "complaints": creditor.complaints_contact or creditor.official_phone or creditor.official_email or "",
        "opt_out": OPT_OUT_LINE[lang],
    }
    if job.kind in ("promise_reminder", "promise_broken"):
        promise = session.get(Promise, job.subject_id)
        values.update(promise_amount=money(promise.amount), promise_date=format_date(promise.due_date, lang))
    if job.kind == "installment_reminder":
        installment = session.get(Installment, job.subject_id)
        values.update(
            installment_amount=money(installment.amount),
            installment_date=format_date(installment.due_date, lang),
            installment_number=str(installment.seq),
            installments_total=str(len(installment.plan.installments)),
        )
    if job.kind == "thank_you":
        payment = session.get(Payment, job.subject_id)
        values.update(payment_amount=money(payment.amount), payment_date=format_date(payment.paid_on, lang))
    return values


def _pay_how(creditor: Creditor, account: Account, link: Optional[str], lang: str) -> str:
    if link:
        return link
    if creditor.bank_reference:
        bank = f"{creditor.bank_name} " if creditor.bank_name else ""
        quote_it = "citando la referencia" if lang == "es" else "quoting reference"
        return f"{bank}{creditor.bank_reference}, {quote_it} {account.reference}"
    return creditor.payment_stores or creditor.official_phone or ""


def _settle(session: Session, job: OutreachJob, verdict: _Verdict, now: dt.datetime, worker_id: str) -> None:
    """Records a decision that is not a send. A job held again for the same
    reason is not logged again: the log shows when a block starts and ends,
    not every re-check."""
    repeated = verdict.outcome == "held" and job.reason == verdict.reason
    job.reason = verdict.reason
    job.claimed_by = job.claimed_at = None
    if verdict.outcome == "cancelled":
        job.status = "cancelled"
    else:
        job.status = "pending"
        job.not_before = verdict.next_at
    if not repeated:
        _log(session, job, now, verdict.outcome, verdict.reason, verdict.next_at, worker_id)


def _record(
    session: Session, job: OutreachJob, verdict: _Verdict, now: dt.datetime, worker_id: str, *, local: bool
) -> int:
    """The outbound message in the log; in local mode the job is sent with it."""
    assert verdict.template is not None and verdict.values is not None
    debtor = session.get(Debtor, job.debtor_id)
    message_id = messages.record_outbound(
        session, debtor.phone, verdict.template.render(verdict.values), template_sid=verdict.template.sid
    )
    job.template_sid, job.variables, job.message_id = verdict.template.sid, verdict.values, message_id
    if local:
        job.status, job.sent_at, job.reason = "sent", now, contact.ALLOWED
        _log(session, job, now, "sent", contact.ALLOWED, None, worker_id)
    return message_id


def _deliver(
    loop: asyncio.AbstractEventLoop,
    client: TwilioSender,
    database_url: Optional[str],
    job_id: int,
    message_id: int,
    verdict: _Verdict,
    now: dt.datetime,
    worker_id: str,
) -> str:
    """Sends one template through Twilio and records the outcome on the job and
    the message; returns it (sent, deferred for a retry, or cancelled)."""
    assert verdict.template is not None and verdict.values is not None
    with session_scope(database_url) as session:
        phone = session.get(Debtor, session.get(OutreachJob, job_id).debtor_id).phone
    try:
        result = loop.run_until_complete(
            client.send(
                phone,
                content_sid=verdict.template.sid,
                content_variables=verdict.template.content_variables(verdict.values),
            )
        )
        error: Optional[SendError] = None
    except SendError as exc:
        result, error = {}, exc
    with session_scope(database_url) as session:
        job = session.get(OutreachJob, job_id)
        if error is None:
            messages.mark_outbound(
                session, message_id, result.get("status") or "queued", provider_sid=result.get("sid")
            )
            job.status, job.sent_at, job.reason = "sent", now, contact.ALLOWED
            _log(session, job, now, "sent", contact.ALLOWED, None, worker_id)
            return "sent"
        messages.mark_outbound(session, message_id, "failed", error_code=str(error.code or error.status or ""))
        job.claimed_by = job.claimed_at = None
        if error.transient:
            job.status, job.reason, job.not_before = "pending", "send_failed", now + RETRY_AFTER
            _log(session, job, now, "deferred", "send_failed", job.not_before, worker_id)
        else:
            job.status, job.reason = "cancelled", "send_failed"
            _log(session, job, now, "cancelled", "send_failed", None, worker_id)
        logger.error("outreach job %s: Twilio refused the send: %s (code %s)", job_id, error, error.code)
        return "deferred" if error.transient else "cancelled"


def _mark_broken(session: Session, promise_id: int, now: dt.datetime) -> None:
    """The day after a promise that was not kept: it is broken, whether or not the message may go yet."""
    promise = session.get(Promise, promise_id)
    if promise.status == "pending":
        promise.status, promise.resolved_at = "broken", now


def _log(
    session: Session,
    job: OutreachJob,
    now: dt.datetime,
    outcome: str,
    reason: str,
    next_at: Optional[dt.datetime],
    worker_id: str,
) -> None:
    session.add(
        ContactDecisionLog(job_id=job.id, at=now, outcome=outcome, reason=reason, next_at=next_at, worker=worker_id)
    )
    logger.info(
        "outreach %s job %s (%s): %s%s", outcome, job.id, job.kind, reason, f" until {next_at}" if next_at else ""
    )


def dry_run(at: dt.datetime, *, database_url: Optional[str] = None, config_path: Optional[str] = None) -> list[str]:
    """What a pass at `at` would send, hold or cancel, and when the rest is due.

    Everything happens in one transaction that is rolled back: nothing is
    planned, claimed, sent or logged for real.
    """
    from sqlalchemy.orm import sessionmaker

    from cobrador.ledger.db import get_engine

    at = at.astimezone(_UTC)
    config = load_config(config_path)
    session = sessionmaker(bind=get_engine(database_url), future=True)()
    lines = []
    try:
        plan(session, at, config)
        jobs = session.execute(
            select(OutreachJob, Account.reference, Debtor.phone, Debtor.timezone)
            .join(Account, Account.id == OutreachJob.account_id)
            .join(Debtor, Debtor.id == OutreachJob.debtor_id)
            .where(OutreachJob.status == "pending")
            .order_by(OutreachJob.not_before, OutreachJob.id)
        ).all()
        for job, reference, phone, timezone in jobs:
            local = _aware(job.not_before).astimezone(planner_zone(timezone))
            head = f"{job.kind:<21} {reference:<16} ***{phone[-4:]}"
            if _aware(job.not_before) > at:
                lines.append(f"{head} scheduled {local:%Y-%m-%d %H:%M %Z}")
                continue
            verdict = judge(session, job, at, config)
            outcome = "would send" if verdict.outcome == "send" else verdict.outcome
            line = f"{head} {outcome}: {verdict.reason}"
            if verdict.next_at is not None:
                line += f", next {verdict.next_at.astimezone(planner_zone(timezone)):%Y-%m-%d %H:%M %Z}"
            lines.append(line)
    finally:
        session.rollback()
        session.close()
    return lines


def sent_messages(database_url: Optional[str] = None) -> list[SentRecord]:
    """Every business-initiated message sent, oldest first."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(OutreachJob, Account.reference, Creditor.code, Debtor.phone)
            .join(Account, Account.id == OutreachJob.account_id)
            .join(Creditor, Creditor.id == Account.creditor_id)
            .join(Debtor, Debtor.id == OutreachJob.debtor_id)
            .where(OutreachJob.status == "sent")
            .order_by(OutreachJob.sent_at, OutreachJob.id)
        ).all()
        return [
            SentRecord(ref, code, phone, job.kind, _aware(job.sent_at), job.template_sid, dict(job.variables or {}))
            for job, ref, code, phone in rows
        ]


def decisions(database_url: Optional[str] = None) -> list[DecisionRecord]:
    """Every contact decision, oldest first."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(ContactDecisionLog, OutreachJob.kind, Account.reference)
            .join(OutreachJob, OutreachJob.id == ContactDecisionLog.job_id)
            .join(Account, Account.id == OutreachJob.account_id)
            .order_by(ContactDecisionLog.at, ContactDecisionLog.id)
        ).all()
        return [
            DecisionRecord(
                ref, kind, _aware(log.at), log.outcome, log.reason, _aware(log.next_at) if log.next_at else None
            )
            for log, kind, ref in rows
        ]


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes for timezone-aware columns: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_UTC)


def _aware_or_none(moment: Optional[dt.datetime]) -> Optional[dt.datetime]:
    return None if moment is None else _aware(moment)
