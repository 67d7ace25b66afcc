"""The ingest on its own (no Rasa): what Twilio gets when the ledger is down,
when the signature is wrong, and when many messages arrive at once. A real
aiohttp server on a free port, a real ledger on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import io
import json
import shutil
import socket
import tarfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest
import requests
from aiohttp import web
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from cobrador.devstack import free_port
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.whatsapp import ingest as ingest_module
from cobrador.whatsapp.channel import Inbound, forward_key, forward_signature
from cobrador.whatsapp.forwarded import covered
from cobrador.whatsapp.ingest import Ingest
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.simulator import signed_form, twilio_fields
from cobrador.whatsapp.understanding import Understanding
from tests.support import wait_until

TOKEN = "ingest-test-token"


@contextmanager
def running_ingest(
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    rasa_url: str = "http://127.0.0.1:1",
    settings: Optional[ChannelSettings] = None,
    understanding: Optional[Understanding] = None,
) -> Iterator[str]:
    """An ingest on a free port (local mode unless `settings` say otherwise);
    by default its Rasa does not answer (nothing listens), and it parses
    nothing ahead (no `understanding`)."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    if settings is None:
        settings = ChannelSettings(TOKEN, base, None, {})
    else:
        settings = dataclasses.replace(settings, public_url=base)
    with serving(Ingest(settings, rasa_url, retry_delays=(0.0,), understanding=understanding).app(), port):
        yield base


@contextmanager
def serving(app: web.Application, port: int) -> Iterator[str]:
    """Serves `app` on 127.0.0.1:`port` from an event loop on a thread of its own."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
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


def post_message(base: str, phone: str, text: str, token: str = TOKEN) -> dict[str, str]:
    """Posts one inbound message to the ingest at `base`, signed with `token`
    as Twilio signs; its fields, once acknowledged (200)."""
    url = base + "/webhooks/whatsapp/webhook"
    fields, signature = signed_form(token, url, twilio_fields(phone, text, []))
    answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
    assert answer.status_code == 200
    return fields


def inbound_rows(database_url: str) -> dict[str, tuple[str, str]]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Message.provider_sid, Message.body, Message.phone).where(Message.direction == "inbound")
        ).all()
    return {sid: (body, phone) for sid, body, phone in rows}


def test_the_health_check_says_the_mode_and_that_nothing_is_parsed_ahead_without_a_worker(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_ingest(ledger_url, monkeypatch) as base:
        answer = requests.get(base + "/webhooks/whatsapp/", timeout=10)
    assert answer.status_code == 200
    health = answer.json()
    # Whether the heap is frozen is the process's (`serve` freezes it; here
    # the test runs the app itself: tests/e2e/test_whatsapp_channel.py looks).
    assert isinstance(health.pop("heap_frozen"), bool)
    assert health == {"status": "ok", "mode": "local", "parse_ahead": "off"}


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


def test_a_write_goes_to_a_database_thread_at_once_and_those_that_come_meanwhile_go_together() -> None:
    """The acknowledgement's store starts on a database thread in the webhook's
    own step, not some turns of the event loop later (at one conversation that
    wait was as long as the store); what is submitted while a batch is written
    goes in the next batch, in one call."""

    async def scenario() -> None:
        pool = ingest_module.PriorityPool(1, "test-writer")
        started, release, batches = threading.Event(), threading.Event(), []

        def write(items: list[int]) -> list[int]:
            batches.append(list(items))
            started.set()
            release.wait(10)
            return [item * 2 for item in items]

        try:
            writer = ingest_module.GroupWriter(pool, 0, write)
            first = writer.submit(1)
            # No await since the submit: the thread has the batch without the loop's help.
            assert started.wait(5)
            second, third = writer.submit(2), writer.submit(3)
            release.set()
            assert await asyncio.wait_for(asyncio.gather(first, second, third), 10) == [2, 4, 6]
            assert batches == [[1], [2, 3]]
        finally:
            release.set()
            pool.shutdown()

    asyncio.run(scenario())


def test_one_message_that_cannot_be_stored_does_not_cost_the_others_theirs(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that fails is retried message by message: only the bad one gets 503."""
    real = ingest_module.store_inbound_batch

    def failing_for_poison(inbounds, claims):  # noqa: ANN001, ANN202
        if any(i.body == "poison" for i in inbounds):
            raise OperationalError("INSERT", {}, Exception("simulated failure"))
        return real(inbounds, claims)

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
        fields = post_message(base, "+525552000001", "pago\x00mañana")
        url = base + "/webhooks/whatsapp/webhook"
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


def inbound_statuses(database_url: str) -> dict[str, str]:
    with session_scope(database_url) as session:
        rows = session.execute(select(Message.provider_sid, Message.status).where(Message.direction == "inbound"))
        return dict(rows.all())


def test_a_batch_stores_claimed_messages_processing_with_their_debtors_language(ledger_url: str) -> None:
    """The claim rides on the acknowledgement's transaction: flagged messages
    are stored `processing` and come back in their debtor's language (Spanish
    for an unknown number); the others are stored `received`; a replay is not new."""
    from cobrador.ledger.models import Debtor
    from cobrador.whatsapp.channel import Inbound, store_inbound_batch

    with session_scope(ledger_url) as session:
        session.add(Debtor(phone="+13125550101", name="Beth Ross", language="en"))
    batch = [
        Inbound("SM" + "1" * 32, "+13125550101", "pay friday"),
        Inbound("SM" + "2" * 32, "+525550009999", "quién habla?"),
        Inbound("SM" + "3" * 32, "+13125550101", "and the rest?"),
    ]
    stored = store_inbound_batch(batch, [True, True, False])
    assert [(s.new, s.language) for s in stored] == [(True, "en"), (True, "es"), (True, None)]
    assert inbound_statuses(ledger_url) == {
        "SM" + "1" * 32: "processing", "SM" + "2" * 32: "processing", "SM" + "3" * 32: "received",
    }  # fmt: skip
    again = store_inbound_batch(batch[:1], [True])
    assert [(s.new, s.language) for s in again] == [(False, None)]


