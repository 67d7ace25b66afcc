"""The ingest on its own (no Rasa): what Twilio gets when the ledger is down,
when the signature is wrong, and when many messages arrive at once. A real
aiohttp server on a free port, a real ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Iterator

import pytest
import requests
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.whatsapp import ingest as ingest_module
from cobrador.whatsapp.ingest import Ingest
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.simulator import signed_form, twilio_fields

TOKEN = "ingest-test-token"


@contextmanager
def running_ingest(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An ingest on a free port whose Rasa does not answer (nothing listens)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    settings = ChannelSettings(TOKEN, base, None, {})
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(Ingest(settings, "http://127.0.0.1:1", retry_delays=(0.0,)).app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield base
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture
def ingest(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with running_ingest("postgresql://postgres@127.0.0.1:1/nowhere", monkeypatch) as base:  # nothing listens there
        yield base


def post_all(url: str, forms: list[tuple[dict, str]]) -> list[requests.Response]:
    """Posts the signed forms all at once, from as many threads."""
    barrier = threading.Barrier(len(forms))

    def one(form: tuple[dict, str]) -> requests.Response:
        barrier.wait()
        return requests.post(url, data=form[0], headers={"X-Twilio-Signature": form[1]}, timeout=30)

    with ThreadPoolExecutor(len(forms)) as pool:
        return list(pool.map(one, forms))


def inbound_rows(database_url: str) -> dict[str, tuple[str, str]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Message.provider_sid, Message.body, Message.phone).where(Message.direction == "inbound")
        ).all()
    return {sid: (body, phone) for sid, body, phone in rows}


def test_a_burst_with_replays_in_it_stores_each_message_once(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 debtors at the same instant, 10 of them with their message posted
    twice (Twilio's retry racing the first): one transaction or several, every
    request is acknowledged and every message stored exactly once, intact."""
    with running_ingest(ledger_url, monkeypatch) as base:
        url = base + "/webhooks/whatsapp/webhook"
        forms = [
            signed_form(TOKEN, url, twilio_fields(f"+5255500{n:05d}", f"te pago el viernes ¡{n}! 🙏", []))
            for n in range(40)
        ]
        answers = post_all(url, forms + forms[:10])
        assert [a.status_code for a in answers] == [200] * 50
        stored = inbound_rows(ledger_url)
        assert len(stored) == 40
        for fields, _ in forms:
            assert stored[fields["MessageSid"]] == (fields["Body"], fields["From"].removeprefix("whatsapp:"))
        replay = requests.post(url, data=forms[0][0], headers={"X-Twilio-Signature": forms[0][1]}, timeout=10)
        assert replay.status_code == 200 and len(inbound_rows(ledger_url)) == 40


def test_one_message_that_cannot_be_stored_does_not_cost_the_others_theirs(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails is retried message by message: only the bad one gets 503."""
    real = ingest_module.store_inbound_batch

    def failing_for_poison(inbounds):  # noqa: ANN001, ANN202
        if any(i.body == "poison" for i in inbounds):
            raise OperationalError("INSERT", {}, Exception("simulated failure"))
        return real(inbounds)

    monkeypatch.setattr(ingest_module, "store_inbound_batch", failing_for_poison)
    with running_ingest(ledger_url, monkeypatch) as base:
        url = base + "/webhooks/whatsapp/webhook"
        forms = [signed_form(TOKEN, url, twilio_fields(f"+5255510{n:05d}", f"hola {n}", [])) for n in range(20)]
        poison = signed_form(TOKEN, url, twilio_fields("+525551099999", "poison", []))
        answers = post_all(url, [*forms, poison])
        assert [a.status_code for a in answers] == [200] * 20 + [503]
        stored = inbound_rows(ledger_url)
        assert set(stored) == {fields["MessageSid"] for fields, _ in forms}


def test_a_nul_in_the_text_is_replaced_and_an_unstorable_sid_refused(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL cannot store a NUL in text: unreplaced, the message could never
    be stored and Twilio would retry it forever. A NUL in the MessageSid is malformed."""
    with running_ingest(ledger_url, monkeypatch) as base:
        url = base + "/webhooks/whatsapp/webhook"
        fields, signature = signed_form(TOKEN, url, twilio_fields("+525552000001", "pago\x00mañana", []))
        answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
        assert answer.status_code == 200
        assert inbound_rows(ledger_url)[fields["MessageSid"]][0] == "pago\ufffdmañana"
        bad = twilio_fields("+525552000002", "hola", [])
        bad["MessageSid"] = "SM\x00bad"
        fields, signature = signed_form(TOKEN, url, bad)
        answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
        assert answer.status_code == 400 and "SM\x00bad" not in inbound_rows(ledger_url)
        bad["MessageSid"] = "SM" + "0" * 63  # longer than any Twilio SID, and than the log keeps
        fields, signature = signed_form(TOKEN, url, bad)
        answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
        assert answer.status_code == 400 and len(inbound_rows(ledger_url)) == 1


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
