"""A message stored before a crash is processed when a server starts."""

from __future__ import annotations

import time

from sqlalchemy import select

from cobrador.ledger import messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from tests.e2e.conftest import free_port, wait_for


def test_a_pending_inbound_message_is_processed_after_a_restart(stack, tmp_path) -> None:
    phone = "+13125550166"  # Daniela Ruiz
    sid = "SM" + "c" * 32
    with session_scope(stack.database_url) as session:
        # What a crash mid-turn leaves behind: stored, never answered.
        assert messages.record_inbound(session, sid, phone, "hola", [])
        messages.set_inbound_status(session, sid, "processing")
    log = tmp_path / "rasa-restarted.log"
    port = free_port()
    process = stack.launch(port, log)
    try:
        wait_for(f"http://127.0.0.1:{port}/", process, 300, log)
        deadline = time.monotonic() + 120
        status, replies = None, []
        while time.monotonic() < deadline:
            with session_scope(stack.database_url) as session:
                status = session.execute(select(Message.status).where(Message.provider_sid == sid)).scalar_one()
                replies = (
                    session.execute(select(Message.body).where(Message.phone == phone, Message.direction == "outbound"))
                    .scalars()
                    .all()
                )
            if status == "processed" and replies:
                break
            time.sleep(0.5)
        assert status == "processed"
        assert replies[0].startswith("¡Hola! Soy el asistente virtual de Cobrador Recovery Services")
    finally:
        process.terminate()
        process.wait(timeout=30)
