"""The demo portfolio that `make run` loads into an empty database.

`demo/portfolio.csv` is written around ANCHOR; its dates are shifted so the
demo always looks the same relative to today (someone 40 days overdue stays
40 days overdue). It goes through the same importer as a real portfolio; the
states a CSV cannot carry (promises, plans, disputes, claims) are added here.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cobrador.config import PROJECT_ROOT
from cobrador.ledger.creditors import load_creditors
from cobrador.ledger.importer import ImportReport, import_portfolio
from cobrador.ledger.models import (
    Account,
    Debtor,
    Escalation,
    Installment,
    Payment,
    PaymentClaim,
    PaymentPlan,
    Promise,
)
from cobrador.policy.plans import split_evenly

DEMO_DIR = PROJECT_ROOT / "demo"
ANCHOR = dt.date(2026, 11, 23)
DATE_COLUMNS = ("due_date", "balance_as_of")


DEMO_AGENTS = (
    ("agente@demo.cobrador.mx", "Laura Agente", "demo-agente-2026", "agent"),
    ("supervisor@demo.cobrador.mx", "Carlos Supervisor", "demo-supervisor-2026", "supervisor"),
)


def is_empty(session: Session) -> bool:
    """True when the ledger holds no debtor yet."""
    return session.execute(select(func.count(Debtor.id))).scalar_one() == 0


def _shifted_csv(source: Path, today: dt.date, target: Path) -> None:
    offset = today - ANCHOR
    with open(source, newline="", encoding="utf-8") as src, open(target, "w", newline="", encoding="utf-8") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            for column in DATE_COLUMNS:
                row[column] = (dt.date.fromisoformat(row[column]) + offset).isoformat()
            writer.writerow(row)


def _account(session: Session, reference: str) -> Account:
    return session.execute(select(Account).where(Account.reference == reference)).scalar_one()


def load_demo(session: Session, today: dt.date) -> ImportReport:
    """Loads the demo creditors, portfolio and conversation states.

    Args:
        session: an open unit of work on an empty ledger.
        today: the date the demo is laid out around.

    Returns:
        The import report of the demo portfolio.
    """
    load_creditors(session, DEMO_DIR / "creditors.yml")
    with tempfile.TemporaryDirectory() as folder:
        shifted = Path(folder) / "portfolio.csv"
        _shifted_csv(DEMO_DIR / "portfolio.csv", today, shifted)
        report = import_portfolio(session, shifted)
    if report.errors:
        raise RuntimeError(f"demo portfolio has bad rows: {report.errors}")

    # José Luis promised to pay in three days.
    session.add(
        Promise(
            account=_account(session, "AM-100232"),
            amount=Decimal("2000.00"),
            due_date=today + dt.timedelta(days=3),
            created_by="bot",
        )
    )
    # Juan Carlos is on a fortnightly plan, first instalment paid.
    account = _account(session, "AM-100234")
    plan = PaymentPlan(account=account, total_amount=account.balance, frequency="biweekly", created_by="bot")
    for seq, amount in enumerate(split_evenly(account.balance, 4), start=1):
        due = today + dt.timedelta(days=14 * (seq - 1) - 7)
        plan.installments.append(
            Installment(seq=seq, due_date=due, amount=amount, status="paid" if due < today else "pending")
        )
    session.add(plan)
    # Jennifer is on a monthly plan with nothing paid yet.
    account = _account(session, "LB-2001587")
    plan = PaymentPlan(account=account, total_amount=account.balance, frequency="monthly", created_by="agent:1")
    for seq, amount in enumerate(split_evenly(account.balance, 3), start=1):
        plan.installments.append(Installment(seq=seq, due_date=today + dt.timedelta(days=30 * seq), amount=amount))
    session.add(plan)
    # Disputes freeze collection and wait for an agent.
    for reference, summary in (
        ("AM-100237", "Dice que nunca sacó ese crédito en tienda."),
        ("LB-2001590", "Says the repair was never completed and the amount is wrong."),
    ):
        account = _account(session, reference)
        escalation = Escalation(
            debtor_id=account.debtor_id,
            phone=account.debtor.phone,
            account_id=account.id,
            reason="dispute",
            summary=summary,
        )
        session.add(escalation)
        session.flush()
        escalation.case_number = f"DSP-{escalation.id:06d}"
    # Verónica paid in full; Pedro says he paid and waits for reconciliation.
    session.add(
        Payment(
            account=_account(session, "AM-100239"),
            amount=Decimal("2500.00"),
            paid_on=today - dt.timedelta(days=20),
            external_reference="OXXO-558120",
        )
    )
    session.add(
        PaymentClaim(
            account=_account(session, "AM-100236"),
            amount=Decimal("500.00"),
            paid_on=today - dt.timedelta(days=2),
            reference="SPEI 7731",
            debtor_words="ya pague 500 el martes por spei",
        )
    )
    session.flush()
    # Console users (README: "Agent console"); demo passwords, never for production.
    from cobrador.console.auth import add_agent

    for email, name, password, role in DEMO_AGENTS:
        add_agent(session, email, name, password, role)
    return report
