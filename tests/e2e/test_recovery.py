"""A message stored before a crash is answered when a server starts, once."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from tests.e2e.conftest import free_port, sql_trackers, wait_for
from tests.e2e.test_whatsapp_channel import claimed, process, user_message_ids


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
    """A Rasa server of the stack on the tracker store `trackers`, once its model is loaded."""
    port = free_port()
    process = stack.launch(port, log, trackers)
    wait_for(f"http://127.0.0.1:{port}/webhooks/rest/", process, 300, log)  # answers once the model is loaded
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
