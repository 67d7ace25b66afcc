"""Read-side queries the conversation needs, returning plain values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from cobrador.ledger.models import Account, Creditor, Debtor


@dataclass(frozen=True)
class DebtorContext:
    """What the bot may know about a phone before verification."""

    debtor_id: int
    language: str
    timezone: str
    collector_name: Optional[str]
    creditor_name: Optional[str]


def debtor_context(session: Session, phone: str) -> Optional[DebtorContext]:
    """The debtor behind `phone` and who collects from them, or `None`.

    Args:
        session: an open unit of work.
        phone: E.164 phone number (the Rasa sender id).

    Returns:
        The context, with the creditor of the debtor's oldest account.
    """
    debtor = session.execute(select(Debtor).where(Debtor.phone == phone)).scalar_one_or_none()
    if debtor is None:
        return None
    creditor = session.execute(
        select(Creditor).join(Account).where(Account.debtor_id == debtor.id).order_by(Account.id).limit(1)
    ).scalar_one_or_none()
    return DebtorContext(
        debtor_id=debtor.id,
        language=debtor.language,
        timezone=debtor.timezone,
        collector_name=creditor.collector_name if creditor else None,
        creditor_name=creditor.display_name if creditor else None,
    )
