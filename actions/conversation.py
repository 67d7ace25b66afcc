"""The one action that answers a debtor: reads the tracker, runs the turn in
`cobrador.conversation`, sends the replies and stores the dialogue state."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
from typing import Any, Callable, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from cobrador.conversation.engine import Conversation, Turn

logger = logging.getLogger(__name__)

# Tests and demos may pin the bot's clock (an ISO date or datetime); never
# set in production.
FAKE_NOW_VARIABLE = "COBRADOR_FAKE_NOW"


def _clock() -> Callable[[], dt.datetime]:
    fixed = os.environ.get(FAKE_NOW_VARIABLE)
    if not fixed:
        return lambda: dt.datetime.now(dt.timezone.utc)
    value = dt.datetime.fromisoformat(fixed if "T" in fixed else f"{fixed}T18:00:00+00:00")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return lambda: value


def document_url(kind: str, object_id: int, language: str) -> str:
    """An expiring signed link to a PDF the WhatsApp channel serves."""
    from cobrador.whatsapp.documents import media_key, url
    from cobrador.whatsapp.settings import ChannelSettings

    settings = ChannelSettings.from_env()
    return url(settings.public_url, media_key(settings.auth_token), kind, object_id, language)


def turn_from_tracker(tracker: Tracker) -> Turn:
    """The latest debtor message as a `Turn`."""
    message = tracker.latest_message or {}
    intent = message.get("intent") or {}
    if intent.get("name") == "nlu_fallback":
        # The engine applies its own confidence floor to the best real intent.
        ranking = [r for r in message.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"]
        intent = ranking[0] if ranking else intent
    metadata = message.get("metadata") or {}
    media = tuple(m for m in metadata.get("media") or [] if isinstance(m, dict))
    return Turn(
        sender=tracker.sender_id,
        text=message.get("text") or "",
        intent=intent.get("name") or "nlu_fallback",
        confidence=float(intent.get("confidence") or 0.0),
        message_sid=metadata.get("message_sid"),
        media=media,
    )


class ActionCobradorTurn(Action):
    """Answers every debtor message (see cobrador.conversation.engine)."""

    def __init__(self) -> None:
        self._conversation: Optional[Conversation] = None

    def name(self) -> str:
        return "action_cobrador_turn"

    def conversation(self) -> Conversation:
        # Built on first use: the action server forks after import.
        if self._conversation is None:
            self._conversation = Conversation(clock=_clock())
        return self._conversation

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        turn = turn_from_tracker(tracker)
        state = tracker.get_slot("dialogue")
        language = tracker.get_slot("language")
        reply = await asyncio.to_thread(self.conversation().handle, turn, state, language)
        for text in reply.messages:
            dispatcher.utter_message(text=text)
        for kind, object_id in reply.documents:
            dispatcher.utter_message(attachment=document_url(kind, object_id, reply.language))
        return [
            SlotSet("dialogue", reply.state),
            SlotSet("language", reply.language),
            SlotSet("company_name", reply.company),
        ]
