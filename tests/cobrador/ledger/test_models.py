"""Ledger invariants that the database itself enforces."""

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Account, Creditor, Debtor, Message


def _creditor(session) -> Creditor:
    creditor = Creditor(code="c1", legal_name="C1 SA", display_name="C1", collector_name="Col")
    session.add(creditor)
    session.flush()
    return creditor


def _account(creditor, debtor, reference: str, balance: Decimal) -> Account:
    return Account(
        creditor=creditor,
        debtor=debtor,
        reference=reference,
        last4="1234",
        original_amount=balance,
        balance=balance,
        currency="MXN",
        due_date=dt.date(2026, 11, 1),
        balance_as_of=dt.date(2026, 11, 20),
    )


@pytest.mark.parametrize(
    "amount",
    ["0.01", "0.10", "0.29", "1.15", "4850.50", "1234567.89", "999999999999.99", "123456789012.34"],
)
def test_money_round_trips_to_the_cent(ledger_url: str, amount: str) -> None:
    with session_scope() as session:
        debtor = Debtor(phone="+525550000101", name="A")
        session.add(_account(_creditor(session), debtor, "R1", Decimal(amount)))
    with session_scope() as session:
        balance = session.execute(select(Account.balance)).scalar_one()
    assert isinstance(balance, Decimal)
    assert balance == Decimal(amount)
    assert str(balance) == amount


def test_account_reference_is_unique_per_creditor(ledger_url: str) -> None:
    with pytest.raises(IntegrityError):
        with session_scope() as session:
            creditor = _creditor(session)
            debtor = Debtor(phone="+525550000101", name="A")
            session.add(_account(creditor, debtor, "R1", Decimal("10")))
            session.add(_account(creditor, debtor, "R1", Decimal("20")))


def test_negative_balance_is_rejected(ledger_url: str) -> None:
    with pytest.raises(IntegrityError):
        with session_scope() as session:
            session.add(_account(_creditor(session), Debtor(phone="+525550000101", name="A"), "R1", Decimal("-1")))


def test_provider_message_id_is_unique(ledger_url: str) -> None:
    with session_scope() as session:
        session.add(
            Message(
                phone="+525550000101",
                direction="inbound",
                provider_sid="SM1",
                status="received",
                sender="debtor",
                body="hola",
            )
        )
    with pytest.raises(IntegrityError):
        with session_scope() as session:
            session.add(
                Message(
                    phone="+525550000101",
                    direction="inbound",
                    provider_sid="SM1",
                    status="received",
                    sender="debtor",
                    body="hola otra vez",
                )
            )


def test_unknown_enum_value_is_rejected(ledger_url: str) -> None:
    with pytest.raises((IntegrityError, LookupError, ValueError)):
        with session_scope() as session:
            session.add(Debtor(phone="+525550000101", name="A", language="fr"))
