"""Outreach through a fake Twilio HTTP server (Twilio's servers cannot run here;
the worker, the sender and the ledger are real). The fake runs on a thread of
its own because the worker is synchronous and runs its own event loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import socket
import threading
from typing import Any, Iterator

import pytest
from aiohttp import web
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.outreach import decisions, run_once
from cobrador.whatsapp.twilio_api import TwilioConfig
from tests.cobrador.outreach.conftest import Book, at

FROM = "whatsapp:+14155238886"
CALLBACK = "https://bot.example/webhooks/whatsapp/status"


class FakeTwilio:
    def __init__(self) -> None:
        self.requests: list[list[tuple[str, str]]] = []
        self.script: list[tuple[int, dict[str, Any]]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append([(k, str(v)) for k, v in form.items()])
        status, payload = self.script.pop(0) if self.script else (201, {})
        if status < 300:
            payload = {"sid": f"SM{len(self.requests):032d}", "status": "queued", **payload}
        return web.json_response(payload, status=status)


@pytest.fixture
def twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", fake.handle)
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{port}"
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def config(fake: FakeTwilio) -> TwilioConfig:
    return TwilioConfig(
        "AC" + "1" * 32, "token", FROM, status_callback=CALLBACK, api_base=fake.url, max_attempts=1,
        backoff_seconds=0.01,
    )  # fmt: skip


def run(book: Book, fake: FakeTwilio, when: str):
    return run_once(at(when), database_url=book.url, sender=config(fake), sleep=lambda _: None)


def test_a_template_is_posted_exactly_as_twilio_expects(book: Book, twilio: FakeTwilio) -> None:
    mx = book.creditor()
    book.account(mx, due=dt.date(2026, 12, 3), phone="+525551234567")
    assert run(book, twilio, "2026-11-23T09:00:00-06:00").sent == 1
    (form,) = twilio.requests
    fields = dict(form)
    assert [k for k, _ in form] == ["From", "To", "ContentSid", "ContentVariables", "StatusCallback"]
    assert fields["From"] == FROM and fields["To"] == "whatsapp:+525551234567"
    assert fields["ContentSid"] == "HX00000000000000000000000000000101"
    variables = json.loads(fields["ContentVariables"])
    assert variables["1"] == "María" and variables["5"] == "$1,500.00 MXN"
    assert set(variables) == {str(n) for n in range(1, 10)} and all(v.strip() for v in variables.values())
    assert fields["StatusCallback"] == CALLBACK
    with session_scope(book.url) as session:
        (message,) = session.execute(select(Message)).scalars()
        assert (message.status, message.provider_sid) == ("queued", "SM" + "1".zfill(32))
        assert message.template_sid == "HX00000000000000000000000000000101"


def test_a_refused_send_is_recorded_and_a_transient_one_retried(book: Book, twilio: FakeTwilio) -> None:
    mx = book.creditor()
    book.account(mx, due=dt.date(2026, 12, 3))
    book.account(mx, due=dt.date(2026, 12, 3))
    twilio.script = [(400, {"code": 63018, "message": "rate"}), (503, {"message": "busy"})]
    report = run(book, twilio, "2026-11-23T09:00:00-06:00")
    assert (report.sent, report.cancelled, report.deferred) == (0, 1, 1)
    outcomes = [(d.outcome, d.reason) for d in decisions(book.url)]
    assert outcomes == [("cancelled", "send_failed"), ("deferred", "send_failed")]
    with session_scope(book.url) as session:
        statuses = [m.status for m in session.execute(select(Message).order_by(Message.id)).scalars()]
    assert statuses == ["failed", "failed"]
    run(book, twilio, "2026-11-23T09:04:00-06:00")
    assert len(twilio.requests) == 2  # the retry waits five minutes
    run(book, twilio, "2026-11-23T09:05:00-06:00")
    assert len(twilio.requests) == 3
    assert [(d.outcome, d.reason) for d in decisions(book.url)][-1] == ("sent", "allowed")
