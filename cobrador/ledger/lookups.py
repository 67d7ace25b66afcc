"""Read side of the ledger for the conversation: plain, frozen values.

Actions must not hold ORM objects across the unit of work that loaded them,
so every lookup here returns a frozen dataclass of plain values (`Decimal`
money, `date` calendar dates). The caller owns the `Session`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable, Optional
from urllib.parse import quote

from sqlalchemy import bindparam, exists, func, select
from sqlalchemy.orm import Session

from cobrador.ledger.models import (
    Account,
    Creditor,
    Debtor,
    Escalation,
    Installment,
    OptOut,
    PaymentClaim,
    PaymentPlan,
    Promise,
)
from cobrador.ledger.phones import try_e164

OPEN_ACCOUNT_STATUSES = ("active", "disputed")
OPEN_ESCALATION_STATUSES = ("open", "assigned")
DEFAULT_CHANNEL = "whatsapp"

# The statements every turn runs, built once: SQLAlchemy then compiles each
# once and finds it in its cache by a key computed once, instead of building
# the expression and its cache key again on every call (bench/conversation.py:
# a demo debtor's turn 3.7 -> 1.4 ms of CPU on SQLite). Values are bound at execution.
_DEBTOR_BY_PHONE = select(Debtor).where(Debtor.phone == bindparam("phone"))
_LAST4S = select(Account.last4).where(Account.debtor_id == bindparam("debtor_id")).order_by(Account.id)
_OPTED_OUT = select(
    exists().where(
        OptOut.phone == bindparam("phone"), OptOut.channel == bindparam("channel"), OptOut.revoked_at.is_(None)
    )
)
_PAUSED = select(
    exists().where(Escalation.phone == bindparam("phone"), Escalation.status.in_(OPEN_ESCALATION_STATUSES))
)
_OPEN_ACCOUNTS = (
    select(Account)
    .where(
        Account.debtor_id == bindparam("debtor_id"),
        Account.status.in_(OPEN_ACCOUNT_STATUSES),
        Account.balance > 0,
    )
    .order_by(Account.due_date, Account.id)
)
_ACCOUNT = select(Account).where(Account.id == bindparam("account_id"))
# Newest first, so if data ever holds two pending promises the latest wins.
_PENDING_PROMISES = (
    select(Promise.account_id, Promise.amount, Promise.due_date)
    .where(Promise.account_id.in_(bindparam("ids", expanding=True)), Promise.status == "pending")
    .order_by(Promise.id.desc())
)
_NEXT_INSTALLMENTS = (
    select(PaymentPlan.account_id, Installment.amount, Installment.due_date)
    .join(Installment, Installment.plan_id == PaymentPlan.id)
    .where(
        PaymentPlan.account_id.in_(bindparam("ids", expanding=True)),
        PaymentPlan.status == "active",
        Installment.status == "pending",
    )
    .order_by(PaymentPlan.id.desc(), Installment.seq)
)
_PENDING_CLAIMS = (
    select(PaymentClaim.account_id)
    .where(PaymentClaim.account_id.in_(bindparam("ids", expanding=True)), PaymentClaim.status == "pending")
    .distinct()
)
_CREDITORS = select(Creditor).where(Creditor.id.in_(bindparam("ids", expanding=True)))
_CREDITOR = select(Creditor).where(Creditor.id == bindparam("creditor_id"))
_FIRST_CREDITOR_ID = (
    select(Account.creditor_id).where(Account.debtor_id == bindparam("debtor_id")).order_by(Account.id).limit(1)
)


def phone_key(phone: str) -> str:
    """The form a phone number is stored under in the ledger.

    Accepts what Twilio sends (`whatsapp:+52...`) or any written form; a text
    that is not a valid number is kept as written (stripped), so it still
    matches itself.

    Args:
        phone: the phone number as received.

    Returns:
        The E.164 form when the number is valid, else the stripped text.
    """
    text = (phone or "").strip()
    return try_e164(text) or text


def _reference_key(reference: str) -> str:
    return "".join((reference or "").split()).upper()


@dataclass(frozen=True)
class CreditorView:
    """A creditor's identity, contact points, payment instructions and plan rules."""

    id: int
    code: str
    legal_name: str
    display_name: str
    collector_name: str
    country: str
    default_currency: str
    official_phone: Optional[str]
    official_email: Optional[str]
    official_website: Optional[str]
    complaints_contact: Optional[str]
    privacy_notice_url: Optional[str]
    payment_link_template: Optional[str]
    bank_name: Optional[str]
    bank_reference: Optional[str]
    payment_stores: Optional[str]
    plan_max_installments: int
    plan_min_installment: Decimal
    plan_frequencies: tuple[str, ...]
    settlement_discount_pct: Optional[Decimal]
    promise_horizon_days: int
    business_hours: Optional[str]
    debt_collector_disclosure: bool


