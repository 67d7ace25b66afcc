"""Write side of the ledger for the conversation: what was agreed or asked.

Every command takes the caller's open `Session` (the caller owns the unit of
work and commits), validates its input before touching anything, so a
`LedgerError` leaves the session as it was, and flushes, so the ids it
returns exist. Money is `Decimal` (or `int`) in cents; a float is refused.

Policy (how far a promise may be, how many instalments a creditor allows)
lives in `cobrador.policy`; these commands enforce only what keeps the ledger
true: amounts against balances, plans that sum to the balance, one pending
promise and one active plan per account, one open case per question, and
one promise, plan or payment claim per debtor message (its turn may run twice).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from cobrador.ledger.lookups import OPEN_ESCALATION_STATUSES, phone_key
from cobrador.ledger.models import (
    ESCALATION_REASONS,
    FREQUENCIES,
    LANGUAGES,
    Account,
    Debtor,
    Escalation,
    Installment,
    OptOut,
    PaymentClaim,
    PaymentPlan,
    Promise,
    utcnow,
)

CASE_PREFIXES = {
    "dispute": "DSP",
    "complaint": "CMP",
    "hardship": "HRD",
    "request_agent": "AGT",
    "verification_failed": "VER",
    "fallback": "FBK",
    "other": "ESC",
}
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")
RESOLVED_STATUSES = ("resolved", "closed")
OPT_OUT_KEYWORD_LENGTH = 200
CLAIM_REFERENCE_LENGTH = 120


class LedgerError(ValueError):
    """The command's input is invalid; nothing was written."""


def case_number(reason: str, escalation_id: int) -> str:
    """The case number a debtor is told, e.g. `DSP-000042`.

    Args:
        reason: one of `ESCALATION_REASONS`.
        escalation_id: primary key of the escalation (makes it unique).

    Returns:
        The reason's prefix and the id zero-padded to six digits.
    """
    return f"{CASE_PREFIXES[reason]}-{escalation_id:06d}"


def _money(value: object, what: str) -> Decimal:
    # bool is an int; float would bring binary rounding into money.
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise LedgerError(f"{what} must be a Decimal, not {type(value).__name__}")
    amount = Decimal(value)
    if not amount.is_finite() or abs(amount) > MAX_AMOUNT:
        raise LedgerError(f"{what} {amount} is not a valid amount")
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation as exc:
        raise LedgerError(f"{what} {amount} is not a valid amount") from exc
    if cents != amount:
        raise LedgerError(f"{what} {amount} has fractions of a cent")
    return cents


def _date(value: object, what: str) -> dt.date:
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise LedgerError(f"{what} must be a date, not {type(value).__name__}")
    return value


def _phone(phone: str) -> str:
    key = phone_key(phone)
    if not key:
        raise LedgerError("phone is required")
    if len(key) > 20:
        raise LedgerError(f"phone {key!r} is too long")
    return key


def _account(session: Session, account_id: int, *, lock: bool = False) -> Account:
    query = select(Account).where(Account.id == account_id)
    if lock:
        # Serialises concurrent agreements on one account (PostgreSQL; SQLite
        # already serialises writers) and reads the balance fresh.
        query = query.with_for_update().execution_options(populate_existing=True)
    account = session.execute(query).scalar_one_or_none()
    if account is None:
        raise LedgerError(f"no account with id {account_id}")
    return account


def _debtor_id_for_phone(session: Session, phone: str) -> Optional[int]:
    return session.execute(select(Debtor.id).where(Debtor.phone == phone)).scalar_one_or_none()


def _require_active(account: Account, what: str) -> None:
    if account.status != "active":
        raise LedgerError(f"cannot record a {what} on account {account.reference}: it is {account.status}")


def _cancel_pending_promises(session: Session, account_id: int) -> None:
    now = utcnow()
    for promise in session.execute(
        select(Promise).where(Promise.account_id == account_id, Promise.status == "pending")
    ).scalars():
        promise.status = "cancelled"
        promise.resolved_at = now


