"""A small portfolio builder for the outreach tests (real ledger, both databases)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Optional

import pytest
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Account, Creditor, Debtor
from cobrador.ledger.models_outreach import ContactDecisionLog, OutreachJob

UTC = dt.timezone.utc
OPTED_IN = dt.datetime(2026, 1, 5, tzinfo=UTC)


def at(text: str) -> dt.datetime:
    """An aware moment from ISO text with offset, e.g. "2026-11-23T07:00-06:00"."""
    moment = dt.datetime.fromisoformat(text)
    assert moment.tzinfo is not None
    return moment


class Book:
    """Creates creditors, debtors and accounts on one ledger."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.phones = iter(f"+52555{n:07d}" for n in range(1000, 100000))

    def creditor(self, code: str = "MX", *, window=("07:00", "22:00"), cap: int = 7, disclosure: bool = False) -> int:
        with session_scope(self.url) as session:
            creditor = Creditor(
                code=code, legal_name=f"{code} Financiera S.A.", display_name=f"{code} Presta",
                collector_name="Cobrador Servicios de Cobranza", country="MX", default_currency="MXN",
                official_phone="800 123 4567", complaints_contact="CONDUSEF 55 5340 0999",
                payment_link_template="https://pay.example/{reference}", contact_window_start=window[0],
                contact_window_end=window[1], max_attempts_per_7_days=cap, debt_collector_disclosure=disclosure,
            )  # fmt: skip
            session.add(creditor)
            session.flush()
            return creditor.id

    def account(
        self,
        creditor_id: int,
        *,
        due: dt.date,
        tz: str = "America/Mexico_City",
        language: str = "es",
        balance: str = "1500.00",
        opt_in: Optional[dt.datetime] = OPTED_IN,
        phone: Optional[str] = None,
        status: str = "active",
        name: str = "María López",
    ) -> int:
        with session_scope(self.url) as session:
            phone = phone or next(self.phones)
            debtor = session.execute(select(Debtor).where(Debtor.phone == phone)).scalar_one_or_none()
            if debtor is None:
                debtor = Debtor(phone=phone, name=name, language=language, timezone=tz, whatsapp_opt_in_at=opt_in)
                session.add(debtor)
                session.flush()
            count = session.execute(select(Account.id)).all()
            account = Account(
                creditor_id=creditor_id, debtor_id=debtor.id, reference=f"REF-{len(count) + 1:05d}", last4="4321",
                original_amount=Decimal(balance), balance=Decimal(balance), currency="MXN", due_date=due,
                balance_as_of=due - dt.timedelta(days=5), status=status,
            )  # fmt: skip
            session.add(account)
            session.flush()
            return account.id

    def jobs(self, account_id: Optional[int] = None) -> list[OutreachJob]:
        with session_scope(self.url) as session:
            query = select(OutreachJob).order_by(OutreachJob.id)
            if account_id is not None:
                query = query.where(OutreachJob.account_id == account_id)
            rows = list(session.execute(query).scalars())
            session.expunge_all()
            return rows

    def sent(self, account_id: int) -> list[str]:
        return [job.kind for job in self.jobs(account_id) if job.status == "sent"]

    def log(self, account_id: int) -> list[tuple[str, str, str]]:
        with session_scope(self.url) as session:
            rows = session.execute(
                select(OutreachJob.kind, ContactDecisionLog.outcome, ContactDecisionLog.reason)
                .join(OutreachJob, OutreachJob.id == ContactDecisionLog.job_id)
                .where(OutreachJob.account_id == account_id)
                .order_by(ContactDecisionLog.id)
            ).all()
            return [tuple(r) for r in rows]


@pytest.fixture
def book(ledger_url: str) -> Book:
    return Book(ledger_url)