def test_a_claimed_message_whose_turn_cannot_start_is_given_back_for_the_sweep(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa never answers here: a message stored claimed must not stay
    `processing` (the sweep would wait minutes for it); it goes back to
    `received`, which the Rasa channel's sweep answers within 30 s."""
    with running_ingest(ledger_url, monkeypatch) as base:
        fields = post_message(base, "+525553000001", "hola")
        assert wait_for_status(ledger_url, fields["MessageSid"], "received") == "received"


def test_a_message_rasa_cannot_take_while_it_is_still_being_stored_is_given_back_once_stored(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The forward goes while the message is stored claimed; if Rasa cannot
    take it before the store commits, it is given back after the commit, not
    before (where the release finds no row, and the message, stored
    `processing`, would wait a minute for the stale-claim sweep). Fails
    without the wait on PostgreSQL, whose ingest stores and releases on
    threads of their own."""
    real = ingest_module.store_inbound_batch

    def slow(inbounds, claims):  # noqa: ANN001, ANN202
        threading.Event().wait(0.3)
        return real(inbounds, claims)

    monkeypatch.setattr(ingest_module, "store_inbound_batch", slow)
    with running_ingest(ledger_url, monkeypatch) as base:
        fields = post_message(base, "+525553000011", "hola")
        assert wait_for_status(ledger_url, fields["MessageSid"], "received") == "received"


@contextmanager
def fake_rasa(
    status: int,
    replies: list[dict] | Callable[[dict], list[dict]],
    model: Optional[list[str]] = None,
    seconds: float = 0.0,
) -> Iterator[tuple[str, list[dict]]]:
    """A stand-in for the Rasa channel's /process: answers every forward with
    `status` (and `replies`, or what `replies(message)` gives, and the id in
    `model[0]` as the model it runs, if given) after `seconds` (the turn),
    and keeps what it was sent (what followed the message on lines of its
    own, whether it was stored, the debtor's language and the parse, kept as
    the message's; one not stored is answered 409). It checks the signatures as the channel does."""
    received: list[dict] = []
    keys = [forward_key(token) for token in (TOKEN, "account-auth-token")]  # local and Twilio mode

    def signed(signature: str, data: bytes) -> bool:
        return any(signature == forward_signature(key, data) for key in keys)

    async def process(request: web.Request) -> web.Response:
        first = (await request.content.readline()).rstrip(b"\n")
        assert signed(request.headers["X-Cobrador-Signature"], first)
        message = json.loads(first)
        # As the channel does: what follows is read until the turn has what
        # it waits for, and the answer goes then (the ingest ends its request
        # only once it has recorded the replies).
        stored_follows, parse_follows = message.get("stored_follows", False), message.get("parse_follows", False)
        while stored_follows or parse_follows:  # word that it is stored, its parse
            line = (await request.content.readline()).rstrip(b"\n")
            if not line:
                break
            signature, _, data = line.partition(b" ")
            assert signed(signature.decode(), covered(message["sid"], data))
            item = json.loads(data)
            if "stored" in item:
                stored_follows = False
                message["stored"] = item["stored"]
                message["language"] = item.get("language")
            elif "parse" in item:
                parse_follows = False
                if item["parse"] is not None:  # null: the worker had none to give
                    message["parse"] = item["parse"]
        received.append(message)
        if message.get("stored") is False:
            return web.Response(status=409, text="not stored")
        await asyncio.sleep(seconds)
        if status != 200:
            return web.Response(status=status, text="already answered")
        answer = replies(message) if callable(replies) else replies
        return web.json_response({"messages": answer, **({"model": model[0]} if model else {})})

    app = web.Application()
    app.router.add_post("/webhooks/whatsapp/process", process)
    with serving(app, free_port()) as url:
        yield url, received


def wait_for_status(database_url: str, sid: str, status: str) -> str:
    for _ in range(100):
        if inbound_statuses(database_url).get(sid) == status:
            break
        threading.Event().wait(0.05)
    return inbound_statuses(database_url)[sid]


def test_a_turn_stored_claimed_is_answered_and_its_replies_recorded_with_the_processed_mark(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = {"phone": "+525553000002", "body": "¡Hola! Soy el asistente.", "media": [], "sender": "bot"}
    with fake_rasa(200, [reply]) as (rasa_url, received), running_ingest(ledger_url, monkeypatch, rasa_url) as base:
        fields = post_message(base, "+525553000002", "hola")
        assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"
    assert [(m["sid"], m["language"]) for m in received] == [(fields["MessageSid"], "es")]
    with session_scope(ledger_url) as session:
        outbox = session.execute(
            select(Message.body, Message.status).where(Message.direction == "outbound", Message.phone == reply["phone"])
        ).all()
    assert [tuple(row) for row in outbox] == [(reply["body"], "queued")]


def test_while_rasa_is_idle_a_turn_goes_as_its_message_is_stored_and_under_load_once_stored(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no other turn under way, the message goes to Rasa at once and word
    that it is stored (with the debtor's language) follows on the same
    request; a replay goes the same way and is told it was not stored, so
    Rasa drops it and nothing is recorded. While another turn runs, a message
    goes once stored, the language in the message itself."""
    reply = {"phone": "+525553000021", "body": "¡Hola!", "media": [], "sender": "bot"}
    with (
        fake_rasa(200, [reply], seconds=0.5) as (rasa_url, received),
        running_ingest(ledger_url, monkeypatch, rasa_url) as base,
    ):
        url = base + "/webhooks/whatsapp/webhook"
        fields, signature = signed_form(TOKEN, url, twilio_fields("+525553000021", "hola", []))
        headers = {"X-Twilio-Signature": signature}
        assert requests.post(url, data=fields, headers=headers, timeout=10).status_code == 200
        wait_until(lambda: received)  # its turn runs (half a second): Rasa is busy
        busy = post_message(base, "+525553000022", "hola")
        assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"
        assert wait_for_status(ledger_url, busy["MessageSid"], "processed") == "processed"
        assert requests.post(url, data=fields, headers=headers, timeout=10).status_code == 200  # a replay
        wait_until(lambda: len(received) == 3)
        outbound = outbound_bodies(ledger_url)
    first, second, replay = received
    assert (first["sid"], first.get("stored_follows"), first.get("stored"), first["language"]) == (
        fields["MessageSid"], True, True, "es",
    )  # fmt: skip
    assert (second["sid"], "stored_follows" in second, second["language"]) == (busy["MessageSid"], False, "es")
    assert (replay["sid"], replay.get("stored_follows"), replay.get("stored")) == (fields["MessageSid"], True, False)
    assert outbound == ["¡Hola!", "¡Hola!"]  # one answer per message, none for the replay
    assert inbound_statuses(ledger_url) == {fields["MessageSid"]: "processed", busy["MessageSid"]: "processed"}


def test_a_message_that_comes_while_the_last_turn_is_recorded_is_stored_claimed_and_goes_to_rasa_at_once(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa has answered the debtor's turn and its replies are being recorded
    when the next message comes: that one is stored already claimed (no claim
    transaction of its own) and goes to Rasa at once, first, as to an idle
    Rasa (the recording is not waited for); its replies are recorded after
    the first turn's, which were handed to the writer first."""
    phone = "+525553000031"
    recording, release = threading.Event(), threading.Event()
    claimed_apart: list[str] = []
    real_claim = ingest_module.claim_for_turn

    class HeldRecording(ingest_module.GroupWriter):
        """The first turn's recording is slow to be written: its batch waits
        (on the event loop: SQLite's one database thread stays free to store
        the next message), and what comes meanwhile waits behind it, as
        behind a slow write."""

        def _start(self, items):  # noqa: ANN001, ANN202
            if self.write is not ingest_module.finish_turns or recording.is_set():
                return super()._start(items)
            recording.set()

            async def later():  # noqa: ANN202
                await asyncio.get_running_loop().run_in_executor(None, release.wait, 10)
                return await super(HeldRecording, self)._start(items)

            return asyncio.ensure_future(later())

    def claim(sid, phone, recovered):  # noqa: ANN001, ANN202
        claimed_apart.append(sid)
        return real_claim(sid, phone, recovered)

    def replies(message: dict) -> list[dict]:
        return [{"phone": phone, "body": f"re: {message['body']}", "media": [], "sender": "bot"}]

    monkeypatch.setattr(ingest_module, "GroupWriter", HeldRecording)
    monkeypatch.setattr(ingest_module, "claim_for_turn", claim)
    with fake_rasa(200, replies) as (rasa_url, received), running_ingest(ledger_url, monkeypatch, rasa_url) as base:
        first = post_message(base, phone, "hola")
        assert recording.wait(10)  # answered by Rasa, being recorded
        second = post_message(base, phone, "quiero pagar")
        assert inbound_statuses(ledger_url)[second["MessageSid"]] == "processing"  # claimed as it was stored
        wait_until(lambda: len(received) == 2)  # at Rasa while the first's recording still waits
        assert inbound_statuses(ledger_url) == {first["MessageSid"]: "processing", second["MessageSid"]: "processing"}
        release.set()
        assert wait_for_status(ledger_url, second["MessageSid"], "processed") == "processed"
    assert [(m["sid"], m.get("stored_follows")) for m in received] == [
        (first["MessageSid"], True), (second["MessageSid"], True),
    ]  # fmt: skip
    assert claimed_apart == []
    assert inbound_statuses(ledger_url)[first["MessageSid"]] == "processed"
    assert outbound_bodies(ledger_url) == ["re: hola", "re: quiero pagar"]  # in the order of the turns


def test_while_rasa_is_idle_the_message_goes_to_it_before_it_is_handed_to_be_stored(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa reads the debtor's tracker while the message is stored: with no
    turn under way, the forward has gone (Rasa asked for what follows it)
    by the time the message is handed to be stored; under load it is handed
    to be stored first and goes once stored."""
    went: dict[str, threading.Event] = {}  # by MessageSid
    seen_by_store: list[bool] = []
    real_body, real_submit = Ingest._forward_body, ingest_module.GroupWriter.submit

    async def forward_body(self, handover):  # noqa: ANN001, ANN202
        forward = await real_body(self, handover)
        if forward is None or isinstance(forward[0], bytes):
            return forward
        stream, headers = forward
        gone = went[handover.inbound.sid] = threading.Event()

        async def watched():  # noqa: ANN202
            async for chunk in stream:
                yield chunk
                gone.set()  # asked for the next chunk: this one went

        return watched(), headers

    def submit(self, *item):  # noqa: ANN001, ANN002, ANN202
        if isinstance(item[0], Inbound):  # a message handed to be stored
            seen_by_store.append(item[0].sid in went and went[item[0].sid].is_set())
        return real_submit(self, *item)

    monkeypatch.setattr(Ingest, "_forward_body", forward_body)
    monkeypatch.setattr(ingest_module.GroupWriter, "submit", submit)
    reply = {"phone": "+525553000041", "body": "¡Hola!", "media": [], "sender": "bot"}
    with (
        fake_rasa(200, [reply], seconds=0.5) as (rasa_url, received),
        running_ingest(ledger_url, monkeypatch, rasa_url) as base,
    ):
        first = post_message(base, "+525553000041", "hola")
        wait_until(lambda: received)  # its turn runs (half a second): Rasa is busy
        busy = post_message(base, "+525553000042", "hola")
        assert wait_for_status(ledger_url, busy["MessageSid"], "processed") == "processed"
    assert seen_by_store == [True, False]
    assert [(m["sid"], m.get("stored_follows")) for m in received] == [
        (first["MessageSid"], True), (busy["MessageSid"], None),
    ]  # fmt: skip


def outbound_bodies(database_url: str) -> list[str]:
    with session_scope(database_url) as session:
        return list(
            session.execute(select(Message.body).where(Message.direction == "outbound").order_by(Message.id)).scalars()
        )


def touched_at(database_url: str, sid: str) -> dt.datetime:
    with session_scope(database_url) as session:
        return session.execute(select(Message.updated_at).where(Message.provider_sid == sid)).scalar_one()


def test_the_claims_held_are_touched_every_period_and_only_those(ledger_url: str) -> None:
    """A live process's claims never go stale: `HeldClaims` touches the ones
    it holds; a claim it let go of, or a message no longer `processing`, is
    left as it is (the sweep takes a dead process's claims)."""
    from cobrador.whatsapp.channel import HeldClaims, Inbound, store_inbound_batch

    held, let_go, answered = ("SM" + n * 32 for n in "456")
    batch = [Inbound(sid, "+525553000010", "hola") for sid in (held, let_go, answered)]
    store_inbound_batch(batch, [True, True, False])
    hour_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    with session_scope(ledger_url) as session:
        session.execute(update(Message).where(Message.direction == "inbound").values(updated_at=hour_ago))
    before = {sid: touched_at(ledger_url, sid) for sid in (held, let_go, answered)}
    claims = HeldClaims(asyncio.to_thread, every=0.05)

    async def run() -> None:
        for sid in (held, let_go, answered):
            claims.hold(sid)
        claims.let_go(let_go)
        keeping = asyncio.create_task(claims.keep())
        await asyncio.sleep(0.3)
        keeping.cancel()

    asyncio.run(run())
    assert touched_at(ledger_url, held) - before[held] > dt.timedelta(minutes=59)
    assert touched_at(ledger_url, let_go) == before[let_go]
    assert touched_at(ledger_url, answered) == before[answered]
    assert inbound_statuses(ledger_url)[held] == "processing"


def test_a_turn_longer_than_the_keep_period_keeps_its_claim_fresh(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa takes 1.5 s over the turn; the ingest touches the claim every
    0.1 s meanwhile, so the sweep would not take it for a dead ingest's."""
    monkeypatch.setenv("COBRADOR_KEEP_CLAIMS_SECONDS", "0.1")
    reply = {"phone": "+525553000011", "body": "¡Hola!", "media": [], "sender": "bot"}
    with (
        fake_rasa(200, [reply], seconds=1.5) as (rasa_url, received),
        running_ingest(ledger_url, monkeypatch, rasa_url) as base,
    ):
        fields = post_message(base, "+525553000011", "hola")
        wait_until(lambda: received)
        claimed = touched_at(ledger_url, fields["MessageSid"])
        threading.Event().wait(0.8)
        assert inbound_statuses(ledger_url)[fields["MessageSid"]] == "processing"
        assert touched_at(ledger_url, fields["MessageSid"]) - claimed >= dt.timedelta(seconds=0.5)
        assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"


def test_a_forward_rasa_says_it_already_answers_is_left_to_it(ledger_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """409: Rasa's recovery or sweep took the message while the ingest was
    retrying; the ingest neither records nor gives it back."""
    with fake_rasa(409, []) as (rasa_url, received), running_ingest(ledger_url, monkeypatch, rasa_url) as base:
        fields = post_message(base, "+525553000003", "hola")
        wait_until(lambda: received, step=0.05)
        threading.Event().wait(0.3)
        assert len(received) == 1
        assert inbound_statuses(ledger_url)[fields["MessageSid"]] == "processing"


@contextmanager
def rasa_that_dies_mid_turn() -> Iterator[tuple[str, list[bytes]]]:
    """A Rasa that takes each forward's first line and then goes away (it
    died mid-turn): what it got of each forward, one per connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            with connection:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                got.append(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", got
    finally:
        listener.close()


def test_a_turn_rasa_dropped_midway_stays_claimed_for_the_stale_claim_sweep(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rasa took the message and went away before answering: it may have run
    the turn, so the ingest neither gives the message back nor forwards it
    again; it stays claimed, and the channel's stale-claim sweep (or Rasa's
    start-up recovery) answers it once, from the tracker if the turn ran."""
    with rasa_that_dies_mid_turn() as (rasa_url, got), running_ingest(ledger_url, monkeypatch, rasa_url) as base:
        fields = post_message(base, "+525553000012", "hola")
        wait_until(lambda: got, step=0.05)
        threading.Event().wait(0.5)
        assert len(got) == 1
        assert got[0].startswith(b"POST /webhooks/whatsapp/process HTTP/1.1\r\n")
        assert inbound_statuses(ledger_url)[fields["MessageSid"]] == "processing"


def test_the_rasa_channel_refuses_a_second_way_in_only_for_a_while(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message just answered is not run again (the ingest's retry racing the
    start-up recovery); two minutes later the sweep may take it over again (its
    answer could not be recorded), and the memory stays bounded."""
    from cobrador.whatsapp import channel as channel_module
    from cobrador.whatsapp.channel import WhatsAppInput

    now = [1000.0]
    monkeypatch.setattr(channel_module.time, "monotonic", lambda: now[0])
    rasa_channel = WhatsAppInput(ChannelSettings(TOKEN, "http://127.0.0.1:1", None, {}))
    rasa_channel._answered("SM" + "a" * 32)
    assert rasa_channel._just_answered("SM" + "a" * 32)
    assert not rasa_channel._just_answered("SM" + "b" * 32)
    now[0] += 121
    assert not rasa_channel._just_answered("SM" + "a" * 32)
    for n in range(30):
        rasa_channel._answered(f"SM{n:032d}", keep=10)
    assert len(rasa_channel.answered) == 10 and f"SM{29:032d}" in rasa_channel.answered


@contextmanager
def fake_twilio(
    refuse: tuple[int, ...] = (),
    meanwhile: Optional[Callable[[int], None]] = None,
    held: Optional[list[dict]] = None,
    listed: Optional[list[dict]] = None,
) -> Iterator[tuple[str, list[dict]]]:
    """Twilio's Messages API as far as the ingest uses it (its servers cannot
    run here): records each POST's form and answers 201 with a new SID, or,
    for the requests numbered in `refuse` (from 1), 400 with error 21211 (an
    invalid 'To' number: permanent, not retried). `meanwhile(n)` runs before
    request n is answered (what happens while it is under way).

    A GET lists, as Twilio documents it (filtered by To and From, newest first,
    PageSize at most), the messages it holds: `held` (Twilio's JSON, created
    before the test) and those POSTed since; each GET's query goes to `listed`.
    With `held` None the GET fails (500), as a Twilio that cannot be asked."""
    received: list[dict] = []
    holds = None if held is None else list(held)

    async def messages(request: web.Request) -> web.Response:
        posted = await request.post()
        received.append({"path": request.path, "form": dict(posted)})
        if meanwhile is not None:
            meanwhile(len(received))
        if len(received) in refuse:
            return web.json_response({"code": 21211, "message": "Invalid 'To' Phone Number"}, status=400)
        sid = f"SM{len(received):032d}"
        if holds is not None:
            form = received[-1]["form"]
            holds.append({
                "sid": sid, "to": form["To"], "from": form["From"], "body": form.get("Body", ""),
                "num_media": str(len(posted.getall("MediaUrl", []))), "status": "queued",
                "direction": "outbound-api", "date_created": email.utils.format_datetime(dt.datetime.now(dt.timezone.utc)),
            })  # fmt: skip
        return web.json_response({"sid": sid, "status": "queued"}, status=201)

    async def listing(request: web.Request) -> web.Response:
        if listed is not None:
            listed.append({"query": dict(request.query), "authorization": request.headers.get("Authorization")})
        if holds is None:
            return web.json_response({"code": 20500, "message": "Internal Server Error"}, status=500)
        query = request.query
        found = [m for m in holds if m["to"] == query.get("To") and m["from"] == query.get("From")]
        found.sort(key=lambda m: email.utils.parsedate_to_datetime(m["date_created"]), reverse=True)
        return web.json_response({"messages": found[: int(query.get("PageSize", "50"))], "next_page_uri": None})

    app = web.Application()
    app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages)
    app.router.add_get("/2010-04-01/Accounts/{sid}/Messages.json", listing)
    with serving(app, free_port()) as url:
        yield url, received


def outbound_rows(database_url: str, phone: str) -> list[tuple]:
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Message.body, Message.status, Message.provider_sid, Message.error_code)
            .where(Message.direction == "outbound", Message.phone == phone)
            .order_by(Message.id)
        ).all()
    return [tuple(row) for row in rows]


def when_sent(database_url: str, phone: str, count: int) -> list[tuple]:
    """The phone's logged replies once `count` of them are no longer being sent."""
    for _ in range(200):
        rows = outbound_rows(database_url, phone)
        if len(rows) >= count and all(status != "sending" for _, status, _, _ in rows):
            return rows
        threading.Event().wait(0.05)
    return outbound_rows(database_url, phone)


TWILIO_CALLBACK = "https://bot.example/webhooks/whatsapp/status"


def twilio_settings(twilio_url: str) -> ChannelSettings:
    """Twilio mode, against the fake Twilio at `twilio_url`."""
    from cobrador.whatsapp.twilio_api import TwilioConfig

    twilio = TwilioConfig(
        "AC" + "1" * 32, "account-auth-token", "whatsapp:+14155238886",
        status_callback=TWILIO_CALLBACK, api_base=twilio_url,
    )  # fmt: skip
    return ChannelSettings("account-auth-token", "", twilio, {})


def twilio_turn(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, replies: list[dict], refuse: tuple[int, ...] = ()
) -> tuple[list[dict], list[tuple]]:
    """A signed "hola" through an ingest in Twilio mode whose Rasa answers
    `replies`: the requests Twilio got, and the replies as logged once sent."""
    phone = replies[0]["phone"]
    with fake_twilio(refuse) as (twilio_url, sent), fake_rasa(200, replies) as (rasa_url, _):
        with running_ingest(ledger_url, monkeypatch, rasa_url, twilio_settings(twilio_url)) as base:
            fields = post_message(base, phone, "hola", "account-auth-token")
            assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"
            logged = when_sent(ledger_url, phone, len(replies))
    return sent, logged


def test_with_twilio_the_ingest_sends_a_turns_replies_in_order_and_logs_them(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The production path: a webhook signed with the account's auth token,
    the turn's replies (from a stand-in Rasa) sent through Twilio's API in
    order with the sender, the debtor and the status callback, each logged
    with Twilio's SID, and the message marked processed."""
    from cobrador.whatsapp import channel as channel_module

    writers: list[tuple[str, str]] = []  # what wrote the message log, and from which thread
    for name in ("finish_turns_to_send", "record_outcomes", "_store_outbound", "_mark"):
        real = getattr(channel_module, name)

        def on_thread(*args, _real=real, _name=name):  # noqa: ANN002, ANN202
            writers.append((_name, threading.current_thread().name))
            return _real(*args)

        monkeypatch.setattr(channel_module, name, on_thread)
        if hasattr(ingest_module, name):
            monkeypatch.setattr(ingest_module, name, on_thread)
    phone = "+525553000004"
    replies = [
        {"phone": phone, "body": "¡Hola! Soy el asistente virtual.", "media": [], "sender": "bot"},
        {"phone": phone, "body": "¿Con quién tengo el gusto?", "media": [], "sender": "bot"},
    ]
    sent, logged = twilio_turn(ledger_url, monkeypatch, replies)
    assert [request["form"] for request in sent] == [
        {
            "From": "whatsapp:+14155238886", "To": f"whatsapp:{phone}", "Body": reply["body"],
            "StatusCallback": TWILIO_CALLBACK,
        }
        for reply in replies
    ]  # fmt: skip
    assert logged == [
        (replies[0]["body"], "queued", f"SM{1:032d}", None),
        (replies[1]["body"], "queued", f"SM{2:032d}", None),
    ]
    # Two writes for the turn, whatever its number of replies (logged
    # `sending` with the "processed" mark before the sends; their outcomes
    # after), on the ingest's own database threads (on SQLite its one
    # writer), never on threads of their own that would queue on SQLite's lock.
    assert [name for name, _ in writers] == ["finish_turns_to_send", "record_outcomes"]
    assert all(thread.startswith("ingest-") for _, thread in writers)


def test_with_twilio_a_refused_send_is_logged_failed_and_the_turn_and_its_other_replies_go_on(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    phone = "+525553000006"
    replies = [{"phone": phone, "body": f"respuesta {n}", "media": [], "sender": "bot"} for n in (1, 2, 3)]
    sent, logged = twilio_turn(ledger_url, monkeypatch, replies, refuse=(2,))
    assert [request["form"]["Body"] for request in sent] == ["respuesta 1", "respuesta 2", "respuesta 3"]
    assert logged == [
        ("respuesta 1", "queued", f"SM{1:032d}", None),
        ("respuesta 2", "failed", None, "21211"),
        ("respuesta 3", "queued", f"SM{3:032d}", None),
    ]


def test_with_twilio_replies_a_crash_left_unsent_are_sent_once_in_order_by_the_next_ingest(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A turn's replies are logged `sending` with its "processed" mark before
    they are sent; if the ingest dies then, the next one sends them (once:
    it claims each), and leaves alone replies being sent right now and the
    local-mode outbox."""
    from cobrador.ledger import messages as message_log

    old = message_log.utcnow() - dt.timedelta(minutes=10)
    with session_scope(ledger_url) as session:
        for phone, body, status in [
            ("+525553000007", "primera", "sending"), ("+525553000008", "en camino", "sending"),
            ("+525553000007", "segunda", "sending"), ("+525553000009", "del simulador", "queued"),
        ]:  # fmt: skip
            message_id = message_log.record_outbound(session, phone, body, status=status)
            if body != "en camino":  # that one is being sent by a live ingest
                session.execute(update(Message).where(Message.id == message_id).values(updated_at=old))
    monkeypatch.setenv("COBRADOR_RESEND_SECONDS", "0.2")
    with fake_twilio(held=[]) as (twilio_url, sent):  # Twilio has none of them
        with running_ingest(ledger_url, monkeypatch, settings=twilio_settings(twilio_url)):
            resent = when_sent(ledger_url, "+525553000007", 2)
            threading.Event().wait(1.0)  # several more sweeps
    assert [(r["form"]["To"], r["form"]["Body"]) for r in sent] == [
        ("whatsapp:+525553000007", "primera"), ("whatsapp:+525553000007", "segunda"),
    ]  # fmt: skip
    assert resent == [("primera", "queued", f"SM{1:032d}", None), ("segunda", "queued", f"SM{2:032d}", None)]
    assert [status for _, status, _, _ in outbound_rows(ledger_url, "+525553000008")] == ["sending"]
    assert [status for _, status, _, _ in outbound_rows(ledger_url, "+525553000009")] == ["queued"]


def twilio_time(ago: dt.timedelta) -> str:
    return email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) - ago)


def at_twilio(sid: str, phone: str, body: str, ago: dt.timedelta, status: str = "delivered") -> dict:
    """A message Twilio holds (as its list shows it), sent from our number `ago`."""
    return {
        "sid": sid, "to": f"whatsapp:{phone}", "from": "whatsapp:+14155238886", "body": body, "num_media": "0",
        "status": status, "direction": "outbound-api", "date_created": twilio_time(ago),
    }  # fmt: skip


def log_unsent(database_url: str, rows: list[tuple[str, str]], ago: dt.timedelta) -> None:
    """Replies (phone, body) logged `sending` `ago` and never touched since: a crash stopped them."""
    from cobrador.ledger import messages as message_log

    at = message_log.utcnow() - ago
    with session_scope(database_url) as session:
        for phone, body in rows:
            message_log.record_outbound(session, phone, body, status="sending", now=at)


def test_with_twilio_a_reply_that_reached_twilio_before_the_crash_is_recorded_not_sent_again(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest died (or the database was down past the outcome's retries)
    after Twilio took a reply but before its SID was written. The sweep asks
    Twilio's list of our messages to that debtor first: a copy created since
    the reply was logged, with its text and a SID the log does not hold, is
    that reply; its SID and status are recorded, and it is not sent again.
    Copies from before it was logged, or whose SID the log holds (an earlier
    identical reply), do not count; a later reply of the same debtor that
    Twilio never got is sent."""
    from cobrador.ledger import messages as message_log

    first, second = "+525553000012", "+525553000013"
    with session_scope(ledger_url) as session:  # an earlier identical reply, recorded
        earlier = message_log.record_outbound(
            session, first, "primera", status="sending", now=message_log.utcnow() - dt.timedelta(minutes=12)
        )
        message_log.mark_outbound(session, earlier, "delivered", provider_sid="SM" + "e" * 32)
    log_unsent(
        ledger_url, [(first, "primera"), (first, "segunda"), (second, "hola de nuevo")], dt.timedelta(minutes=10)
    )
    held = [
        at_twilio("SM" + "0" * 32, first, "primera", dt.timedelta(minutes=30)),  # before it was logged
        at_twilio("SM" + "e" * 32, first, "primera", dt.timedelta(minutes=12)),  # the earlier one's
        at_twilio("SM" + "a" * 32, first, "primera", dt.timedelta(minutes=9)),  # this one
        at_twilio("SM" + "b" * 32, second, "hola de nuevo", dt.timedelta(minutes=9), status="read"),
        at_twilio("SM" + "c" * 32, second, "otra cosa", dt.timedelta(minutes=8)),
    ]
    listed: list[dict] = []
    monkeypatch.setenv("COBRADOR_RESEND_SECONDS", "0.2")
    with fake_twilio(held=held, listed=listed) as (twilio_url, sent):
        with running_ingest(ledger_url, monkeypatch, settings=twilio_settings(twilio_url)):
            logged = when_sent(ledger_url, first, 3)
            threading.Event().wait(1.0)  # several more sweeps
    assert [(r["form"]["To"], r["form"]["Body"]) for r in sent] == [(f"whatsapp:{first}", "segunda")]
    assert logged == [
        ("primera", "delivered", "SM" + "e" * 32, None),
        ("primera", "delivered", "SM" + "a" * 32, None),
        ("segunda", "queued", f"SM{1:032d}", None),
    ]
    assert outbound_rows(ledger_url, second) == [("hola de nuevo", "read", "SM" + "b" * 32, None)]
    # Asked once per debtor (the later reply of a debtor one went to is not
    # looked up), filtered as Twilio's list takes it, with the account's credentials.
    assert sorted(item["query"]["To"] for item in listed) == [
        f"whatsapp:{first}",
        f"whatsapp:{first}",
        f"whatsapp:{second}",
    ]
    assert all(
        item["query"] == {"To": item["query"]["To"], "From": "whatsapp:+14155238886", "PageSize": "50"}
        and item["authorization"].startswith("Basic ")
        for item in listed
    )


def test_with_twilio_a_reply_whose_outcome_could_not_be_written_goes_once(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database refuses the sent reply's outcome past all its retries (it
    was down): the reply stays logged `sending` without its SID. When the
    sweep takes it, Twilio's list shows it went: its SID is recorded and the
    debtor does not get it a second time."""
    phone = "+525553000015"
    refused = [0]
    real = ingest_module.record_outcomes

    def down_for_a_while(batches):  # noqa: ANN001, ANN202
        if refused[0] < 1 + len(ingest_module.OUTCOME_DELAYS):  # the first write and every retry
            refused[0] += 1
            raise OperationalError("UPDATE messages", {}, Exception("the database is down"))
        return real(batches)

    monkeypatch.setattr(ingest_module, "record_outcomes", down_for_a_while)
    monkeypatch.setattr(ingest_module, "OUTCOME_DELAYS", (0.01,) * 5)
    monkeypatch.setenv("COBRADOR_UNSENT_AFTER_SECONDS", "1")
    monkeypatch.setenv("COBRADOR_RESEND_SECONDS", "0.2")
    replies = [{"phone": phone, "body": "¡Gracias por tu pago!", "media": [], "sender": "bot"}]
    with fake_twilio(held=[]) as (twilio_url, sent), fake_rasa(200, replies) as (rasa_url, _):
        with running_ingest(ledger_url, monkeypatch, rasa_url, twilio_settings(twilio_url)) as base:
            post_message(base, phone, "ya pagué", "account-auth-token")
            logged = when_sent(ledger_url, phone, 1)
            threading.Event().wait(1.5)  # more sweeps, once the reply is old enough again
    assert refused[0] == 6
    assert [r["form"]["Body"] for r in sent] == ["¡Gracias por tu pago!"]
    assert logged == [("¡Gracias por tu pago!", "queued", f"SM{1:032d}", None)]
    assert outbound_rows(ledger_url, phone) == logged


def test_with_twilio_a_reply_is_sent_again_when_twilio_cannot_say_whether_it_went(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio's list fails (after the retries): the debtor gets the reply, at
    worst twice, rather than never."""
    phone = "+525553000016"
    log_unsent(ledger_url, [(phone, "primera")], dt.timedelta(minutes=10))
    listed: list[dict] = []
    monkeypatch.setenv("COBRADOR_RESEND_SECONDS", "0.2")
    with fake_twilio(held=None, listed=listed) as (twilio_url, sent):
        settings = twilio_settings(twilio_url)
        quick = dataclasses.replace(settings, twilio=dataclasses.replace(settings.twilio, backoff_seconds=0.01))
        with running_ingest(ledger_url, monkeypatch, settings=quick):
            logged = when_sent(ledger_url, phone, 1)
    assert len(listed) == 4  # every attempt
    assert [r["form"]["Body"] for r in sent] == ["primera"]
    assert logged == [("primera", "queued", f"SM{1:032d}", None)]


def slow_twilio_turn(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, phone: str, meanwhile: Callable[[int], None]
) -> tuple[list[dict], list[tuple]]:
    """Two replies through an ingest in Twilio mode whose clock jumps an hour
    while Twilio takes the first (`meanwhile` runs then too): the second is
    held past its renewal time. The requests Twilio got, and the replies as
    logged once the first one's outcome is recorded (after every send of the turn)."""
    offset = [0.0]
    monkeypatch.setattr(ingest_module, "time", types.SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0]))

    def slow(number: int) -> None:
        meanwhile(number)
        if number == 1:
            offset[0] += 3600

    replies = [{"phone": phone, "body": f"respuesta {n}", "media": [], "sender": "bot"} for n in (1, 2)]
    with fake_twilio(meanwhile=slow) as (twilio_url, sent), fake_rasa(200, replies) as (rasa_url, _):
        with running_ingest(ledger_url, monkeypatch, rasa_url, twilio_settings(twilio_url)) as base:
            post_message(base, phone, "hola", "account-auth-token")
            for _ in range(200):
                logged = outbound_rows(ledger_url, phone)
                if logged and logged[0][1] != "sending":
                    break
                threading.Event().wait(0.05)
    return sent, logged


def logged_ids(database_url: str, phone: str) -> list[int]:
    with session_scope(database_url) as session:
        query = select(Message.id).where(Message.direction == "outbound", Message.phone == phone).order_by(Message.id)
        return list(session.execute(query).scalars())


def test_with_twilio_a_reply_another_ingests_sweep_claimed_is_left_to_it(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio is slow, so a reply waits long behind the debtor's earlier one,
    and another ingest's resend sweep (Twilio's fallback URL points at a
    second ingest) claims it meanwhile. Before sending it, the ingest renews
    what it holds, finds it claimed, and leaves it to that sweep: the debtor
    gets it once, not twice."""
    from cobrador.ledger import messages as message_log

    phone = "+525553000010"

    def other_sweep(number: int) -> None:
        if number == 1:
            with session_scope(ledger_url) as session:
                second = logged_ids(ledger_url, phone)[1]
                assert message_log.claim_unsent(session, second, message_log.utcnow() + dt.timedelta(seconds=1))

    sent, logged = slow_twilio_turn(ledger_url, monkeypatch, phone, other_sweep)
    assert [request["form"]["Body"] for request in sent] == ["respuesta 1"]
    assert logged == [("respuesta 1", "queued", f"SM{1:032d}", None), ("respuesta 2", "sending", None, None)]


def test_with_twilio_replies_held_long_are_renewed_so_no_sweep_takes_them(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same slow Twilio, no sweep yet: the ingest renews the replies it
    holds before it sends the second, so a sweep that then looks for replies
    untouched since the first went under way finds none (without the renewal
    it takes both: the one sent and the one being sent)."""
    from cobrador.ledger import messages as message_log

    phone = "+525553000011"
    under_way: list[dt.datetime] = []
    taken: list[list[int]] = []

    def sweep_after_renewal(number: int) -> None:
        if number == 1:
            under_way.append(message_log.utcnow())
        if number == 2:
            with session_scope(ledger_url) as session:
                stale = message_log.unsent_outbound(session, under_way[0])
                taken.append([m.id for m in stale if message_log.claim_unsent(session, m.id, under_way[0])])

    sent, logged = slow_twilio_turn(ledger_url, monkeypatch, phone, sweep_after_renewal)
    assert taken == [[]]
    assert [request["form"]["Body"] for request in sent] == ["respuesta 1", "respuesta 2"]
    assert logged == [("respuesta 1", "queued", f"SM{1:032d}", None), ("respuesta 2", "queued", f"SM{2:032d}", None)]


def test_replies_are_renewed_only_when_held_long_and_well_before_a_sweep_would_take_them() -> None:
    """With the defaults (a 5-minute sweep; four attempts of at most 15 s a
    send) a turn's replies are renewed only after about two minutes, and what
    may follow a renewal (a send, its template fallback, recording the
    outcomes) ends before the sweep could take them."""
    ingest = Ingest(twilio_settings("http://127.0.0.1:1"), "http://127.0.0.1:1")
    try:
        assert ingest.sender is not None and ingest.unsent_after == 300
        assert ingest.sender.longest_send_seconds() == 4 * 15 + 0.5 * (1 + 2 + 4)
        after_renewal = 2 * ingest.sender.longest_send_seconds() + sum(ingest_module.OUTCOME_DELAYS)
        assert 120 < ingest.renew_after and ingest.renew_after + after_renewal < ingest.unsent_after
    finally:
        ingest.pool.shutdown()


def test_with_twilio_the_replies_a_turn_gave_an_ingest_that_died_are_logged_processed_and_sent_in_order(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the Rasa channel's stale-claim sweep does with a turn that ran for
    an ingest that died before recording it (Twilio mode): the replies the
    turn gave (read back from the tracker) are logged with the message's
    "processed" mark and sent in order, each logged with its SID."""
    from cobrador.ledger import messages as message_log
    from cobrador.whatsapp.channel import WhatsAppInput

    monkeypatch.setenv("DATABASE_URL", ledger_url)
    phone, sid = "+525553000014", "SM" + "9" * 32
    with session_scope(ledger_url) as session:
        assert message_log.record_inbound(session, sid, phone, "mi estado de cuenta", [], status="processing")
    statement = "https://bot.example/webhooks/whatsapp/media/token"
    given = [(phone, "Aquí tienes tu estado de cuenta.", [], "bot"), (phone, "", [{"url": statement}], "bot")]
    with fake_twilio() as (twilio_url, sent):
        channel = WhatsAppInput(twilio_settings(twilio_url))

        async def record() -> None:
            assert channel.sender is not None
            try:
                await channel.record_given(sid, "es", given)
            finally:
                await channel.sender.close()

        asyncio.run(record())
    assert [(r["form"].get("Body"), r["form"].get("MediaUrl")) for r in sent] == [
        ("Aquí tienes tu estado de cuenta.", None), (None, statement),
    ]  # fmt: skip
    assert outbound_rows(ledger_url, phone) == [
        ("Aquí tienes tu estado de cuenta.", "queued", f"SM{1:032d}", None), ("", "queued", f"SM{2:032d}", None),
    ]  # fmt: skip
    assert inbound_statuses(ledger_url)[sid] == "processed"


def test_the_forward_carries_the_nlu_workers_parse_and_goes_without_once_the_worker_is_gone(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parse-ahead on the real model: the message's parse reaches Rasa with
    it, under the forward's signature; a worker that dies costs no message."""
    from tests.support import kill_worker, trained_model, until_loaded

    understanding = Understanding(trained_model())
    reply = {"phone": "+525553000005", "body": "¡Hola!", "media": [], "sender": "bot"}
    with (
        fake_rasa(200, [reply]) as (rasa_url, received),
        running_ingest(ledger_url, monkeypatch, rasa_url, understanding=understanding) as base,
    ):
        url = base + "/webhooks/whatsapp/webhook"
        sids = []

        def answered(text: str) -> None:
            fields, signature = signed_form(TOKEN, url, twilio_fields("+525553000005", text, []))
            answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
            assert answer.status_code == 200
            assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"
            sids.append(fields["MessageSid"])

        def parse_ahead() -> str:
            return requests.get(base + "/webhooks/whatsapp/", timeout=10).json()["parse_ahead"]

        assert parse_ahead() in ("loading", "ready")
        until_loaded(understanding)
        assert parse_ahead() == "ready"
        answered("/te pago el viernes")
        answered("no me alcanza")
        model_id = understanding.model_id
        kill_worker(understanding)
        answered("hola")
        answered("sí")
        assert parse_ahead() == "off"  # the health check tells the operator
    assert [m["sid"] for m in received] == sids
    ahead = [m["parse"] for m in received[:2]]
    assert [parse["model"] for parse in ahead] == [model_id] * 2
    assert [parse["data"]["text"] for parse in ahead] == ["te pago el viernes", "no me alcanza"]  # as Rasa reads it
    assert all(isinstance(parse["data"]["intent"]["name"], str) for parse in ahead)
    assert [("parse" in m) for m in received[2:]] == [False, False]


def model_with_id(source: Path, target: Path, model_id: str) -> None:
    """`source`, a trained model, written to `target` as a model with another id
    (as retraining gives), through a temporary file renamed into place."""
    partial = target.with_name(target.name + ".partial")
    with tarfile.open(source, "r:gz") as old, tarfile.open(partial, "w:gz") as new:
        for member in old.getmembers():
            content = old.extractfile(member) if member.isfile() else None
            if member.name == "metadata.json":
                assert content is not None
                metadata = json.load(content)
                metadata["model_id"] = model_id
                data = json.dumps(metadata).encode("utf-8")
                member.size = len(data)
                content = io.BytesIO(data)
            new.addfile(member, content)
    partial.replace(target)


def test_the_nlu_worker_follows_the_model_rasa_runs(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rasa is given a new model (retrained into the same file): from Rasa's
    answers the ingest learns that its worker parses with another model, and a
    new worker loads the file, so the parses Rasa can use come back. A file
    that holds another model than Rasa's stops the worker (Rasa would throw
    every parse away) until the file changes."""
    from tests.support import trained_model, until_loaded

    monkeypatch.setattr(ingest_module, "LOOK_EVERY", 0.0)
    model_file = tmp_path / "model.tar.gz"
    shutil.copy(trained_model(), model_file)
    with tarfile.open(model_file, "r:gz") as tar:
        first = json.load(tar.extractfile("metadata.json"))["model_id"]
    second, third = "b" * 32, "c" * 32
    rasa_runs = [first]
    phone = "+525553000012"
    reply = {"phone": phone, "body": "¡Hola!", "media": [], "sender": "bot"}
    understanding = Understanding(model_file)
    with (
        fake_rasa(200, [reply], rasa_runs) as (rasa_url, received),
        running_ingest(ledger_url, monkeypatch, rasa_url, understanding=understanding) as base,
    ):
        url = base + "/webhooks/whatsapp/webhook"

        def parsed_with(text: str) -> Optional[str]:
            """The model the message's parse ahead came from (None: no parse)."""
            fields, signature = signed_form(TOKEN, url, twilio_fields(phone, text, []))
            answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=10)
            assert answer.status_code == 200
            assert wait_for_status(ledger_url, fields["MessageSid"], "processed") == "processed"
            forward = received[-1]
            assert forward["sid"] == fields["MessageSid"]
            return forward["parse"]["model"] if "parse" in forward else None

        def parse_ahead(seconds: float = 120) -> str:
            deadline = time.monotonic() + seconds
            while True:
                state = requests.get(base + "/webhooks/whatsapp/", timeout=10).json()["parse_ahead"]
                if state != "loading" or time.monotonic() > deadline:
                    return state
                threading.Event().wait(0.1)

        until_loaded(understanding)
        assert parsed_with("hola") == first
        # Retrained: a new model in the same file, and Rasa restarted on it.
        model_with_id(model_file, model_file, second)
        rasa_runs[0] = second
        assert parsed_with("no me alcanza") == first  # asked before Rasa said; Rasa parses it itself
        assert parse_ahead() == "ready"
        assert parsed_with("te pago el viernes") == second
        # Rasa on a model the file does not hold: the worker stops...
        rasa_runs[0] = third
        assert parsed_with("sí") == second
        assert parse_ahead() == "off"
        assert parsed_with("ok") is None
        # ...until the file changes.
        model_with_id(model_file, model_file, third)
        assert parsed_with("gracias") is None
        assert parse_ahead() == "ready"
        assert parsed_with("hola otra vez") == third


@pytest.mark.parametrize("drain", [10.0, 0.3])
def test_on_the_way_out_the_ingest_lets_the_turns_under_way_end_for_a_while(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch, drain: float
) -> None:
    """A restart (a deploy) while a turn is in Rasa: the ingest stops taking
    webhooks but waits for the turn, and records its replies, so the message
    is not left claimed for the stale-claim sweep's minutes. It waits no
    longer than COBRADOR_DRAIN_SECONDS, however long the turn."""
    monkeypatch.setenv("COBRADOR_DRAIN_SECONDS", str(drain))
    phone = "+525553000013"
    reply = {"phone": phone, "body": "¡Hola! Ya te atiendo.", "media": [], "sender": "bot"}
    with fake_rasa(200, [reply], seconds=1.5) as (rasa_url, received):
        with running_ingest(ledger_url, monkeypatch, rasa_url) as base:
            fields = post_message(base, phone, "hola")
            wait_until(lambda: received)
            assert received, "the turn never reached Rasa"
            stopping = time.monotonic()
        stopped = time.monotonic() - stopping
        threading.Event().wait(max(0.0, 1.6 - stopped))  # the stand-in's turn ends before it goes
    status = inbound_statuses(ledger_url)[fields["MessageSid"]]
    if drain > 1.5:
        assert (status, stopped) == ("processed", pytest.approx(1.5, abs=1.0))
        assert outbound_rows(ledger_url, phone) == [(reply["body"], "queued", None, None)]
    else:
        assert (status, stopped) == ("processing", pytest.approx(drain, abs=0.7))  # for the sweep
        assert outbound_rows(ledger_url, phone) == []


def test_delivery_callbacks_are_checked_then_applied_together_and_one_that_fails_costs_no_other(
    ledger_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio's callbacks (two or three for each reply) come in bursts: 30 at
    once are each applied (in group commits), a late "sent" does not undo
    "delivered", forged, tampered and incomplete ones are refused before the
    database, and one the database cannot take gets 503 alone."""
    from cobrador.ledger import messages as message_log

    sids = [f"SM{n:032x}" for n in range(30)]
    with session_scope() as session:
        for sid in sids:
            message_id = message_log.record_outbound(session, "+525550000001", "Hola", status="sending")
            message_log.mark_outbound(session, message_id, "queued", provider_sid=sid)
    real = ingest_module.record_callbacks

    def failing_for_poison(sids_, states, codes):  # noqa: ANN001, ANN202
        if "SMpoison" in sids_:
            raise OperationalError("UPDATE messages", {}, Exception("simulated failure"))
        return real(sids_, states, codes)

    monkeypatch.setattr(ingest_module, "record_callbacks", failing_for_poison)
    with running_ingest(ledger_url, monkeypatch) as base:
        url = base + "/webhooks/whatsapp/status"

        def signed(sid: str, status: str) -> tuple[dict, str]:
            return signed_form(TOKEN, url, {"MessageSid": sid, "MessageStatus": status})

        answers = post_all(url, [signed(sid, "delivered") for sid in sids] + [signed("SMpoison", "sent")])
        assert [a.status_code for a in answers] == [204] * 30 + [503]
        assert all(a.status_code == 204 for a in post_all(url, [signed(sid, "sent") for sid in sids[:10]]))
        forged = signed_form("not-the-token", url, {"MessageSid": sids[0], "MessageStatus": "failed"})
        tampered = ({**signed(sids[1], "read")[0], "MessageStatus": "failed"}, signed(sids[1], "read")[1])
        incomplete = signed(sids[2], "")
        codes = [a.status_code for a in post_all(url, [forged, tampered, incomplete])]
        assert codes == [403, 403, 400]
    with session_scope() as session:
        found = select(Message.provider_sid, Message.status).where(Message.provider_sid.in_(sids))
        statuses = dict(session.execute(found).all())
    assert statuses == {sid: "delivered" for sid in sids}