def _cancel_active_plans(session: Session, account_id: int) -> None:
    for plan in session.execute(
        select(PaymentPlan).where(PaymentPlan.account_id == account_id, PaymentPlan.status == "active")
    ).scalars():
        plan.status = "cancelled"


def _recorded_from(session: Session, model: Any, account_id: int, source_message_sid: Optional[str]) -> Optional[int]:
    """The id of the `model` row (promise, plan, payment claim) already recorded
    on the account from that debtor message, or None. A message's turn can run
    twice: Rasa died before saving it, or gave up waiting for an action that
    then committed, and the message was answered again after the restart. The
    message still yields one promise, one plan or one claim."""
    if not source_message_sid:
        return None
    return session.execute(
        select(model.id)
        .where(model.account_id == account_id, model.source_message_sid == source_message_sid)
        .order_by(model.id)
        .limit(1)
    ).scalar_one_or_none()


def record_promise(
    session: Session,
    account_id: int,
    amount: Decimal,
    due_date: dt.date,
    *,
    source_message_sid: Optional[str] = None,
    created_by: str = "bot",
) -> int:
    """Records a promise to pay `amount` by `due_date`; supersedes any pending one.

    Args:
        session: an open unit of work.
        account_id: the account the promise is for.
        amount: positive, in cents, at most the balance.
        due_date: the promised date in the debtor's calendar.
        source_message_sid: provider id of the debtor message it came from.
        created_by: `bot` or `agent:<id>`.

    Returns:
        The new promise's id; if a promise was already recorded on the account
        from `source_message_sid` (the message's turn ran again), that one's
        id, and nothing changes.

    Raises:
        LedgerError: unknown account, account not active, or an amount that
            is not positive, not in cents or above the balance.
    """
    amount = _money(amount, "promise amount")
    due_date = _date(due_date, "promise due_date")
    recorded = _recorded_from(session, Promise, account_id, source_message_sid)
    if recorded is not None:
        return recorded
    account = _account(session, account_id, lock=True)
    _require_active(account, "promise")
    if amount <= 0:
        raise LedgerError(f"promise amount must be positive, got {amount}")
    if amount > account.balance:
        raise LedgerError(f"promise amount {amount} is above the balance {account.balance} of {account.reference}")
    _cancel_pending_promises(session, account.id)
    promise = Promise(
        account_id=account.id,
        amount=amount,
        due_date=due_date,
        status="pending",
        source_message_sid=source_message_sid,
        created_by=created_by,
    )
    session.add(promise)
    session.flush()
    return promise.id


