"""The collections ledger: the truth about debtors, debts and what was agreed.

Money is `Numeric(14, 2)` / `Decimal`, never float. Times are stored in UTC
(`DateTime(timezone=True)`); calendar dates (due dates, promised dates) are
plain `Date` values in the debtor's local calendar.
"""

from __future__ import annotations

import datetime as dt
import warnings
from decimal import Decimal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import declarative_base, relationship

# Stable constraint names, so Alembic migrations are the same on SQLite and
# PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
Base = declarative_base(metadata=MetaData(naming_convention=NAMING))

Money = Numeric(14, 2, asdecimal=True)

# SQLite stores NUMERIC as a float64. Every Numeric(14, 2) value has at most 14
# significant digits, fewer than the 15 a float64 round-trips exactly, and
# SQLAlchemy reads it back through "%.2f", so amounts come back to the cent
# (tests/cobrador/ledger/test_models.py proves it at the extremes). PostgreSQL
# stores NUMERIC exactly.
warnings.filterwarnings("ignore", message=r"Dialect sqlite\+pysqlite does \*not\* support Decimal")


def utcnow() -> dt.datetime:
    """Aware UTC now; the only clock the ledger uses for its own timestamps."""
    return dt.datetime.now(dt.timezone.utc)


def _enum(*values: str, name: str) -> Enum:
    # VARCHAR + CHECK instead of a native PostgreSQL enum: adding a value is
    # then a plain migration on both databases.
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


LANGUAGES = ("es", "en")
CURRENCIES = ("MXN", "USD")
FREQUENCIES = ("weekly", "biweekly", "monthly")


class Creditor(Base):
    """A portfolio owner: the creditor the debts are owed to, and its rules.

    Everything a collections team tunes per portfolio lives here, so it changes
    with `python -m cobrador creditors load FILE.yml`, not with code.

    Columns of note:
        payment_link_template: URL with `{reference}` / `{amount}` placeholders.
        bank_reference: e.g. a CLABE and the instruction to quote the account
            reference; payments go to the creditor only.
        plan_frequencies: comma-separated subset of weekly, biweekly, monthly.
        settlement_discount_pct: optional discount offered for paying the whole
            balance at once (e.g. 10.00 = 10 %).
        promise_horizon_days: the furthest a promise may be from today; beyond
            it the bot offers a plan instead.
        contact_window_start / _end: "HH:MM" in the debtor's local time.
        max_attempts_per_7_days: contact-frequency cap per account.
    """

    __tablename__ = "creditors"

    id = Column(Integer, primary_key=True)
    code = Column(String(40), nullable=False, unique=True)
    legal_name = Column(String(200), nullable=False)
    display_name = Column(String(120), nullable=False)
    collector_name = Column(String(200), nullable=False)
    country = Column(String(2), nullable=False, default="MX")
    default_currency = Column(_enum(*CURRENCIES, name="currency"), nullable=False, default="MXN")
    official_phone = Column(String(40))
    official_email = Column(String(200))
    official_website = Column(String(200))
    complaints_contact = Column(Text)
    privacy_notice_url = Column(String(300))
    payment_link_template = Column(String(300))
    bank_name = Column(String(120))
    bank_reference = Column(String(200))
    payment_stores = Column(String(300))
    plan_max_installments = Column(Integer, nullable=False, default=6)
    plan_min_installment = Column(Money, nullable=False, default=Decimal("200.00"))
    plan_frequencies = Column(String(60), nullable=False, default="weekly,biweekly,monthly")
    settlement_discount_pct = Column(Numeric(5, 2))
    promise_horizon_days = Column(Integer, nullable=False, default=15)
    contact_window_start = Column(String(5), nullable=False, default="07:00")
    contact_window_end = Column(String(5), nullable=False, default="22:00")
    max_attempts_per_7_days = Column(Integer, nullable=False, default=7)
    debt_collector_disclosure = Column(Boolean, nullable=False, default=False)
    business_hours = Column(String(200))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    accounts = relationship("Account", back_populates="creditor")

    __table_args__ = (
        CheckConstraint("plan_max_installments >= 1", name="plan_max_installments"),
        CheckConstraint("promise_horizon_days >= 0", name="promise_horizon_days"),
    )


