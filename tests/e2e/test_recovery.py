"""A message stored before a crash is answered when a server starts, once."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import requests
from sqlalchemy import select

from cobrador.ledger import messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from tests.e2e.conftest import free_port, sql_trackers, wait_for
from tests.e2e.test_whatsapp_channel import claimed, process, user_message_ids
from tests.support import wait_until


def _status_and_replies(database_url: str, sid: str, phone: str) -> tuple[str, list[str]]:
    with session_scope(database_url) as session:
        status = session.execute(select(Message.status).where(Message.provider_sid == sid)).scalar_one()
        replies = (
            session.execute(
                select(Message.body).where(Message.phone == phone, Message.direction == "outbound").order_by(Message.id)
            )
            .scalars()
            .all()
        )
    return status, list(replies)


def _rasa(stack, log: Path, trackers: dict) -> tuple[subprocess.Popen, str]:
    """A Rasa server of the stack on the tracker store `trackers`, once its
    model is loaded and its start-up recovery has read what was left pending
    (a message a test claims before that would be the recovery's to answer)."""
    port = free_port()
    process = stack.launch(port, log, trackers)
    wait_for(f"http://127.0.0.1:{port}/webhooks/rest/", process, 300, log)  # answers once the model is loaded
    health = f"http://127.0.0.1:{port}/webhooks/whatsapp/"
    assert wait_until(lambda: requests.get(health, timeout=5).json()["recovered"], tries=600, step=0.1)
    # Then it keeps its loaded model out of the garbage collector's full walks (cobrador.heap).
    assert wait_until(lambda: requests.get(health, timeout=5).json()["heap_frozen"], tries=300, step=0.1)
    return process, f"http://127.0.0.1:{port}"


def test_pending_inbound_messages_are_answered_once_after_a_restart(stack, tmp_path) -> None:
    """Rasa, on a durable tracker store (SQL, as in production), dies with two
    messages claimed: one whose turn never ran, and one whose turn it ran for
    an ingest (the answer given, the tracker saved) that died too, so nobody
    recorded its replies. The Rasa that starts next (nothing in its memory)
    runs the first, and records the second's replies from the tracker without
    running its turn again."""
    trackers = sql_trackers(tmp_path / "tracker.db")
    never_ran = ("SM" + "c" * 32, "+13125550166")  # Daniela Ruiz
    ran = ("SM" + "8" * 32, "+525550000127")
    first, first_url = _rasa(stack, tmp_path / "rasa-first.log", trackers)
    try:
        for sid, phone in (never_ran, ran):
            claimed(stack, sid, phone)
        answer = process(stack, ran[1], "hola", sid=ran[0], rasa_url=first_url)
        assert answer.status_code == 200
        given = [reply["body"] for reply in answer.json()["messages"]]
        assert given
        # The answer goes before the tracker is saved (cobrador.whatsapp.forwarded): Rasa dies once it is.
        for _ in range(100):
            if user_message_ids(first_url, ran[1]) == [ran[0]]:
                break
            time.sleep(0.05)
    finally:
        first.kill()  # a crash: no clean shutdown
        first.wait(timeout=30)
    log = tmp_path / "rasa-restarted.log"
    restarted, restarted_url = _rasa(stack, log, trackers)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            answered = [_status_and_replies(stack.database_url, sid, phone) for sid, phone in (never_ran, ran)]
            if all(status == "processed" and replies for status, replies in answered):
                break
            time.sleep(0.5)
        (first_status, first_replies), (second_status, second_replies) = answered
        assert first_status == "processed"
        assert first_replies[0].startswith("¡Hola! Soy el asistente virtual de Cobrador Recovery Services")
        assert second_status == "processed"
        assert second_replies == given
        assert user_message_ids(restarted_url, ran[1]) == [ran[0]]  # the turn ran once
        assert user_message_ids(restarted_url, never_ran[1]) == [never_ran[0]]
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    assert f"{ran[0]}: its turn ran already; recording the replies it gave" in log.read_text()


def _answered_as_the_ingest_records_it(stack, rasa_url: str, sid: str, phone: str, text: str) -> list[str]:
    """A message stored claimed, forwarded to the Rasa at `rasa_url`, and its
    replies recorded with its "processed" mark, as the ingest does; the replies."""
    claimed(stack, sid, phone, text)
    answer = process(stack, phone, text, sid=sid, rasa_url=rasa_url)
    assert answer.status_code == 200, answer.text
    replies = answer.json()["messages"]
    with session_scope(stack.database_url) as session:
        for reply in replies:
            messages.record_outbound(
                session, reply["phone"], reply["body"], sender=reply["sender"], media=reply["media"]
            )
        messages.set_inbound_status(session, sid, "processed")
    return [reply["body"] for reply in replies]


def test_a_turn_answered_but_not_saved_before_a_crash_is_put_back_in_the_tracker(stack, tmp_path) -> None:
    """Rasa answers a forwarded turn before it saves the tracker
    (cobrador.whatsapp.forwarded), and here dies in between: another writer
    holds the tracker store's lock, so the save waits, and Rasa is killed
    meanwhile. The message is processed with its replies, as the ingest
    records them, but the tracker lacks the turn. The Rasa that starts next
    puts the turn back, without giving its replies again, before the debtor's
    next message runs, so the conversation goes on where the debtor left it:
    the year of birth that follows the name verifies the debtor."""
    trackers_file = tmp_path / "tracker.db"
    trackers = sql_trackers(trackers_file)
    phone = "+526621230005"  # Roberto Félix Valenzuela, born 1983
    hello, name, year = ("SM" + pair * 16 for pair in ("e5", "e6", "e7"))
    first, first_url = _rasa(stack, tmp_path / "rasa-first.log", trackers)
    try:
        assert "¿Me dices tu nombre completo?" in _answered_as_the_ingest_records_it(
            stack, first_url, hello, phone, "hola"
        )
        assert wait_until(lambda: user_message_ids(first_url, phone) == [hello], step=0.1)  # saved
        locker = sqlite3.connect(trackers_file, timeout=10, isolation_level=None)
        locker.execute("BEGIN IMMEDIATE")  # Rasa's save of the next turn waits for it
        try:
            given = _answered_as_the_ingest_records_it(stack, first_url, name, phone, "roberto felix valenzuela")
            assert any("año de nacimiento" in body for body in given)
            assert user_message_ids(first_url, phone) == [hello]  # answered, not saved
            first.kill()  # a crash: no clean shutdown
            first.wait(timeout=30)
        finally:
            locker.execute("ROLLBACK")
            locker.close()
    finally:
        first.kill()
        first.wait(timeout=30)
    replies_before = _status_and_replies(stack.database_url, name, phone)[1]
    log = tmp_path / "rasa-restarted.log"
    restarted, restarted_url = _rasa(stack, log, trackers)
    try:
        # The debtor's next message, as soon as Rasa answers (the ingest retries while it is down).
        after = _answered_as_the_ingest_records_it(stack, restarted_url, year, phone, "1983")
        assert after[0].startswith("¡Gracias, Roberto"), after
        assert user_message_ids(restarted_url, phone) == [hello, name, year]
        replies = _status_and_replies(stack.database_url, name, phone)[1]
        assert replies == [*replies_before, *after]  # the lost turn's replies were not given again
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    assert f"{name} was answered but its turn is not in the tracker: it runs again" in log.read_text()
