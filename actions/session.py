"""Session start: who is writing, and in which language to answer."""

from __future__ import annotations

import asyncio
import os
from typing import Any, Optional

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from cobrador.ledger.db import session_scope
from cobrador.ledger.lookups import creditor_view, find_debtor, first_creditor_id
from cobrador.ledger.phones import try_e164

DEFAULT_COMPANY = os.environ.get("COBRADOR_COMPANY_NAME", "Cobrador")


def _lookup(sender_id: str) -> Optional[tuple[str, Optional[str]]]:
    """(language, collecting company) of the debtor behind `sender_id`, or None."""
    phone = try_e164(sender_id)
    if phone is None:
        return None
    with session_scope() as session:
        debtor = find_debtor(session, phone)
        if debtor is None:
            return None
        creditor_id = first_creditor_id(session, debtor.id)
        return debtor.language, creditor_view(session, creditor_id).collector_name if creditor_id else None


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
            language = context[0]
            company = context[1] or DEFAULT_COMPANY
        events += [SlotSet("language", language), SlotSet("company_name", company), ActionExecuted("action_listen")]
        return events
