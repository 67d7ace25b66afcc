"""Outbound through a fake Twilio HTTP server that records the exact
requests (Twilio's servers cannot run here; everything else is real: the
sender, the output channel, the ledger's message log)."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any, AsyncIterator

import pytest
from aiohttp import web
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.whatsapp.channel import WhatsAppOutput
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.twilio_api import SendError, TwilioConfig, TwilioSender, split_body

SID, TOKEN = "AC" + "1" * 32, "secret-token"
FROM = "whatsapp:+14155238886"
CALLBACK = "https://bot.example/webhooks/whatsapp/status"


class FakeTwilio:
    """Answers POST /2010-04-01/Accounts/{sid}/Messages.json from a script of responses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization", ""),
                "form": [(k, v) for k, v in form.items()],
            }
        )
        status, payload = self.script.pop(0) if self.script else (201, {})
        if status < 300:
            payload = {"sid": f"SM{len(self.requests):032d}", "status": "queued", **payload}
        return web.json_response(payload, status=status)


@pytest.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    await web.TCPSite(runner, "127.0.0.1", port).start()
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    await runner.cleanup()


def config(fake: FakeTwilio) -> TwilioConfig:
    return TwilioConfig(SID, TOKEN, FROM, status_callback=CALLBACK, api_base=fake.url, backoff_seconds=0.01)


def outbound(url: str) -> list[Message]:
    with session_scope(url) as session:
        rows = list(
            session.execute(select(Message).where(Message.direction == "outbound").order_by(Message.id)).scalars()
        )
        session.expunge_all()
        return rows


async def test_a_message_is_posted_exactly_as_twilio_expects(twilio: FakeTwilio) -> None:
    sender = TwilioSender(config(twilio))
    result = await sender.send("+525550000101", "¡Hola! ¿Cómo estás? 😀", media_urls=["https://bot.example/s.pdf"])
    await sender.close()
    assert result["sid"].startswith("SM")
    (request,) = twilio.requests
    assert request["path"] == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request["auth"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert request["form"] == [
        ("From", FROM),
        ("To", "whatsapp:+525550000101"),
        ("Body", "¡Hola! ¿Cómo estás? 😀"),
        ("MediaUrl", "https://bot.example/s.pdf"),
        ("StatusCallback", CALLBACK),
    ]


async def test_transient_failures_are_retried_with_backoff(twilio: FakeTwilio) -> None:
    twilio.script = [(429, {"code": 20429, "message": "Too Many Requests"}), (503, {}), (201, {})]
    sender = TwilioSender(config(twilio))
    result = await sender.send("+525550000101", "hola")
    await sender.close()
    assert result["sid"] == f"SM{3:032d}" and len(twilio.requests) == 3


async def test_a_permanent_error_is_not_retried(twilio: FakeTwilio) -> None:
    twilio.script = [(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})]
    sender = TwilioSender(config(twilio))
    with pytest.raises(SendError) as error:
        await sender.send("+525550000101", "hola")
    await sender.close()
    assert (error.value.status, error.value.code) == (400, 21211) and len(twilio.requests) == 1


@pytest.fixture
def output(ledger_url: str, twilio: FakeTwilio) -> WhatsAppOutput:
    settings = ChannelSettings(TOKEN, "https://bot.example", config(twilio), {"es": "HX" + "a" * 32})
    return WhatsAppOutput(settings, TwilioSender(settings.twilio), language="es")


async def test_sent_messages_are_logged_with_twilios_sid(
    output: WhatsAppOutput, twilio: FakeTwilio, ledger_url: str
) -> None:
    await output.send_text_message("+525550000101", "hola")
    (row,) = outbound(ledger_url)
    assert (row.body, row.status, row.provider_sid) == ("hola", "queued", f"SM{1:032d}")


async def test_long_texts_are_split_at_1600_characters(
    output: WhatsAppOutput, twilio: FakeTwilio, ledger_url: str
) -> None:
    text = " ".join(f"palabra{n}" for n in range(500))  # ~5,000 characters
    await output.send_text_message("+525550000101", text)
    bodies = [dict(r["form"])["Body"] for r in twilio.requests]
    assert len(bodies) == 4 and all(len(b) <= 1600 for b in bodies)
    assert " ".join(bodies) == text
    assert [r.body for r in outbound(ledger_url)] == bodies


async def test_outside_the_24h_window_the_approved_template_is_sent(
    output: WhatsAppOutput, twilio: FakeTwilio, ledger_url: str
) -> None:
    twilio.script = [(400, {"code": 63016, "message": "outside the allowed window"}), (201, {})]
    await output.send_text_message("+525550000101", "¿Cuándo podrías pagar?")
    template_request = dict(twilio.requests[1]["form"])
    assert template_request["ContentSid"] == "HX" + "a" * 32 and "Body" not in template_request
    assert json.loads(template_request["ContentVariables"]) == {"1": "Cobrador"}
    assert template_request["StatusCallback"] == CALLBACK
    freeform, template = outbound(ledger_url)
    assert (freeform.status, freeform.error_code) == ("failed", "63016")
    assert (template.template_sid, template.status) == ("HX" + "a" * 32, "queued")


async def test_a_failed_send_is_recorded_and_never_raises(
    output: WhatsAppOutput, twilio: FakeTwilio, ledger_url: str
) -> None:
    twilio.script = [(500, {})] * 4
    await output.send_text_message("+525550000101", "hola")  # must not raise
    (row,) = outbound(ledger_url)
    assert row.status == "failed" and row.error_code == "500"


async def test_buttons_become_a_numbered_menu(output: WhatsAppOutput, twilio: FakeTwilio) -> None:
    buttons = [{"title": "Sí", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
    await output.send_text_with_buttons("+525550000101", "¿Confirmas?", buttons)
    body = dict(twilio.requests[0]["form"])["Body"]
    assert body == "¿Confirmas?\n1) Sí\n2) No" and "/affirm" not in body


@pytest.mark.parametrize(("length", "parts"), [(0, 1), (1600, 1), (1601, 2), (4800, 3)])
def test_split_body_limits(length: int, parts: int) -> None:
    text = "x" * length
    chunks = split_body(text)
    assert len(chunks) == parts and "".join(chunks) == text and all(len(c) <= 1600 for c in chunks)
