"""A turn the ingest forwards to Rasa, as the channel's `/process` runs it.

Some things about such a turn happen at once instead of one after the other,
so a debtor's reply comes back sooner; what the turn does is unchanged.

* **The message goes to Rasa while it is stored.** While Rasa has no turn
  under way (at most some whose replies the ingest is recording), a message
  whose turn can start at once is sent to Rasa first, and the ingest begins to
  store it and to have it parsed once it has gone (under load, when Rasa's
  core and not the wait is the limit, once stored, with its parse, in one
  piece); word that it is stored (and the debtor's language, from the claim)
  follows on the same request, as a line of its own, once the transaction
  commits, and then, if the NLU worker was still parsing it, its parse (each
  line signed for that message). Rasa reads the debtor's tracker meanwhile,
  which changes nothing (a new session's start only reads the ledger), and its
  processor takes the message into the conversation only once it is stored
  (`_handle_message_with_tracker`): a message that is not stored (a replay,
  the database down) goes no further (`NotStored`), so none is processed
  before it is stored. The processor takes the parse then, waiting for it at
  most `PARSE_WAIT` seconds, and parses itself if none comes or it is not
  usable (`understanding.usable`).
* **The answer goes before the tracker is saved.** Once the turn's actions
  have run and its next action is to listen, its replies are complete, and
  Rasa has only to save the tracker. The replies go back to the ingest then
  (which records and sends them), and the save follows. The debtor's next
  message cannot overtake it: the channel runs a debtor's turns one after the
  other (and Rasa holds the conversation's lock until the save is done). A
  save that fails is handled as Rasa handles any (its fail-safe tracker store
  logs the error and keeps the tracker in memory), as it was before the
  answer went first. Should Rasa die in the milliseconds between the answer
  and the save, the message log holds the message and its replies, and the
  ledger what the turn recorded, but the tracker lacks the turn: the next
  Rasa to start puts it back before any other turn runs
  (`WhatsAppInput._catch_up`).

A turn the start-up catch-up runs again (its message answered, its tracker
not saved: metadata `replayed`) goes no further if the tracker, read under the
conversation's lock, holds its message by now (`AlreadyInTracker`): another
Rasa, still up, saved it meanwhile.

Rasa's processor reaches the turn through a context variable set by the task
that runs it; turns that come any other way (the sweep, start-up recovery,
the one-process webhook, Rasa's own channels) are untouched.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any, Optional

logger = logging.getLogger(__name__)

# Seconds a turn waits for a parse that follows its message (the worker's own
# limit is two; past this Rasa parses).
PARSE_WAIT = 2.0
# Seconds a turn waits for word that its message is stored (the store waits
# up to ten for a busy SQLite); past this it is dropped, and the message, if
# it was stored, is answered by the stale-claim sweep.
STORE_WAIT = 30.0

_current: contextvars.ContextVar[Optional[ForwardedTurn]] = contextvars.ContextVar(
    "cobrador_forwarded_turn", default=None
)


# The metadata key of a turn the start-up catch-up runs again for the tracker
# alone (`WhatsAppInput._catch_up`).
REPLAYED = "replayed"


class AlreadyInTracker(Exception):
    """A turn run again for the tracker alone, whose message the tracker, read
    under the conversation's lock, holds by now (another Rasa saved it)."""


class NotStored(Exception):
    """The message of a forwarded turn was not stored (a replay, or the
    database failed): its turn goes no further than reading the tracker."""


class ForwardedTurn:
    """What the `/process` handler and Rasa's processor share about one turn."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.stored: asyncio.Future = loop.create_future()  # the debtor's language once stored; None: not stored
        self.parse: asyncio.Future = loop.create_future()  # usable parse data, or None
        self.replies_ready: asyncio.Future = loop.create_future()  # set just before the save
        self.sent = asyncio.Event()  # the answer left (or nobody waits for it): the save goes on

    def enter(self) -> None:
        """Makes this the turn Rasa's processor sees in the current task."""
        _current.set(self)

    async def admit(self, message: Any) -> None:
        """Holds the message back until it is stored (raising `NotStored` if it
        will not be), answering in its debtor's language, then gives it its
        parse, unless Rasa is to parse it."""
        try:
            language = await asyncio.wait_for(asyncio.shield(self.stored), STORE_WAIT)
        except asyncio.TimeoutError:
            language = None
        if language is None:
            raise NotStored(message.message_id)
        message.output_channel.language = language
        if message.parse_data:
            return
        try:
            message.parse_data = await asyncio.wait_for(asyncio.shield(self.parse), PARSE_WAIT)
        except asyncio.TimeoutError:
            logger.warning("the parse that was to follow %s did not come; Rasa parses it", message.message_id)

    async def answer(self) -> None:
        """The replies are complete: let the handler send them, and wait till it did."""
        self.replies_ready.set_result(None)
        await self.sent.wait()


class Lines:
    """A request body read a line at a time as it arrives (Sanic's stream; or
    the whole body, when there is no stream)."""

    def __init__(self, stream: Any, body: bytes = b"") -> None:
        self.stream = stream
        self.buffer = bytearray(body)
        self.ended = stream is None

    async def line(self) -> Optional[bytes]:
        """The next line without its newline; None at the end of the body."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 1]
                return line
            if self.ended:
                line, self.buffer = bytes(self.buffer), bytearray()
                return line or None
            chunk = await self.stream.read()
            if chunk is None:
                self.ended = True
            else:
                self.buffer += chunk

    async def drain(self) -> None:
        while await self.line() is not None:
            pass


def position_of(events: Any, sid: str) -> Optional[int]:
    """Where in a tracker's events the debtor's message `sid` is, if it is."""
    from rasa.shared.core.events import UserUttered

    return next((n for n, e in enumerate(events) if isinstance(e, UserUttered) and e.message_id == sid), None)


def covered(sid: str, data: bytes) -> bytes:
    """What the signature of a line that follows message `sid` covers: the
    message's SID and the line's JSON (`data`), so it is good for that message only."""
    return sid.encode("utf-8") + b"\n" + data


def install() -> None:
    """Hooks the forwarded turn into Rasa's processor (once per process)."""
    from rasa.core.processor import MessageProcessor

    if getattr(MessageProcessor, "_cobrador_forwarded", False):
        return
    stock_handle = MessageProcessor._handle_message_with_tracker
    stock_save = MessageProcessor.save_tracker

    async def _handle_message_with_tracker(self: MessageProcessor, message: Any, tracker: Any) -> None:
        turn = _current.get()
        if turn is not None:
            await turn.admit(message)
        if (message.metadata or {}).get(REPLAYED) and position_of(tracker.events, message.message_id) is not None:
            raise AlreadyInTracker(message.message_id)
        await stock_handle(self, message, tracker)

    async def save_tracker(self: MessageProcessor, tracker: Any) -> None:
        turn = _current.get()
        if turn is None or turn.replies_ready.done():  # not forwarded, or answered already
            await stock_save(self, tracker)
            return
        await turn.answer()
        await stock_save(self, tracker)

    MessageProcessor._handle_message_with_tracker = _handle_message_with_tracker
    MessageProcessor.save_tracker = save_tracker
    MessageProcessor._cobrador_forwarded = True