@dataclass(frozen=True)
class AccountView:
    """One debt as the conversation talks about it.

    Attributes:
        pending_promise: (amount, due date) of the pending promise, if any.
        active_plan_next: (amount, due date) of the next pending instalment of
            the active plan, if any.
        pending_claim: the debtor says they paid and reconciliation is pending.
        payment_link_template: the creditor's template behind `payment_link`.
    """

    id: int
    reference: str
    last4: str
    product: Optional[str]
    creditor_id: int
    creditor_name: str
    original_amount: Decimal
    balance: Decimal
    currency: str
    due_date: dt.date
    balance_as_of: dt.date
    status: str
    pending_promise: Optional[tuple[Decimal, dt.date]]
    active_plan_next: Optional[tuple[Decimal, dt.date]]
    pending_claim: bool
    payment_link_template: Optional[str] = None

    def days_overdue(self, today: dt.date) -> int:
        """Days since the due date as of `today`; 0 if not yet due.

        Args:
            today: the date in the debtor's local calendar.

        Returns:
            A non-negative number of days.
        """
        return max(0, (today - self.due_date).days)

    @property
    def payment_link(self) -> Optional[str]:
        """The creditor's payment link for this account, or `None` if it has none.

        `{reference}` is replaced by the URL-quoted account reference and
        `{amount}` (if the template uses it) by the balance with two decimals.
        """
        return payment_link(self.payment_link_template, self.reference, self.balance)


def payment_link(template: Optional[str], reference: str, balance: Decimal) -> Optional[str]:
    """A creditor's payment link for one account: `{reference}` URL-quoted,
    `{amount}` the balance with two decimals; None without a template."""
    if not template:
        return None
    return template.replace("{reference}", quote(reference, safe="")).replace("{amount}", f"{balance:.2f}")


@dataclass(frozen=True)
class DebtorView:
    """A person behind a phone number and the state that gates contact.

    Attributes:
        birth_year: partial identifier for right-party verification.
        last4s: last four digits of every account, for verification.
        wrong_number: the person said the number is not the debtor's.
        opted_out: an active WhatsApp opt-out exists for the phone.
        paused: an open or assigned escalation exists for the phone.
    """

    id: int
    phone: str
    name: str
    language: str
    timezone: str
    birth_year: Optional[int]
    last4s: tuple[str, ...]
    wrong_number: bool
    opted_out: bool
    paused: bool


