"""Ledger tables of outreach (business-initiated messages): jobs and contact decisions.

Defined on the ledger's `Base`; imported at the end of `cobrador.ledger.models`
so every table is part of one metadata (and of the migrations' comparison).
"""

from __future__ import annotations

from sqlalchemy import JSON, Column, Date, DateTime, Enum, ForeignKey, Index, Integer, String

from cobrador.ledger.models import Base, utcnow

OUTREACH_KINDS = (
    "first_notice",
    "pre_due",
    "due",
    "overdue",
    "promise_reminder",
    "promise_broken",
    "installment_reminder",
    "thank_you",
)
# pending: waiting for its moment or a block to lift; claimed: a worker took it
# and is sending; sent; cancelled (with the reason); unknown: a worker died
# between claiming and recording, so whether Twilio got it is not known.
JOB_STATUSES = ("pending", "claimed", "sent", "cancelled", "unknown")
DECISION_OUTCOMES = ("sent", "deferred", "held", "cancelled")


def _enum(*values: str, name: str) -> Enum:
    return Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


class OutreachJob(Base):
    """One business-initiated message for one account, sent at most once.

    Columns of note:
        dedupe_key: what makes the message unique (kind + account + date, or the
            promise, instalment or payment it is about); planning twice
            inserts nothing new.
        due_on: the debtor's local date the message is for.
        not_before: UTC moment before which no worker looks at it again (the
            next window start, the moment the cap frees up).
        variables: the template variables, fixed when the message is sent.
    """

    __tablename__ = "outreach_jobs"

    id = Column(Integer, primary_key=True)
    dedupe_key = Column(String(120), nullable=False, unique=True)
    kind = Column(_enum(*OUTREACH_KINDS, name="outreach_kind"), nullable=False)
    account_id = Column(ForeignKey("accounts.id"), nullable=False, index=True)
    debtor_id = Column(ForeignKey("debtors.id"), nullable=False)
    subject_id = Column(Integer)  # the promise, instalment or payment it is about
    due_on = Column(Date, nullable=False)
    status = Column(_enum(*JOB_STATUSES, name="outreach_job_status"), nullable=False, default="pending")
    not_before = Column(DateTime(timezone=True), nullable=False)
    reason = Column(String(24))
    claimed_by = Column(String(64))
    claimed_at = Column(DateTime(timezone=True))
    sent_at = Column(DateTime(timezone=True))
    message_id = Column(ForeignKey("messages.id"))
    template_sid = Column(String(64))
    variables = Column(JSON)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow, onupdate=utcnow)

    __table_args__ = (Index("ix_outreach_jobs_status_not_before", "status", "not_before"),)


class ContactDecisionLog(Base):
    """Every decision about a job, with its reason: the audit trail of outreach."""

    __tablename__ = "contact_decisions"

    id = Column(Integer, primary_key=True)
    job_id = Column(ForeignKey("outreach_jobs.id"), nullable=False, index=True)
    at = Column(DateTime(timezone=True), nullable=False)
    outcome = Column(_enum(*DECISION_OUTCOMES, name="decision_outcome"), nullable=False)
    reason = Column(String(24), nullable=False)
    next_at = Column(DateTime(timezone=True))
    worker = Column(String(64), nullable=False)