class Debtor(Base):
    """A person we may write to, keyed by WhatsApp phone (E.164).

    Columns of note:
        birth_year: a partial identifier used for right-party verification;
            never a full date of birth.
        whatsapp_opt_in_at: when the person agreed to receive WhatsApp messages;
            without it no business-initiated message may be sent.
        wrong_number_at: set when the person said it is not them; contact stops.
    """

    __tablename__ = "debtors"

    id = Column(Integer, primary_key=True)
    phone = Column(String(20), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    language = Column(_enum(*LANGUAGES, name="language"), nullable=False, default="es")
    timezone = Column(String(64), nullable=False, default="America/Mexico_City")
    birth_year = Column(Integer)
    whatsapp_opt_in_at = Column(DateTime(timezone=True))
    wrong_number_at = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    accounts = relationship("Account", back_populates="debtor", order_by="Account.id")
    escalations = relationship("Escalation", back_populates="debtor", order_by="Escalation.id")


ACCOUNT_STATUSES = ("active", "disputed", "paid", "closed")


class Account(Base):
    """One debt: what a debtor owes one creditor under one reference.

    Columns of note:
        reference: the creditor's account reference, unique per creditor; the
            import upserts on (creditor, reference).
        last4: last four digits of the account number, a partial identifier
            the debtor can give to verify identity.
        balance_as_of: the date the balance was calculated (the first message
            must state it).
        status: `disputed` freezes collection until the dispute is resolved.
    """

    __tablename__ = "accounts"

    id = Column(Integer, primary_key=True)
    creditor_id = Column(ForeignKey("creditors.id"), nullable=False)
    debtor_id = Column(ForeignKey("debtors.id"), nullable=False, index=True)
    reference = Column(String(64), nullable=False)
    last4 = Column(String(4), nullable=False)
    product = Column(String(120))
    original_amount = Column(Money, nullable=False)
    balance = Column(Money, nullable=False)
    currency = Column(_enum(*CURRENCIES, name="currency"), nullable=False)
    due_date = Column(Date, nullable=False)
    balance_as_of = Column(Date, nullable=False)
    status = Column(_enum(*ACCOUNT_STATUSES, name="account_status"), nullable=False, default="active")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    creditor = relationship("Creditor", back_populates="accounts")
    debtor = relationship("Debtor", back_populates="accounts")
    payments = relationship("Payment", back_populates="account", order_by="Payment.id")
    payment_claims = relationship("PaymentClaim", back_populates="account", order_by="PaymentClaim.id")
    promises = relationship("Promise", back_populates="account", order_by="Promise.id")
    plans = relationship("PaymentPlan", back_populates="account", order_by="PaymentPlan.id")

    __table_args__ = (
        UniqueConstraint("creditor_id", "reference", name="uq_accounts_creditor_reference"),
        CheckConstraint("original_amount >= 0", name="original_amount"),
        CheckConstraint("balance >= 0", name="balance"),
    )


class Payment(Base):
    """Money the creditor confirms it received (from its reconciliation file)."""

    __tablename__ = "payments"

    id = Column(Integer, primary_key=True)
    account_id = Column(ForeignKey("accounts.id"), nullable=False, index=True)
    amount = Column(Money, nullable=False)
    paid_on = Column(Date, nullable=False)
    external_reference = Column(String(120))
    method = Column(String(40))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    account = relationship("Account", back_populates="payments")

    __table_args__ = (
        UniqueConstraint("account_id", "external_reference", name="uq_payments_account_reference"),
        CheckConstraint("amount > 0", name="amount"),
    )


CLAIM_STATUSES = ("pending", "confirmed", "rejected")


class PaymentClaim(Base):
    """A debtor's statement that they paid, waiting for reconciliation.

    It is not a payment: the balance only moves when the creditor confirms.
    While a claim is pending, reminders on the account pause.
    """

    __tablename__ = "payment_claims"

    id = Column(Integer, primary_key=True)
    account_id = Column(ForeignKey("accounts.id"), nullable=False, index=True)
    amount = Column(Money)
    paid_on = Column(Date)
    reference = Column(String(120))
    media_urls = Column(JSON, nullable=False, default=list)
    debtor_words = Column(Text)
    source_message_sid = Column(String(64))
    status = Column(_enum(*CLAIM_STATUSES, name="claim_status"), nullable=False, default="pending")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    resolved_at = Column(DateTime(timezone=True))

    account = relationship("Account", back_populates="payment_claims")


PROMISE_STATUSES = ("pending", "kept", "broken", "cancelled")


class Promise(Base):
    """A promise to pay `amount` by `due_date`, confirmed back to the debtor.

    Columns of note:
        source_message_sid: the provider id of the debtor message it came from.
        created_by: `bot` or `agent:<id>`.
    """

    __tablename__ = "promises"

    id = Column(Integer, primary_key=True)
    account_id = Column(ForeignKey("accounts.id"), nullable=False, index=True)
    amount = Column(Money, nullable=False)
    due_date = Column(Date, nullable=False)
    status = Column(_enum(*PROMISE_STATUSES, name="promise_status"), nullable=False, default="pending")
    source_message_sid = Column(String(64))
    created_by = Column(String(40), nullable=False, default="bot")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    resolved_at = Column(DateTime(timezone=True))

    account = relationship("Account", back_populates="promises")

    __table_args__ = (CheckConstraint("amount > 0", name="amount"),)


PLAN_STATUSES = ("active", "completed", "broken", "cancelled")


class PaymentPlan(Base):
    """An agreed schedule of instalments whose amounts sum to `total_amount`.

    Columns of note:
        discount_amount: settlement discount granted, if any (total = balance
            minus discount).
    """

    __tablename__ = "payment_plans"

    id = Column(Integer, primary_key=True)
    account_id = Column(ForeignKey("accounts.id"), nullable=False, index=True)
    total_amount = Column(Money, nullable=False)
    discount_amount = Column(Money, nullable=False, default=Decimal("0.00"))
    frequency = Column(_enum(*FREQUENCIES, name="frequency"), nullable=False)
    status = Column(_enum(*PLAN_STATUSES, name="plan_status"), nullable=False, default="active")
    source_message_sid = Column(String(64))
    created_by = Column(String(40), nullable=False, default="bot")
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    account = relationship("Account", back_populates="plans")
    installments = relationship(
        "Installment", back_populates="plan", order_by="Installment.seq", cascade="all, delete-orphan"
    )


INSTALLMENT_STATUSES = ("pending", "paid", "missed")


class Installment(Base):
    """One dated amount of a payment plan."""

    __tablename__ = "installments"

    id = Column(Integer, primary_key=True)
    plan_id = Column(ForeignKey("payment_plans.id"), nullable=False, index=True)
    seq = Column(Integer, nullable=False)
    due_date = Column(Date, nullable=False)
    amount = Column(Money, nullable=False)
    status = Column(_enum(*INSTALLMENT_STATUSES, name="installment_status"), nullable=False, default="pending")
    paid_at = Column(DateTime(timezone=True))

    plan = relationship("PaymentPlan", back_populates="installments")

    __table_args__ = (
        UniqueConstraint("plan_id", "seq", name="uq_installments_plan_seq"),
        CheckConstraint("amount > 0", name="amount"),
    )


AGENT_ROLES = ("agent", "supervisor")


class Agent(Base):
    """A console user. Passwords are stored only as argon2 hashes."""

    __tablename__ = "agents"

    id = Column(Integer, primary_key=True)
    email = Column(String(200), nullable=False, unique=True)
    name = Column(String(200), nullable=False)
    password_hash = Column(String(200), nullable=False)
    role = Column(_enum(*AGENT_ROLES, name="agent_role"), nullable=False, default="agent")
    active = Column(Boolean, nullable=False, default=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


ESCALATION_REASONS = (
    "dispute",
    "complaint",
    "hardship",
    "request_agent",
    "verification_failed",
    "fallback",
    "other",
)
ESCALATION_STATUSES = ("open", "assigned", "resolved", "closed")


class Escalation(Base):
    """A conversation handed to a person; while open or assigned the bot is paused.

    Columns of note:
        case_number: what the debtor is told (e.g. "DSP-000042").
        summary: a short account of why, in the debtor's words where possible.
    """

    __tablename__ = "escalations"

    id = Column(Integer, primary_key=True)
    debtor_id = Column(ForeignKey("debtors.id"), index=True)
    phone = Column(String(20), nullable=False, index=True)
    account_id = Column(ForeignKey("accounts.id"))
    case_number = Column(String(20), unique=True)
    reason = Column(_enum(*ESCALATION_REASONS, name="escalation_reason"), nullable=False)
    summary = Column(Text, nullable=False, default="")
    status = Column(_enum(*ESCALATION_STATUSES, name="escalation_status"), nullable=False, default="open")
    assignee_id = Column(ForeignKey("agents.id"))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)
    resolved_at = Column(DateTime(timezone=True))

    debtor = relationship("Debtor", back_populates="escalations")
    account = relationship("Account")
    assignee = relationship("Agent")
    notes = relationship("EscalationNote", back_populates="escalation", order_by="EscalationNote.id")


class EscalationNote(Base):
    """A private note on an escalation, visible to agents only."""

    __tablename__ = "escalation_notes"

    id = Column(Integer, primary_key=True)
    escalation_id = Column(ForeignKey("escalations.id"), nullable=False, index=True)
    author_id = Column(ForeignKey("agents.id"))
    body = Column(Text, nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    escalation = relationship("Escalation", back_populates="notes")


MESSAGE_DIRECTIONS = ("inbound", "outbound")
MESSAGE_STATUSES = (
    "received",
    "processing",
    "processed",
    "queued",
    "sending",
    "sent",
    "delivered",
    "read",
    "failed",
    "undelivered",
)
# An inbound message not answered yet (stored, or claimed for a turn).
PENDING_INBOUND_SQL = "direction = 'inbound' AND status IN ('received', 'processing')"
# A reply logged to be sent through Twilio that Twilio has not taken yet.
UNSENT_OUTBOUND_SQL = "direction = 'outbound' AND status = 'sending' AND provider_sid IS NULL"


class Message(Base):
    """Every WhatsApp message in or out: the conversation's permanent record.

    Columns of note:
        provider_sid: Twilio's MessageSid (inbound) or the SID Twilio returned
            (outbound); unique, so a replayed webhook is stored once.
        sender: who wrote it: `debtor`, `bot`, `agent:<id>` or `system`.
        media: list of {"url", "content_type"} for attachments.
        status: inbound received/processing/processed; outbound the delivery
            status Twilio reports.
    """

    __tablename__ = "messages"

    id = Column(Integer, primary_key=True)
    debtor_id = Column(ForeignKey("debtors.id"), index=True)
    phone = Column(String(20), nullable=False)
    direction = Column(_enum(*MESSAGE_DIRECTIONS, name="message_direction"), nullable=False)
    provider_sid = Column(String(64), unique=True)
    body = Column(Text, nullable=False, default="")
    media = Column(JSON, nullable=False, default=list)
    status = Column(_enum(*MESSAGE_STATUSES, name="message_status"), nullable=False)
    error_code = Column(String(20))
    sender = Column(String(40), nullable=False)
    template_sid = Column(String(64))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (
        Index("ix_messages_phone_created", "phone", "created_at"),
        # Only the inbound messages not yet answered (a handful, whatever the
        # log's size): the channel's sweep and start-up recovery find them
        # without reading the whole log. A query uses it when it states this
        # very condition, literally (`messages.PENDING_INBOUND`).
        Index(
            "ix_messages_pending",
            "status",
            "updated_at",
            sqlite_where=text(PENDING_INBOUND_SQL),
            postgresql_where=text(PENDING_INBOUND_SQL),
        ),
        # Likewise the replies a crash left unsent (Twilio mode), for the
        # ingest's resend sweep (`messages.UNSENT_OUTBOUND`).
        Index(
            "ix_messages_unsent",
            "updated_at",
            sqlite_where=text(UNSENT_OUTBOUND_SQL),
            postgresql_where=text(UNSENT_OUTBOUND_SQL),
        ),
    )


class OptOut(Base):
    """A request to stop contact on a channel. Active while `revoked_at` is null."""

    __tablename__ = "opt_outs"

    id = Column(Integer, primary_key=True)
    phone = Column(String(20), nullable=False, index=True)
    debtor_id = Column(ForeignKey("debtors.id"))
    channel = Column(String(20), nullable=False, default="whatsapp")
    keyword = Column(String(200))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    revoked_at = Column(DateTime(timezone=True))


# Tables owned by other parts of the product, on the same metadata.
from cobrador.ledger import models_console, models_outreach  # noqa: E402, F401