def _creditor_view(creditor: Creditor) -> CreditorView:
    return CreditorView(
        id=creditor.id,
        code=creditor.code,
        legal_name=creditor.legal_name,
        display_name=creditor.display_name,
        collector_name=creditor.collector_name,
        country=creditor.country,
        default_currency=creditor.default_currency,
        official_phone=creditor.official_phone,
        official_email=creditor.official_email,
        official_website=creditor.official_website,
        complaints_contact=creditor.complaints_contact,
        privacy_notice_url=creditor.privacy_notice_url,
        payment_link_template=creditor.payment_link_template,
        bank_name=creditor.bank_name,
        bank_reference=creditor.bank_reference,
        payment_stores=creditor.payment_stores,
        plan_max_installments=creditor.plan_max_installments,
        plan_min_installment=creditor.plan_min_installment,
        plan_frequencies=tuple(f.strip() for f in (creditor.plan_frequencies or "").split(",") if f.strip()),
        settlement_discount_pct=creditor.settlement_discount_pct,
        promise_horizon_days=creditor.promise_horizon_days,
        business_hours=creditor.business_hours,
        debt_collector_disclosure=bool(creditor.debt_collector_disclosure),
    )


def creditor_view(session: Session, creditor_id: int) -> CreditorView:
    """The creditor with id `creditor_id`.

    Args:
        session: an open unit of work.
        creditor_id: primary key of the creditor.

    Returns:
        The creditor's configuration as plain values.

    Raises:
        LookupError: if no creditor has that id.
    """
    creditor = session.execute(_CREDITOR, {"creditor_id": creditor_id}).scalar_one_or_none()
    if creditor is None:
        raise LookupError(f"no creditor with id {creditor_id}")
    return _creditor_view(creditor)


def _account_views(session: Session, accounts: list[Account]) -> list[AccountView]:
    """Views of `accounts` in the given order, with three batched side queries."""
    ids = [account.id for account in accounts]
    if not ids:
        return []
    promises: dict[int, tuple[Decimal, dt.date]] = {}
    for account_id, amount, due in session.execute(_PENDING_PROMISES, {"ids": ids}):
        promises.setdefault(account_id, (amount, due))
    next_installments: dict[int, tuple[Decimal, dt.date]] = {}
    for account_id, amount, due in session.execute(_NEXT_INSTALLMENTS, {"ids": ids}):
        next_installments.setdefault(account_id, (amount, due))
    claimed = set(session.execute(_PENDING_CLAIMS, {"ids": ids}).scalars())
    creditors = {
        creditor.id: creditor
        for creditor in session.execute(
            _CREDITORS, {"ids": sorted({account.creditor_id for account in accounts})}
        ).scalars()
    }
    views = []
    for account in accounts:
        creditor = creditors[account.creditor_id]
        views.append(
            AccountView(
                id=account.id,
                reference=account.reference,
                last4=account.last4,
                product=account.product,
                creditor_id=account.creditor_id,
                creditor_name=creditor.display_name,
                original_amount=account.original_amount,
                balance=account.balance,
                currency=account.currency,
                due_date=account.due_date,
                balance_as_of=account.balance_as_of,
                status=account.status,
                pending_promise=promises.get(account.id),
                active_plan_next=next_installments.get(account.id),
                pending_claim=account.id in claimed,
                payment_link_template=creditor.payment_link_template,
            )
        )
    return views


def account_view(session: Session, account_id: int) -> Optional[AccountView]:
    """The account with id `account_id`, whatever its status, or `None`.

    Args:
        session: an open unit of work.
        account_id: primary key of the account.

    Returns:
        The account as plain values.
    """
    account = session.execute(_ACCOUNT, {"account_id": account_id}).scalar_one_or_none()
    if account is None:
        return None
    return _account_views(session, [account])[0]


def open_accounts(session: Session, debtor_id: int) -> list[AccountView]:
    """The debtor's accounts that still have something to talk about.

    Args:
        session: an open unit of work.
        debtor_id: primary key of the debtor.

    Returns:
        Accounts with status active or disputed and a positive balance,
        oldest due date first (ties by id).
    """
    accounts = list(session.execute(_OPEN_ACCOUNTS, {"debtor_id": debtor_id}).scalars())
    return _account_views(session, accounts)