def record_plan(
    session: Session,
    account_id: int,
    frequency: str,
    amounts: Sequence[Decimal],
    dates: Sequence[dt.date],
    *,
    discount: Decimal = Decimal("0"),
    source_message_sid: Optional[str] = None,
    created_by: str = "bot",
) -> int:
    """Records a payment plan; cancels any other active plan and pending promise.

    Args:
        session: an open unit of work.
        account_id: the account the plan is for.
        frequency: one of weekly, biweekly, monthly.
        amounts: instalment amounts, positive, in cents.
        dates: instalment due dates, strictly increasing, one per amount.
        discount: settlement discount granted; `sum(amounts) + discount` must
            equal the balance exactly.
        source_message_sid: provider id of the debtor message it came from.
        created_by: `bot` or `agent:<id>`.

    Returns:
        The new plan's id; its instalments are numbered 1..n. If a plan was
        already recorded on the account from `source_message_sid` (the
        message's turn ran again), that one's id, and nothing changes.

    Raises:
        LedgerError: unknown account, account not active, unknown frequency,
            mismatched or empty schedule, dates not strictly increasing, an
            amount not positive or not in cents, or a total that does not
            match the balance.
    """
    if frequency not in FREQUENCIES:
        raise LedgerError(f"frequency must be one of {FREQUENCIES}, got {frequency!r}")
    amounts = [_money(amount, f"instalment {seq} amount") for seq, amount in enumerate(amounts, start=1)]
    dates = [_date(date, f"instalment {seq} date") for seq, date in enumerate(dates, start=1)]
    if not amounts or len(amounts) != len(dates):
        raise LedgerError(
            f"a plan needs at least one instalment and one date per amount ({len(amounts)} amounts, {len(dates)} dates)"
        )
    for seq, amount in enumerate(amounts, start=1):
        if amount <= 0:
            raise LedgerError(f"instalment {seq} amount must be positive, got {amount}")
    for seq in range(1, len(dates)):
        if dates[seq] <= dates[seq - 1]:
            raise LedgerError(f"instalment dates must be strictly increasing ({dates[seq - 1]} then {dates[seq]})")
    discount = _money(discount, "discount")
    if discount < 0:
        raise LedgerError(f"discount must not be negative, got {discount}")
    recorded = _recorded_from(session, PaymentPlan, account_id, source_message_sid)
    if recorded is not None:
        return recorded
    account = _account(session, account_id, lock=True)
    _require_active(account, "payment plan")
    total = sum(amounts, Decimal("0.00"))
    if total + discount != account.balance:
        raise LedgerError(
            f"plan total {total} plus discount {discount} must equal the balance "
            f"{account.balance} of {account.reference}"
        )
    _cancel_active_plans(session, account.id)
    _cancel_pending_promises(session, account.id)
    plan = PaymentPlan(
        account_id=account.id,
        total_amount=total,
        discount_amount=discount,
        frequency=frequency,
        status="active",
        source_message_sid=source_message_sid,
        created_by=created_by,
    )
    for seq, (amount, date) in enumerate(zip(amounts, dates, strict=True), start=1):
        plan.installments.append(Installment(seq=seq, due_date=date, amount=amount, status="pending"))
    session.add(plan)
    session.flush()
    return plan.id


def record_payment_claim(
    session: Session,
    account_id: int,
    *,
    amount: Optional[Decimal] = None,
    paid_on: Optional[dt.date] = None,
    reference: Optional[str] = None,
    media_urls: Sequence[str] = (),
    debtor_words: Optional[str] = None,
    source_message_sid: Optional[str] = None,
) -> int:
    """Records that the debtor says they paid; the balance does not move.

    Args:
        session: an open unit of work.
        account_id: the account the payment was for.
        amount: the amount they say they paid, if they said it.
        paid_on: the date they say they paid, if they said it.
        reference: the payment reference (e.g. "SPEI 7731"), if given.
        media_urls: URLs of receipts they sent.
        debtor_words: what they wrote, verbatim.
        source_message_sid: provider id of the debtor message it came from.

    Returns:
        The new claim's id (status `pending`); if a claim was already recorded
        on the account from `source_message_sid` (the message's turn ran
        again), that one's id, and nothing changes.

    Raises:
        LedgerError: unknown account, an amount not positive or not in cents,
            a reference over 120 characters, or a media URL that is not text.
    """
    if amount is not None:
        amount = _money(amount, "claimed amount")
        if amount <= 0:
            raise LedgerError(f"claimed amount must be positive, got {amount}")
    if paid_on is not None:
        paid_on = _date(paid_on, "paid_on")
    if reference is not None:
        reference = reference.strip() or None
    if reference is not None and len(reference) > CLAIM_REFERENCE_LENGTH:
        raise LedgerError(f"payment reference is longer than {CLAIM_REFERENCE_LENGTH} characters")
    if isinstance(media_urls, str):
        raise LedgerError("media_urls must be a sequence of URLs, not one string")
    urls = list(media_urls)
    if any(not isinstance(url, str) or not url for url in urls):
        raise LedgerError("every media URL must be a non-empty string")
    recorded = _recorded_from(session, PaymentClaim, account_id, source_message_sid)
    if recorded is not None:
        return recorded
    account = _account(session, account_id)
    claim = PaymentClaim(
        account_id=account.id,
        amount=amount,
        paid_on=paid_on,
        reference=reference,
        media_urls=urls,
        debtor_words=debtor_words,
        source_message_sid=source_message_sid,
        status="pending",
    )
    session.add(claim)
    session.flush()
    return claim.id


