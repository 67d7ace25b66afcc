"""Ledger tables of the agent console: sessions, login attempts and the audit log.

Defined on the ledger's `Base`; imported at the end of `cobrador.ledger.models`
so every table is part of one metadata (and of the migrations' comparison).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, DateTime, ForeignKey, Index, Integer, String

from cobrador.ledger.models import Base, utcnow


class ConsoleSession(Base):
    """A logged-in agent. Only a SHA-256 of the cookie's random token is stored."""

    __tablename__ = "console_sessions"

    id = Column(Integer, primary_key=True)
    token_hash = Column(String(64), nullable=False, unique=True)
    agent_id = Column(ForeignKey("agents.id"), nullable=False, index=True)
    csrf_token = Column(String(64), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    expires_at = Column(DateTime(timezone=True), nullable=False)


class LoginAttempt(Base):
    """Every login attempt, for rate limiting by email and by address."""

    __tablename__ = "login_attempts"

    id = Column(Integer, primary_key=True)
    email = Column(String(200), nullable=False)
    address = Column(String(64), nullable=False)
    success = Column(Boolean, nullable=False)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )


class AuditEntry(Base):
    """Who did what, when, in the console (replies, promises, plans, notes, claims, returns)."""

    __tablename__ = "audit_log"

    id = Column(Integer, primary_key=True)
    agent_id = Column(ForeignKey("agents.id"))
    action = Column(String(40), nullable=False)
    escalation_id = Column(ForeignKey("escalations.id"))
    debtor_id = Column(ForeignKey("debtors.id"))
    details = Column(JSON, nullable=False, default=dict)
    at = Column(DateTime(timezone=True), nullable=False, default=utcnow, index=True)