def is_paused(session: Session, phone: str) -> bool:
    """Whether a person is handling this phone (an open or assigned escalation).

    Args:
        session: an open unit of work.
        phone: the phone number (any form `phone_key` accepts).

    Returns:
        True while the bot must stay quiet and leave the conversation to an agent.
    """
    return bool(session.execute(_PAUSED, {"phone": phone_key(phone)}).scalar())


def open_escalation(session: Session, phone: str) -> Optional[tuple[int, str]]:
    """The newest open or assigned escalation for the phone.

    Args:
        session: an open unit of work.
        phone: the phone number (any form `phone_key` accepts).

    Returns:
        (id, case number), or `None` if nothing is open. The case number is
        empty only for an escalation created outside `commands.escalate`
        without one.
    """
    row = session.execute(
        select(Escalation.id, Escalation.case_number)
        .where(Escalation.phone == phone_key(phone), Escalation.status.in_(OPEN_ESCALATION_STATUSES))
        .order_by(Escalation.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    return row.id, row.case_number or ""


def _has_active_opt_out(session: Session, phone: str, channel: str = DEFAULT_CHANNEL) -> bool:
    return bool(session.execute(_OPTED_OUT, {"phone": phone, "channel": channel}).scalar())


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _debtor_view(session: Session, debtor: Debtor) -> DebtorView:
    last4s = session.execute(_LAST4S, {"debtor_id": debtor.id}).scalars()
    return DebtorView(
        id=debtor.id,
        phone=debtor.phone,
        name=debtor.name,
        language=debtor.language,
        timezone=debtor.timezone,
        birth_year=debtor.birth_year,
        last4s=_unique(last4s),
        wrong_number=debtor.wrong_number_at is not None,
        opted_out=_has_active_opt_out(session, debtor.phone),
        paused=is_paused(session, debtor.phone),
    )


def find_debtor(session: Session, phone: str) -> Optional[DebtorView]:
    """The debtor whose WhatsApp number is `phone`.

    Args:
        session: an open unit of work.
        phone: the phone number (E.164, or `whatsapp:+52...`, or any form
            `phone_key` accepts).

    Returns:
        The debtor, or `None` if the number is not in the ledger.
    """
    debtor = session.execute(_DEBTOR_BY_PHONE, {"phone": phone_key(phone)}).scalar_one_or_none()
    return None if debtor is None else _debtor_view(session, debtor)


def debtor_by_account_reference(session: Session, reference: str) -> Optional[DebtorView]:
    """The debtor owning the account with this reference, as the person typed it.

    Case and spaces are ignored ("am 100231" finds "AM-100231"). References
    are unique per creditor only; if the same reference belongs to different
    debtors at different creditors the answer is ambiguous and `None`.

    Args:
        session: an open unit of work.
        reference: the account reference as written.

    Returns:
        The debtor, or `None` if no account (or more than one debtor) matches.
    """
    key = _reference_key(reference)
    if not key:
        return None
    debtor_ids = set(
        session.execute(
            select(Account.debtor_id).where(func.upper(func.replace(Account.reference, " ", "")) == key)
        ).scalars()
    )
    if len(debtor_ids) != 1:
        return None
    debtor = session.execute(select(Debtor).where(Debtor.id == debtor_ids.pop())).scalar_one()
    return _debtor_view(session, debtor)


def debtor_by_id(session: Session, debtor_id: int) -> Optional[DebtorView]:
    """The debtor with this id, or `None`."""
    debtor = session.get(Debtor, debtor_id)
    return None if debtor is None else _debtor_view(session, debtor)


def first_creditor_id(session: Session, debtor_id: int) -> Optional[int]:
    """The creditor of the debtor's oldest account: who the conversation is for."""
    return session.execute(_FIRST_CREDITOR_ID, {"debtor_id": debtor_id}).scalar_one_or_none()


def is_opted_out(session: Session, phone: str, channel: str = DEFAULT_CHANNEL) -> bool:
    """Whether the number asked not to be contacted on `channel` (and has not revoked it)."""
    return _has_active_opt_out(session, phone_key(phone), channel)
