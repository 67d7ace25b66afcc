"""A message stored before a crash is answered when a server starts, once."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import requests
from sqlalchemy import select

from cobrador.ledger import messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.whatsapp.channel import forward_key, forward_signature
from tests.e2e.conftest import LOCAL_TOKEN, free_port, wait_for


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


def _user_turns(rasa_url: str, phone: str) -> list[str]:
    """The message ids of the debtor's messages in Rasa's tracker, every session."""
    from tests.e2e.test_rasa_api import SECRET, token

    headers = {"Authorization": f"Bearer {token(SECRET)}"}
    answer = requests.get(f"{rasa_url}/conversations/{phone}/tracker", headers=headers, timeout=10)
    answer.raise_for_status()
    return [event["message_id"] for event in answer.json()["events"] if event["event"] == "user"]


def _rasa(stack, log: Path, endpoints: Path) -> tuple[subprocess.Popen, str]:
    """A Rasa server of the stack on `endpoints`, once its model is loaded."""
    port = free_port()
    process = stack.launch(port, log, endpoints)
    wait_for(f"http://127.0.0.1:{port}/webhooks/rest/", process, 300, log)  # answers once the model is loaded
    return process, f"http://127.0.0.1:{port}"


def test_pending_inbound_messages_are_answered_once_after_a_restart(stack, tmp_path) -> None:
    """Rasa, on a durable tracker store (SQL, as in production), dies with two
    messages claimed: one whose turn never ran, and one whose turn it ran for
    an ingest (the answer given, the tracker saved) that died too, so nobody
    recorded its replies. The Rasa that starts next (nothing in its memory)
    runs the first, and records the second's replies from the tracker without
    running its turn again."""
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text(
        f'action_endpoint:\n  url: "{stack.actions_url}/webhook"\n'
        f'tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "{tmp_path / "tracker.db"}"\n',
        encoding="utf-8",
    )
    never_ran = ("SM" + "c" * 32, "+13125550166")  # Daniela Ruiz
    ran = ("SM" + "8" * 32, "+525550000127")
    first, first_url = _rasa(stack, tmp_path / "rasa-first.log", endpoints)
    try:
        with session_scope(stack.database_url) as session:  # claimed, as an ingest claims them
            for sid, phone in (never_ran, ran):
                assert messages.record_inbound(session, sid, phone, "hola", [], status="processing")
        body = json.dumps({"sid": ran[0], "phone": ran[1], "body": "hola", "language": "es"}).encode()
        headers = {"X-Cobrador-Signature": forward_signature(forward_key(LOCAL_TOKEN), body)}
        answer = requests.post(first_url + "/webhooks/whatsapp/process", data=body, headers=headers, timeout=30)
        assert answer.status_code == 200
        given = [reply["body"] for reply in answer.json()["messages"]]
        assert given
    finally:
        first.kill()  # a crash: no clean shutdown
        first.wait(timeout=30)
    log = tmp_path / "rasa-restarted.log"
    restarted, restarted_url = _rasa(stack, log, endpoints)
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
        assert _user_turns(restarted_url, ran[1]) == [ran[0]]  # the turn ran once
        assert _user_turns(restarted_url, never_ran[1]) == [never_ran[0]]
    finally:
        restarted.terminate()
        restarted.wait(timeout=30)
    assert f"{ran[0]}: its turn ran already; recording the replies it gave" in log.read_text()
