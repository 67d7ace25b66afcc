"""Session start: who is writing, and in which language to answer."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from cobrador.ledger.db import session_scope
from cobrador.ledger.phones import try_e164
from cobrador.ledger.queries import DebtorContext, debtor_context

DEFAULT_COMPANY = os.environ.get("COBRADOR_COMPANY_NAME", "Cobrador")


def _lookup(sender_id: str) -> Optional[DebtorContext]:
    phone = try_e164(sender_id)
    if phone is None:
        return None
    with session_scope() as session:
        return debtor_context(session, phone)


class ActionSessionStart(Action):
    """Starts a session: sets language and company, forgets verification.

    An unknown number keeps the Spanish default and the operating company's
    name; nothing about any debt is said before verification.
    """

    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]) -> list[EventType]:
        # Only the language carries over: verification and any flow in
        # progress last one session (the `dialogue` slot starts empty).
        events: list[EventType] = [SessionStarted()]
        # The ledger lookup is blocking I/O: keep it off the event loop.
        context = await asyncio.to_thread(_lookup, tracker.sender_id)
        language = tracker.get_slot("language") or "es"
        company = DEFAULT_COMPANY
        if context is not None:
            language = context.language
            company = context.collector_name or DEFAULT_COMPANY
        events += [SlotSet("language", language), SlotSet("company_name", company), ActionExecuted("action_listen")]
        return events
