"""The Rasa channel's recovery: a turn's replies read back from the debtor's
tracker (`WhatsAppInput.ran_already`), which the sweep and the start-up
recovery record instead of running a turn that already ran; and a sweep that
goes on whatever one message costs it."""

from __future__ import annotations

import asyncio
import datetime as dt
import types

import pytest
from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.messages import LoggedMessage
from cobrador.ledger.models import Message
from cobrador.whatsapp import channel as channel_module
from cobrador.whatsapp.channel import Inbound, WhatsAppInput
from cobrador.whatsapp.settings import ChannelSettings

PHONE = "+525553000020"
MENU = [{"title": "Sí", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
STATEMENT = "https://bot.example/webhooks/whatsapp/media/token"


def channel_on(store: InMemoryTrackerStore) -> WhatsAppInput:
    channel = WhatsAppInput(ChannelSettings("token", "http://127.0.0.1:1", None, {}))
    channel.app = types.SimpleNamespace(ctx=types.SimpleNamespace(agent=types.SimpleNamespace(tracker_store=store)))
    return channel


def inbound(sid: str) -> Inbound:
    return Inbound(sid, PHONE, "hola", [])


def test_a_turns_replies_are_read_back_from_the_tracker_as_they_were_sent() -> None:
    """Each turn's bot messages, from its message to the turn's end, through
    the WhatsApp output channel (buttons as the numbered menu, attachments as
    media), and nothing of the turns around it."""
    store = InMemoryTrackerStore(Domain.empty())
    tracker = DialogueStateTracker(PHONE, [])
    for event in [
        ActionExecuted("action_listen"),
        UserUttered("hola", message_id="SM" + "1" * 32),
        ActionExecuted("action_cobrador_turn"),
        BotUttered("¡Hola! ¿Eres Daniela?", {"buttons": MENU}),
        ActionExecuted("action_listen"),
        BotUttered("Recordatorio de tu pago"),  # sent outside any turn (not this message's)
        UserUttered("mi estado de cuenta", message_id="SM" + "2" * 32),
        ActionExecuted("action_cobrador_turn"),
        BotUttered("Aquí tienes tu estado de cuenta."),
        BotUttered(None, {"attachment": STATEMENT}),
        ActionExecuted("action_listen"),
    ]:
        tracker.update(event)

    async def read() -> list:
        await store.save(tracker)
        channel = channel_on(store)
        return [await channel.ran_already(inbound("SM" + n * 32), "es") for n in "123"]

    first, second, never = asyncio.run(read())  # the third never reached Rasa
    assert first == [(PHONE, "¡Hola! ¿Eres Daniela?\n1) Sí\n2) No", [], "bot")]
    assert second == [(PHONE, "Aquí tienes tu estado de cuenta.", [], "bot"), (PHONE, "", [{"url": STATEMENT}], "bot")]
    assert never is None


def test_without_a_tracker_store_or_a_tracker_the_turn_runs() -> None:
    async def read() -> tuple:
        bare = WhatsAppInput(ChannelSettings("token", "http://127.0.0.1:1", None, {}))
        empty = channel_on(InMemoryTrackerStore(Domain.empty()))
        return await bare.ran_already(inbound("SM" + "1" * 32), "es"), await empty.ran_already(
            inbound("SM" + "1" * 32), "es"
        )

    assert asyncio.run(read()) == (None, None)


def test_the_sweep_goes_on_when_answering_one_message_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """A message whose answer fails (the database or the tracker store down
    just then) is left for the next sweep; the messages after it are answered
    in the same sweep, and the sweep keeps running."""

    def logged(sid: str) -> LoggedMessage:
        return LoggedMessage(1, PHONE, "inbound", sid, "hola", [], "received", "debtor", None, dt.datetime.now())

    stale = {"received": [logged("SM" + "1" * 32), logged("SM" + "2" * 32)], "processing": [logged("SM" + "3" * 32)]}
    monkeypatch.setattr(channel_module, "_stale", lambda status, seconds: stale[status])
    answered: list[tuple[str, object]] = []

    async def process(inbound: Inbound, take_over: object = None) -> None:
        if inbound.sid == "SM" + "1" * 32 and not any(sid == inbound.sid for sid, _ in answered):
            answered.append((inbound.sid, "failed"))
            raise RuntimeError("the tracker store is down")
        answered.append((inbound.sid, take_over))

    async def sweep() -> None:
        channel = WhatsAppInput(ChannelSettings("token", "http://127.0.0.1:1", None, {}))
        channel.sweep_seconds = 0.01
        task = asyncio.create_task(channel._sweep(process))
        while len(answered) < 6:
            await asyncio.sleep(0.01)
        assert not task.done()
        task.cancel()

    asyncio.run(asyncio.wait_for(sweep(), 10))
    assert answered[:6] == [
        ("SM" + "1" * 32, "failed"), ("SM" + "2" * 32, None), ("SM" + "3" * 32, 60.0),
        ("SM" + "1" * 32, None), ("SM" + "2" * 32, None), ("SM" + "3" * 32, 60.0),
    ]  # fmt: skip


def test_a_turn_the_channel_runs_itself_holds_its_claim_until_it_ends(ledger_url: str) -> None:
    """The Rasa channel's own turns (its sweep's, its recovery's, a webhook
    sent to it directly) are held in `claims` while they run, so its keeper
    touches them, and let go of once they end; its start spawns the keeper."""
    from cobrador.whatsapp.channel import store_inbound_batch

    sid = "SM" + "8" * 32
    store_inbound_batch([Inbound(sid, PHONE, "hola")], [False])  # received: the sweep's to answer
    channel = channel_on(InMemoryTrackerStore(Domain.empty()))
    during: list[bool] = []

    async def on_new_message(message) -> None:  # noqa: ANN001 - Rasa's UserMessage
        during.append(message.message_id in channel.claims.held)

    blueprint = channel.blueprint(on_new_message)
    (start,) = [f.listener for f in blueprint._future_listeners if f.event == "after_server_start"]
    started: list = []
    app = types.SimpleNamespace(ctx=types.SimpleNamespace(), add_task=started.append)

    async def run() -> None:
        await start(app, None)
        names = [task.cr_code.co_name for task in started]
        assert names == ["_recover", "_sweep", "keep", "keep_frozen"]
        process = started[1].cr_frame.f_locals["process"]  # what the sweep runs turns with
        for task in started:
            task.close()
        await process(Inbound(sid, PHONE, "hola"))

    asyncio.run(run())
    assert during == [True]
    assert channel.claims.held == {}
    with session_scope(ledger_url) as session:
        status = session.execute(select(Message.status).where(Message.provider_sid == sid)).scalar_one()
    assert status == "processed"


def test_the_start_up_catch_up_puts_back_only_a_missing_last_turn_and_holds_that_debtor_meanwhile(
    ledger_url: str,
) -> None:
    """At start-up each debtor's latest processed message is looked for in
    their tracker; only one missing from a tracker that exists runs again
    (not an opt-out keyword, which never reaches Rasa; not a message still
    pending, which recovery answers). Until the log is read no turn runs, and
    a debtor being caught up waits until their turn is back; the others do not."""
    from cobrador.ledger import messages

    saved, lost, opted, untracked, pending = "+525553000031", "+525553000032", "+525553000033", "+525553000034", "+525553000035"  # fmt: skip
    logged = [  # (sid, phone, text, status), in the order they came
        ("SM" + "a1" * 16, saved, "hola", "processed"),
        ("SM" + "b1" * 16, lost, "hola", "processed"),
        ("SM" + "b2" * 16, lost, "ana garza", "processed"),  # answered, its turn not saved
        ("SM" + "c1" * 16, opted, "hola", "processed"),
        ("SM" + "c2" * 16, opted, "BAJA", "processed"),
        ("SM" + "d1" * 16, untracked, "hola", "processed"),
        ("SM" + "e1" * 16, pending, "hola", "processed"),
        ("SM" + "e2" * 16, pending, "1995", "received"),
    ]
    with session_scope(ledger_url) as session:
        for sid, phone, text, status in logged:
            messages.record_inbound(session, sid, phone, text, [], status)
    store = InMemoryTrackerStore(Domain.empty())
    in_trackers = {saved: ["SM" + "a1" * 16], lost: ["SM" + "b1" * 16], opted: ["SM" + "c1" * 16],
                   pending: ["SM" + "e1" * 16]}  # fmt: skip
    replayed: list[tuple[str, str, str]] = []
    replaying = asyncio.Event()
    release = asyncio.Event()

    async def replay(inbound: Inbound, language: str) -> None:
        replayed.append((inbound.sid, inbound.body, language))
        replaying.set()
        await release.wait()

    async def run() -> list[str]:
        for phone, sids in in_trackers.items():
            tracker = DialogueStateTracker(phone, [])
            for sid in sids:
                tracker.update(UserUttered("hola", message_id=sid))
            await store.save(tracker)
        channel = channel_on(store)
        channel.app.ctx.agent.is_ready = lambda: True
        channel.catch_up_gate = asyncio.get_running_loop().create_future()  # as before the server starts
        order: list[str] = []

        async def turn_of(phone: str) -> None:
            await channel._caught_up(phone)
            order.append(phone)

        waiting = [asyncio.create_task(turn_of(phone)) for phone in (lost, saved)]
        await asyncio.sleep(0.05)
        assert order == []  # the log is not read yet
        catching_up = asyncio.create_task(channel._catch_up(channel.app, replay))
        await asyncio.wait_for(replaying.wait(), 5)
        await asyncio.sleep(0.05)
        assert order == [saved]  # the debtor being caught up waits
        release.set()
        await asyncio.wait_for(catching_up, 5)
        await asyncio.wait_for(asyncio.gather(*waiting), 5)
        assert channel.catching_up == {}
        return order

    assert asyncio.run(run()) == [saved, lost]
    assert replayed == [("SM" + "b2" * 16, "ana garza", "es")]


def test_a_replayed_turn_stops_if_its_message_is_in_the_tracker_by_then() -> None:
    """The catch-up's turn reaches Rasa's processor with the tracker read
    under the conversation's lock: if another Rasa saved the message
    meanwhile, the turn stops there (nothing is logged twice); a replay of a
    message the tracker lacks, and any message not replayed, go on."""
    from rasa.core.channels.channel import UserMessage
    from rasa.core.processor import MessageProcessor

    from cobrador.whatsapp.forwarded import REPLAYED, AlreadyInTracker, install

    install()
    processor = types.SimpleNamespace(domain=Domain.empty())  # all the stock step reads of it here
    parse = {"intent": {"name": "greet", "confidence": 1.0}, "entities": [], "text": "hola"}
    saved, missing = "SM" + "f1" * 16, "SM" + "f2" * 16
    tracker = DialogueStateTracker(PHONE, [])
    tracker.update(UserUttered("hola", message_id=saved))

    def message(sid: str, replayed: bool) -> UserMessage:
        metadata = {REPLAYED: True} if replayed else {}
        return UserMessage("hola", sender_id=PHONE, message_id=sid, metadata=metadata, parse_data=dict(parse))

    async def handle(sid: str, replayed: bool) -> None:
        await MessageProcessor._handle_message_with_tracker(processor, message(sid, replayed), tracker)

    with pytest.raises(AlreadyInTracker):
        asyncio.run(handle(saved, replayed=True))
    asyncio.run(handle(missing, replayed=True))
    asyncio.run(handle(saved, replayed=False))
    assert [e.message_id for e in tracker.events if isinstance(e, UserUttered)] == [saved, missing, saved]