def _append(summary: str, addition: str) -> str:
    if not addition or summary == addition or summary.endswith("\n" + addition):
        return summary
    return f"{summary}\n{addition}" if summary else addition


def escalate(
    session: Session,
    phone: str,
    reason: str,
    summary: str,
    *,
    debtor_id: Optional[int] = None,
    account_id: Optional[int] = None,
) -> tuple[int, str]:
    """Hands the conversation to a person; the bot pauses while it is open.

    If an open or assigned escalation already exists for the phone with the
    same reason and account, the summary is appended to it and it is
    returned, so the debtor keeps one case number per question.

    Args:
        session: an open unit of work.
        phone: the phone number of the conversation.
        reason: one of `ESCALATION_REASONS`.
        summary: why, in the debtor's words where possible.
        debtor_id: the debtor, if known; otherwise the account's debtor, or
            the debtor with that phone.
        account_id: the account it is about, if any.

    Returns:
        (id, case number), e.g. `(42, "DSP-000042")`.

    Raises:
        LedgerError: unknown reason, empty phone, unknown account or debtor.
    """
    if reason not in ESCALATION_REASONS:
        raise LedgerError(f"reason must be one of {ESCALATION_REASONS}, got {reason!r}")
    key = _phone(phone)
    summary = (summary or "").strip()
    account = _account(session, account_id) if account_id is not None else None
    if debtor_id is not None:
        if session.execute(select(Debtor.id).where(Debtor.id == debtor_id)).scalar_one_or_none() is None:
            raise LedgerError(f"no debtor with id {debtor_id}")
    elif account is not None:
        debtor_id = account.debtor_id
    else:
        debtor_id = _debtor_id_for_phone(session, key)

    same_account = Escalation.account_id.is_(None) if account_id is None else Escalation.account_id == account_id
    existing = session.execute(
        select(Escalation)
        .where(
            Escalation.phone == key,
            Escalation.reason == reason,
            same_account,
            Escalation.status.in_(OPEN_ESCALATION_STATUSES),
        )
        .order_by(Escalation.id)
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        existing.summary = _append(existing.summary or "", summary)
        if existing.debtor_id is None:
            existing.debtor_id = debtor_id
        if not existing.case_number:
            existing.case_number = case_number(reason, existing.id)
        session.flush()
        return existing.id, existing.case_number

    escalation = Escalation(
        debtor_id=debtor_id,
        phone=key,
        account_id=account_id,
        reason=reason,
        summary=summary,
        status="open",
    )
    session.add(escalation)
    session.flush()
    escalation.case_number = case_number(reason, escalation.id)
    session.flush()
    return escalation.id, escalation.case_number


def open_dispute(session: Session, account_id: int, words: str, phone: str) -> tuple[int, str]:
    """Opens a dispute: collection on the account freezes until a person decides.

    An active account becomes `disputed`; a paid or closed one keeps its
    status, but the dispute is still escalated so it is never lost.

    Args:
        session: an open unit of work.
        account_id: the disputed account.
        words: what the debtor said, verbatim (the case summary).
        phone: the phone number of the conversation.

    Returns:
        (id, case number) of the `dispute` escalation, e.g. `(7, "DSP-000007")`;
        disputing the same account again returns the same open case.

    Raises:
        LedgerError: unknown account or empty phone.
    """
    key = _phone(phone)
    account = _account(session, account_id, lock=True)
    if account.status == "active":
        account.status = "disputed"
    return escalate(session, key, "dispute", words, debtor_id=account.debtor_id, account_id=account.id)


def record_opt_out(
    session: Session,
    phone: str,
    *,
    keyword: Optional[str] = None,
    debtor_id: Optional[int] = None,
    channel: str = "whatsapp",
) -> tuple[int, bool]:
    """Records a request to stop contact on a channel; idempotent.

    Args:
        session: an open unit of work.
        phone: the phone number that asked.
        keyword: what they wrote (kept to its first 200 characters).
        debtor_id: the debtor, if known; otherwise the debtor with that phone.
        channel: the channel to stop (default WhatsApp).

    Returns:
        (id, created_now): the active opt-out, and whether this call created it.

    Raises:
        LedgerError: empty phone or channel.
    """
    key = _phone(phone)
    channel = (channel or "").strip()
    if not channel or len(channel) > 20:
        raise LedgerError(f"channel must be 1-20 characters, got {channel!r}")
    existing = session.execute(
        select(OptOut.id)
        .where(OptOut.phone == key, OptOut.channel == channel, OptOut.revoked_at.is_(None))
        .order_by(OptOut.id)
        .limit(1)
    ).scalar_one_or_none()
    if existing is not None:
        return existing, False
    if debtor_id is None:
        debtor_id = _debtor_id_for_phone(session, key)
    opt_out = OptOut(
        phone=key,
        debtor_id=debtor_id,
        channel=channel,
        keyword=keyword[:OPT_OUT_KEYWORD_LENGTH] if keyword else None,
    )
    session.add(opt_out)
    session.flush()
    return opt_out.id, True


def mark_wrong_number(session: Session, phone: str) -> bool:
    """Marks the debtor with this phone as not reachable there (contact stops).

    The first time is kept: marking again does not move `wrong_number_at`.

    Args:
        session: an open unit of work.
        phone: the phone number whose holder said it is not the debtor.

    Returns:
        Whether a debtor has that phone (and is now marked).
    """
    key = phone_key(phone)
    debtor = session.execute(select(Debtor).where(Debtor.phone == key)).scalar_one_or_none()
    if debtor is None:
        return False
    if debtor.wrong_number_at is None:
        debtor.wrong_number_at = utcnow()
        session.flush()
    return True


def set_language(session: Session, debtor_id: int, language: str) -> None:
    """Sets the language the bot writes to the debtor in.

    Args:
        session: an open unit of work.
        debtor_id: the debtor.
        language: `es` or `en` (case-insensitive).

    Raises:
        LedgerError: unknown debtor or unsupported language.
    """
    code = (language or "").strip().lower()
    if code not in LANGUAGES:
        raise LedgerError(f"language must be one of {LANGUAGES}, got {language!r}")
    debtor = session.execute(select(Debtor).where(Debtor.id == debtor_id)).scalar_one_or_none()
    if debtor is None:
        raise LedgerError(f"no debtor with id {debtor_id}")
    if debtor.language != code:
        debtor.language = code
        session.flush()


def resolve_escalation(session: Session, escalation_id: int, *, status: str = "resolved") -> None:
    """Ends an escalation; the bot may talk to the phone again if none is left open.

    Resolving an account's dispute does not change the account's status: the
    agent decides whether it returns to `active` or is closed.

    Args:
        session: an open unit of work.
        escalation_id: the escalation.
        status: `resolved` or `closed`. A resolved case may later be closed;
            a closed one is final. Repeating the same status changes nothing.

    Raises:
        LedgerError: unknown escalation, invalid status, or reopening a
            closed case as resolved.
    """
    if status not in RESOLVED_STATUSES:
        raise LedgerError(f"status must be one of {RESOLVED_STATUSES}, got {status!r}")
    escalation = session.execute(select(Escalation).where(Escalation.id == escalation_id)).scalar_one_or_none()
    if escalation is None:
        raise LedgerError(f"no escalation with id {escalation_id}")
    if escalation.status == status:
        return
    if escalation.status == "closed":
        raise LedgerError(f"escalation {escalation.case_number or escalation_id} is closed")
    escalation.status = status
    if escalation.resolved_at is None:
        escalation.resolved_at = utcnow()
    session.flush()
