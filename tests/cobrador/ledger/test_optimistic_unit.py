"""`optimistic_unit`: on SQLite a unit of work that only reads takes no write
lock, and one that writes into a conflict runs again under the lock."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from sqlalchemy import func, select

from cobrador.ledger.db import get_engine, optimistic_unit, session_scope
from cobrador.ledger.models import Base, Debtor


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def count(session) -> int:  # noqa: ANN001
    return session.execute(select(func.count(Debtor.id))).scalar_one()


@pytest.fixture
def sqlite_ledger(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """SQLite only: PostgreSQL has no database-wide write lock."""
    Base.metadata.create_all(get_engine(sqlite_url))
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    return sqlite_url


def test_a_reading_unit_does_not_wait_for_a_writer_holding_the_lock(sqlite_ledger: str) -> None:
    ledger_url = sqlite_ledger
    with session_scope(ledger_url) as session:
        session.add(Debtor(phone="+525550000001", name="Ana"))
    writer = sqlite3.connect(sqlite_path(ledger_url), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process's write in progress
    writer.execute(
        "INSERT INTO debtors (phone, name, language, timezone, created_at, updated_at) VALUES ('+525550000002', 'Beto', 'es', 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00')"
    )
    seen: list[int] = []
    reader = threading.Thread(target=lambda: seen.append(optimistic_unit(count, ledger_url)))
    reader.start()
    reader.join(5)  # a unit begun with BEGIN IMMEDIATE would wait here for the writer (busy timeout: 10 s)
    try:
        assert seen == [1], "the reading unit waited for the write lock"
    finally:
        writer.execute("COMMIT")
        writer.close()
        reader.join(15)


def test_a_unit_that_writes_into_a_conflict_runs_again_under_the_lock(ledger_url: str) -> None:
    """Its first attempt read a snapshot that another connection then changed:
    SQLite refuses its write, nothing of it is kept, and the second attempt
    sees the other write. On PostgreSQL it runs once."""
    sqlite = ledger_url.startswith("sqlite")
    attempts: list[int] = []

    def work(session) -> int:  # noqa: ANN001
        before = count(session)
        attempts.append(before)
        if len(attempts) == 1 and sqlite:
            other = sqlite3.connect(sqlite_path(ledger_url), isolation_level=None, timeout=10)
            other.execute(
                "INSERT INTO debtors (phone, name, language, timezone, created_at, updated_at)"
                " VALUES ('+525550000009', 'Otro', 'es', 'UTC', '2026-11-30 00:00:00', '2026-11-30 00:00:00')"
            )
            other.close()
        session.add(Debtor(phone=f"+52555000010{len(attempts)}", name="Nuevo"))
        session.flush()
        return before

    assert optimistic_unit(work, ledger_url) == (1 if sqlite else 0)
    assert attempts == ([0, 1] if sqlite else [0])
    with session_scope(ledger_url) as session:
        phones = set(session.execute(select(Debtor.phone)).scalars())
    assert phones == ({"+525550000009", "+525550000102"} if sqlite else {"+525550000101"})


def test_an_error_that_is_not_a_conflict_is_raised_at_once(ledger_url: str) -> None:
    attempts: list[int] = []

    def work(session) -> None:  # noqa: ANN001
        attempts.append(1)
        raise ValueError("not a database conflict")

    with pytest.raises(ValueError, match="not a database conflict"):
        optimistic_unit(work, ledger_url)
    assert attempts == [1]
