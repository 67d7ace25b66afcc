"""Human handoff for real, in headless Chromium: a debtor asks for a person
through signed WhatsApp webhooks (the real ingest, Rasa and action server),
an agent logs in to the console, takes the conversation, sees new debtor
messages arrive live while the bot stays silent (also after "/restart"),
replies, records a promise and returns the conversation to the bot, which
answers the debtor's next message. A new Rasa session (what session expiry
does) does not wake the bot either: the pause is the escalation in the ledger."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator
from zoneinfo import ZoneInfo

import jwt
import pytest
import requests
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.demo import DEMO_AGENTS
from cobrador.ledger.models import Escalation, Message, Promise
from cobrador.whatsapp.simulator import signed_form, twilio_fields
from tests.e2e.conftest import LOCAL_TOKEN, free_port, wait_for

PHONE = "+525550000102"  # José Luis Martínez, Crédito Amigo
WEBHOOK = "/webhooks/whatsapp/webhook"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def console(stack, tmp_path_factory) -> Iterator[str]:  # noqa: ANN001
    port = free_port()
    log = tmp_path_factory.mktemp("console") / "console.log"
    env = {
        **os.environ, "DATABASE_URL": stack.database_url, "COBRADOR_LOCAL_TOKEN": LOCAL_TOKEN,
        "COBRADOR_PUBLIC_URL": stack.public_url, "COBRADOR_RASA_URL": stack.rasa_url,
        "RASA_JWT_SECRET": f"devstack-{LOCAL_TOKEN}",
    }  # fmt: skip
    for variable in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_WHATSAPP_FROM"):
        env.pop(variable, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "cobrador", "web", "--port", str(port)],
        cwd=ROOT, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for(f"http://127.0.0.1:{port}/login", process, 60, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def say(stack, text: str) -> str:  # noqa: ANN001
    """The debtor writes (a signed webhook to the ingest); returns the MessageSid once processed."""
    fields, signature = signed_form(LOCAL_TOKEN, stack.public_url + WEBHOOK, twilio_fields(PHONE, text, []))
    answer = requests.post(stack.public_url + WEBHOOK, data=fields, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with session_scope(stack.database_url) as session:
            status = session.execute(
                select(Message.status).where(Message.provider_sid == fields["MessageSid"])
            ).scalar_one_or_none()
        if status == "processed":
            return fields["MessageSid"]
        time.sleep(0.2)
    raise AssertionError(f"{text!r} was not processed")


def outbound(stack, sender: str) -> list[str]:  # noqa: ANN001
    with session_scope(stack.database_url) as session:
        return list(
            session.execute(
                select(Message.body)
                .where(Message.phone == PHONE, Message.direction == "outbound", Message.sender.like(sender))
                .order_by(Message.id)
            ).scalars()
        )


def test_an_agent_takes_over_replies_and_returns_the_conversation(stack, browser, console) -> None:  # noqa: ANN001
    say(stack, "quiero hablar con una persona")
    with session_scope(stack.database_url) as session:
        escalation = session.execute(
            select(Escalation).where(Escalation.phone == PHONE, Escalation.status == "open")
        ).scalar_one()
        case = escalation.case_number
    bot_before = len(outbound(stack, "bot"))

    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"{console}/login")
    page.fill("input[name=email]", DEMO_AGENTS[0][0])
    page.fill("input[name=password]", DEMO_AGENTS[0][2])
    page.click("button[type=submit]")
    row = page.locator(f'tr[data-case="{case}"]')
    row.wait_for(timeout=10000)
    assert "request_agent" in row.inner_text()
    row.locator("button", has_text="Take").click()
    page.wait_for_selector("#transcript")
    assert "quiero hablar con una persona" in page.locator("#transcript").inner_text()

    # While the agent has it the bot is silent, also after "/restart", and every
    # debtor message reaches the agent live, without a reload.
    say(stack, "sigo aquí, ¿me atienden? <b>hola</b>")
    say(stack, "/restart")
    # A new Rasa session, as when the session expires (through Rasa's API, with a JWT).
    token = jwt.encode({"user": {"username": "test", "role": "admin"}}, f"devstack-{LOCAL_TOKEN}", algorithm="HS256")
    started = requests.post(
        f"{stack.rasa_url}/conversations/{PHONE}/execute", json={"name": "action_session_start"},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    )  # fmt: skip
    assert started.status_code == 200
    tracker = requests.get(
        f"{stack.rasa_url}/conversations/{PHONE}/tracker", params={"include_events": "ALL"},
        headers={"Authorization": f"Bearer {token}"}, timeout=30,
    ).json()  # fmt: skip
    assert [e["event"] for e in tracker["events"]].count("session_started") >= 2
    say(stack, "¿hay alguien? nueva sesión")
    page.locator("#transcript .msg.debtor", has_text="nueva sesión").wait_for(timeout=10000)
    assert page.locator("#transcript .msg.debtor", has_text="sigo aquí, ¿me atienden? <b>hola</b>").count() == 1
    assert page.locator("#transcript b").count() == 0
    time.sleep(2)
    assert len(outbound(stack, "bot")) == bot_before

    page.fill("#reply-form textarea[name=text]", "Hola José Luis, soy Laura. ¿Qué día podrías pagar?")
    page.click("#reply-form button")
    page.wait_for_selector(".flash")
    assert outbound(stack, "agent:%") == ["Hola José Luis, soy Laura. ¿Qué día podrías pagar?"]
    simulator = requests.get(f"{stack.rasa_url}/webhooks/whatsapp/simulator/messages", params={"phone": PHONE}).json()
    assert any(m.get("body", "").startswith("Hola José Luis, soy Laura") for m in simulator)

    day = (dt.datetime.now(ZoneInfo("America/Mexico_City")).date() + dt.timedelta(days=3)).isoformat()
    page.fill("#promise-form input[name=amount]", "1000.00")
    page.fill("#promise-form input[name=date]", day)
    page.click("#promise-form button")
    page.wait_for_selector(".flash")
    with session_scope(stack.database_url) as session:
        promise = session.execute(select(Promise).where(Promise.created_by.like("agent:%"))).scalars().all()
        assert [(str(p.amount), p.due_date.isoformat()) for p in promise] == [("1000.00", day)]

    page.click("#return-to-bot")
    page.wait_for_selector(".flash")
    with session_scope(stack.database_url) as session:
        assert session.execute(select(Escalation.status).where(Escalation.case_number == case)).scalar_one() == (
            "resolved"
        )
    say(stack, "hola")
    assert len(outbound(stack, "bot")) > bot_before  # the bot answers again
    assert dialogs == []
    page.close()
