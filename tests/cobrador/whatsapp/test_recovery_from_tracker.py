"""The Rasa channel reads a turn's replies back from the debtor's tracker
(`WhatsAppInput.ran_already`): what the sweep and the start-up recovery
record, instead of running a turn that already ran."""

from __future__ import annotations

import asyncio
import types

from rasa.core.tracker_store import InMemoryTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

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
