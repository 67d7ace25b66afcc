"""Agents, passwords, sessions and login throttling for the console.

Passwords are stored only as argon2id hashes. A session is a random token in
an HttpOnly, SameSite=Strict cookie; the ledger keeps only its SHA-256 and a
per-session CSRF token. Failed logins are counted per email and per address
over a sliding window; past the limit the login is refused with 429 before
any password is checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from cobrador.ledger.models import AGENT_ROLES, Agent, utcnow
from cobrador.ledger.models_console import ConsoleSession, LoginAttempt

SESSION_HOURS = 8
MAX_FAILURES = 5  # per email or address in the window
FAILURE_WINDOW = dt.timedelta(minutes=15)
MIN_PASSWORD = 10
_hasher = PasswordHasher()
# Checked when the email is unknown, so a wrong email costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


class AuthError(ValueError):
    """A console account could not be created (the message says why)."""


@dataclass(frozen=True)
class SignedIn:
    """The agent behind a valid session."""

    agent_id: int
    email: str
    name: str
    role: str
    csrf_token: str

    @property
    def supervisor(self) -> bool:
        return self.role == "supervisor"


def add_agent(session: Session, email: str, name: str, password: str, role: str = "agent") -> int:
    """Creates a console user; returns its id."""
    email = email.strip().lower()
    if "@" not in email or len(email) > 200:
        raise AuthError(f"not an email address: {email!r}")
    if role not in AGENT_ROLES:
        raise AuthError(f"role must be one of {', '.join(AGENT_ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"the password needs at least {MIN_PASSWORD} characters")
    if session.execute(select(Agent.id).where(Agent.email == email)).first():
        raise AuthError(f"{email} already exists")
    agent = Agent(email=email, name=name.strip() or email, password_hash=_hasher.hash(password), role=role)
    session.add(agent)
    session.flush()
    return agent.id


def throttled(session: Session, email: str, address: str, now: Optional[dt.datetime] = None) -> bool:
    """Whether too many logins failed lately for this email or from this address."""
    since = (now or utcnow()) - FAILURE_WINDOW
    failures = session.execute(
        select(func.count())
        .select_from(LoginAttempt)
        .where(
            LoginAttempt.success.is_(False),
            LoginAttempt.at > since,
            or_(LoginAttempt.email == email.strip().lower(), LoginAttempt.address == address),
        )
    ).scalar_one()
    return failures >= MAX_FAILURES


def log_in(session: Session, email: str, password: str, address: str) -> Optional[tuple[str, SignedIn]]:
    """Checks the password; on success opens a session and returns (cookie token, agent)."""
    email = email.strip().lower()[:200]
    agent = session.execute(select(Agent).where(Agent.email == email, Agent.active.is_(True))).scalar_one_or_none()
    try:
        _hasher.verify(agent.password_hash if agent else _DUMMY_HASH, password)
        ok = agent is not None
    except (VerificationError, InvalidHashError):
        ok = False
    session.add(LoginAttempt(email=email, address=address[:64], success=ok))
    if not ok:
        return None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            token_hash=_digest(token), agent_id=agent.id, csrf_token=csrf, created_at=now,
            expires_at=now + dt.timedelta(hours=SESSION_HOURS),
        )
    )  # fmt: skip
    return token, SignedIn(agent.id, agent.email, agent.name, agent.role, csrf)


def signed_in(session: Session, token: Optional[str]) -> Optional[SignedIn]:
    """The agent of a live session cookie, or None."""
    if not token:
        return None
    row = session.execute(
        select(ConsoleSession, Agent)
        .join(Agent, Agent.id == ConsoleSession.agent_id)
        .where(ConsoleSession.token_hash == _digest(token), Agent.active.is_(True))
    ).first()
    if row is None:
        return None
    console_session, agent = row
    expires = console_session.expires_at
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.timezone.utc)
    if expires <= utcnow():
        return None
    return SignedIn(agent.id, agent.email, agent.name, agent.role, console_session.csrf_token)


def log_out(session: Session, token: str) -> None:
    session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))


def csrf_ok(expected: str, given: Optional[str]) -> bool:
    return bool(given) and hmac.compare_digest(expected, given or "")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
