"""The ingest on its own (no Rasa): what Twilio gets when the ledger is down,
and when the signature is wrong. A real aiohttp server on a free port."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Iterator

import pytest
import requests
from aiohttp import web

from cobrador.whatsapp.ingest import Ingest
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.simulator import signed_form, twilio_fields

TOKEN = "ingest-test-token"


@pytest.fixture
def ingest(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens there
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = ChannelSettings(TOKEN, base, None, {})
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(Ingest(settings, "http://127.0.0.1:1").app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield base
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_a_database_that_is_down_gets_a_clear_503_not_an_acknowledgement(ingest: str) -> None:
    url = ingest + "/webhooks/whatsapp/webhook"
    fields, signature = signed_form(TOKEN, url, twilio_fields("+525550000101", "hola", []))
    answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
    assert answer.text == "the message could not be stored; try again"


def test_the_signature_is_checked_before_the_database(ingest: str) -> None:
    url = ingest + "/webhooks/whatsapp/webhook"
    fields, _ = signed_form(TOKEN, url, twilio_fields("+525550000101", "hola", []))
    assert requests.post(url, data=fields, headers={"X-Twilio-Signature": "forged"}, timeout=10).status_code == 403
