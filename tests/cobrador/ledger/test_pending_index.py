"""The channel's sweep and recovery find pending messages through the partial
index of pending inbound messages, not by reading the whole message log."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import event, text

from cobrador.ledger import messages
from cobrador.ledger.db import get_engine
from cobrador.ledger.models import MESSAGE_STATUSES, PENDING_INBOUND_SQL


def test_the_index_condition_is_the_pending_statuses() -> None:
    assert set(messages.INBOUND_PENDING) <= set(MESSAGE_STATUSES)
    assert PENDING_INBOUND_SQL == (
        "direction = 'inbound' AND status IN (" + ", ".join(f"'{s}'" for s in messages.INBOUND_PENDING) + ")"
    )


def plans(ledger_url: str, session, lookups) -> list[str]:  # noqa: ANN001
    """The query plans of the statements `lookups` runs, as the database makes them."""
    engine = get_engine(ledger_url)
    captured: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        lookups()
    finally:
        event.remove(engine, "before_cursor_execute", capture)
    selects = [(sql, params) for sql, params in captured if sql.lstrip().upper().startswith("SELECT")]
    assert selects, captured
    found = []
    with engine.connect() as connection:
        raw = connection.connection.cursor()
        for sql, params in selects:
            if engine.dialect.name == "sqlite":
                raw.execute("EXPLAIN QUERY PLAN " + sql, params)
                found.append(" ".join(str(row[-1]) for row in raw.fetchall()))
            else:
                raw.execute("SET enable_seqscan = off")  # a tiny table: what could be used, not what is cheapest
                raw.execute("EXPLAIN " + sql, params)
                found.append(" ".join(row[0] for row in raw.fetchall()))
    return found


def test_the_sweep_and_the_recovery_read_the_pending_index(ledger_url: str, session) -> None:  # noqa: ANN001
    for n, status in enumerate(["received", "processing", "processed", "processed"]):
        messages.record_inbound(session, f"SM{n:032d}", "+525550000101", f"hola {n}", status=status)
    session.commit()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)
    found: dict[str, list] = {}

    def lookups() -> None:
        found["received"] = messages.stale_inbound(session, "received", later)
        found["processing"] = messages.stale_inbound(session, "processing", later)
        found["pending"] = messages.pending_inbound(session)

    for plan in plans(ledger_url, session, lookups):
        assert "ix_messages_pending" in plan, plan
    assert [m.provider_sid for m in found["received"]] == [f"SM{0:032d}"]
    assert [m.provider_sid for m in found["processing"]] == [f"SM{1:032d}"]
    assert [m.provider_sid for m in found["pending"]] == [f"SM{0:032d}", f"SM{1:032d}"]
    assert session.execute(text("SELECT count(*) FROM messages")).scalar() == 4


def test_the_resend_sweep_reads_an_index_not_the_log(ledger_url: str, session) -> None:  # noqa: ANN001
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    ids = [messages.record_outbound(session, "+525550000101", f"r{n}", status=s) for n, s in enumerate(
        ["sending", "sending", "queued"]
    )]  # fmt: skip
    session.execute(
        text("UPDATE messages SET updated_at = :old WHERE id IN (:a, :c)"), {"old": old, "a": ids[0], "c": ids[2]}
    )
    session.commit()
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    found: list = []

    def lookups() -> None:
        found.extend(messages.unsent_outbound(session, since))

    for plan in plans(ledger_url, session, lookups):
        # An index, not the whole log: the partial one, or (SQLite's choice on
        # a small table) the SID index, whose NULLs are the outbound replies
        # Twilio has not taken.
        assert ("SEARCH messages USING INDEX" in plan) or ("Index" in plan and "Seq Scan" not in plan), plan
    assert [m.id for m in found] == [ids[0]]  # not the one touched just now, not the local outbox's
    assert messages.claim_unsent(session, ids[0], since) and not messages.claim_unsent(session, ids[0], since)
