"""The ingest: the process Twilio talks to, so it is answered in milliseconds.

Rasa runs every turn on one event loop; under load a webhook handled there
waits behind the turns in progress before it can even be stored. The ingest
is a small aiohttp server of its own (`python -m cobrador ingest`) that serves
the paths Twilio calls:

* `POST /webhooks/whatsapp/webhook`: the same checks as the Rasa channel
  (`screen`: signature over the public URL and the raw form), the message
  stored once by MessageSid (with the others arriving at the same time, in
  one transaction: `GroupWriter`), replays dropped, then 200 at once. Opt-out
  keywords are honoured here, before any NLU. Every other new message is
  claimed in the message log (in that same transaction when its turn can
  start at once) and handed to the Rasa channel's `/webhooks/whatsapp/process`
  (signed with a key derived from the channel secret), one at a time per
  sender and in order; Rasa runs the turn and answers with the replies, which
  the ingest records (local outbox; turns that end together in one
  transaction) or sends through Twilio (logged `sending` with the turn's
  "processed" mark in one group commit, then sent in order per debtor, their
  outcomes in another; a sweep sends what a crash left unsent, unless
  Twilio's list shows it went). So the Rasa
  process spends its time on turns, like the REST channel, while the writes
  and sends happen here, on the other core. While Rasa is down the hand-over
  is retried with backoff and then given back; a stored message is never
  lost: the Rasa channel's sweep (or its start-up recovery) answers it.
* `POST /webhooks/whatsapp/status`: delivery statuses into the message log.
* `GET /webhooks/whatsapp/media/<token>`: the signed, expiring PDF links.

Point Twilio (or the reverse proxy in front of it) at the ingest, with
`COBRADOR_PUBLIC_URL` set to the public address; the signatures are checked
against that URL, whichever port the request reached.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import functools
import itertools
import json
import logging
import os
import queue
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Optional, TypeVar

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator

from cobrador import heap
from cobrador.config import settings as settings_for_db
from cobrador.language.commands import neutralize_command
from cobrador.ledger.messages import LoggedMessage
from cobrador.whatsapp.channel import (
    EMPTY_TWIML,
    MEDIA_HEADERS,
    HeldClaims,
    Inbound,
    Outcome,
    StatusCallback,
    WhatsAppOutput,
    claim_for_turn,
    claim_unsent,
    finish_turns,
    finish_turns_to_send,
    forward_key,
    forward_signature,
    known_sids,
    media_document,
    opt_out,
    public_url,
    record_callbacks,
    record_outcomes,
    release_claim,
    renew_sending,
    screen,
    screen_status,
    store_inbound_batch,
)
from cobrador.whatsapp.forwarded import covered
from cobrador.whatsapp.rasa_link import Dropped, RasaLink, Unreachable
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.twilio_api import SendError, TwilioSender
from cobrador.whatsapp.understanding import Understanding, file_stamp, parsed
from cobrador.whatsapp.understanding import enabled as parse_ahead_enabled

logger = logging.getLogger(__name__)

PROCESS_PATH = "/webhooks/whatsapp/process"
# The database is down: nothing was stored, so Twilio must not take it as
# delivered. A 5xx makes Twilio try the number's Fallback URL (point it at a
# second ingest) and log error 11200; the debtor can write again.
T = TypeVar("T")
STORE_FAILED = "the message could not be stored; try again"


@dataclass
class Handover:
    """A message on its way to Rasa: `language` is its debtor's once it is
    claimed, `parse` its parse on the NLU worker (on the way), and `stored`,
    while it is being stored claimed, what storing it did (or None) once done;
    `written`, if given, is set once the message itself has gone to Rasa
    (or its forward ended without)."""

    inbound: Inbound
    language: Optional[str] = None
    parse: Optional[asyncio.Future] = None
    stored: Optional[asyncio.Future] = None
    written: Optional[asyncio.Future] = None


def _store_failed() -> web.Response:
    return web.Response(status=503, text=STORE_FAILED, headers={"Retry-After": "5"})


# Seconds between forward attempts while Rasa does not answer (about a minute
# in all); after that the Rasa channel's sweep picks the message up.
RETRY_DELAYS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


# Seconds the store of a message that goes to Rasa first waits for it to
# have gone (normally a fraction of a millisecond; longer only if Rasa is
# slow to take it, and then the store goes on without waiting more).
FORWARD_FIRST_WAIT = 0.005

# Seconds between looks at the model file while the NLU worker is stopped
# (a new worker starts once the file changes).
LOOK_EVERY = 30.0

ACK, MEDIA, TURN = 0, 1, 2  # priorities on the ingest's database threads
Logged = tuple[int, str, str, list, str]  # a reply logged to be sent: id, phone, body, media, sender
# Seconds between attempts to record what happened to sent replies while the
# database is down (about half a minute in all; then the resend sweep finds
# them in Twilio's list and records them there).
OUTCOME_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0)
# How far Twilio's clock may be behind ours when the resend sweep looks for a
# reply Twilio already took (created at Twilio no earlier than logged here).
CLOCK_SKEW = dt.timedelta(seconds=60)


class PriorityPool:
    """Worker threads that run the most urgent call waiting first (then in order)."""

    def __init__(self, workers: int, name: str) -> None:
        self.queue: queue.PriorityQueue = queue.PriorityQueue()
        self.order = itertools.count()
        self.threads = [threading.Thread(target=self._work, name=f"{name}-{n}", daemon=True) for n in range(workers)]
        for thread in self.threads:
            thread.start()

    async def run(self, priority: int, function: Callable[..., T], *args: Any) -> T:
        return await self.start(priority, function, *args)

    def start(self, priority: int, function: Callable[..., T], *args: Any) -> asyncio.Future:
        """Queues the call now, in the caller's step; its result comes in the future."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self.queue.put((priority, next(self.order), function, args, loop, future))
        return future

    def shutdown(self) -> None:
        for _ in self.threads:
            self.queue.put((sys.maxsize, next(self.order), None, (), None, None))

    def _work(self) -> None:
        while True:
            _, _, function, args, loop, future = self.queue.get()
            if function is None:
                return
            try:
                result = function(*args)
            except BaseException as error:  # noqa: BLE001 - handed to the awaiting coroutine
                loop.call_soon_threadsafe(_settle, future, None, error)
            else:
                loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: Optional[BaseException]) -> None:
    if future.done():  # the caller was cancelled
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupWriter:
    """Group commit: the calls that arrive while one batch is being written go
    together in the next, in one transaction (`write` takes a list of items and
    returns one result per item). A burst (say 30 debtors answering a campaign
    at once) costs a few commits instead of 30, and the last of them is done in
    milliseconds, not hundreds. A batch that fails is retried item by item, so
    one item that cannot be written never costs the others theirs."""

    def __init__(self, pool: PriorityPool, priority: int, write: Callable[..., list], largest: int = 64) -> None:
        self.pool = pool
        self.priority = priority
        self.write = write
        self.largest = largest
        self.pending: list[tuple[tuple, asyncio.Future]] = []
        self.writing = False
        self.task: Optional[asyncio.Task] = None

    def submit(self, *item: Any) -> asyncio.Future:
        """The item's result once its batch is committed (or its error). When
        no batch is being written, this one goes to a database thread at once,
        in the caller's step, not a few turns of the event loop later."""
        future = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if not self.writing:
            self.writing = True
            first = self._take()
            self.task = asyncio.get_running_loop().create_task(self._write(first))  # referenced: not collected
        return future

    def _take(self) -> tuple[list, asyncio.Future]:
        batch, self.pending = self.pending[: self.largest], self.pending[self.largest :]
        return batch, self._start([item for item, _ in batch])

    def _start(self, items: list[tuple]) -> asyncio.Future:
        return self.pool.start(self.priority, self.write, *(list(column) for column in zip(*items, strict=True)))

    async def _write(self, taken: tuple[list, asyncio.Future]) -> None:
        try:
            while True:
                batch, writing = taken
                try:
                    results = await writing
                except Exception as error:  # noqa: BLE001 - settled below, item by item
                    if len(batch) == 1:
                        _settle(batch[0][1], None, error)
                    else:
                        await self._one_by_one(batch)
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        _settle(future, result, None)
                if not self.pending:
                    return
                taken = self._take()
        finally:
            self.writing = False

    async def _one_by_one(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        for item, future in batch:
            try:
                _settle(future, (await self._start([item]))[0], None)
            except Exception as alone:  # noqa: BLE001 - handed to that caller
                _settle(future, None, alone)


class Ingest:
    """Admits Twilio's webhooks and hands the messages to Rasa."""

    def __init__(
        self,
        settings: ChannelSettings,
        rasa_url: str,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
        understanding: Optional[Understanding] = None,
    ) -> None:
        self.settings = settings
        self.understanding = understanding
        self.rasa_url = rasa_url.rstrip("/")
        self.retry_delays = retry_delays
        self.validator = RequestValidator(settings.auth_token)
        self.key = forward_key(settings.auth_token)
        self.sender = TwilioSender(settings.twilio) if settings.twilio else None
        # The database work runs on threads that take acknowledgements
        # first: an ack never waits behind the claims and replies of turns.
        # SQLite takes one writer at a time, and a writer that finds the lock
        # taken sleeps in steps of up to 100 ms (its busy handler), so on
        # SQLite one thread writes in turn, without sleeping; PostgreSQL
        # locks rows and gets eight.
        sqlite = settings_for_db().database_url.startswith("sqlite")
        self.pool = PriorityPool(1 if sqlite else 8, "ingest")
        # Group commits: acknowledgements first; the ends of turns after them.
        # (The store is looked up at each call: a test replaces it to inject failures.)
        self.acks = GroupWriter(self.pool, ACK, lambda inbounds, claims: store_inbound_batch(inbounds, claims))
        self.finishes = GroupWriter(self.pool, TURN, finish_turns)
        # Twilio mode: the replies logged with the "processed" mark, then what happened to their sends.
        self.finishes_to_send = GroupWriter(self.pool, TURN, finish_turns_to_send)
        self.outcomes = GroupWriter(self.pool, TURN, record_outcomes)
        self.callbacks = GroupWriter(self.pool, ACK, record_callbacks)
        self.sending: dict[str, asyncio.Task] = {}  # last send per debtor, to keep the replies in order
        self.resend_seconds = float(os.environ.get("COBRADOR_RESEND_SECONDS", "60"))
        self.unsent_after = float(os.environ.get("COBRADOR_UNSENT_AFTER_SECONDS", "300"))
        # Replies held longer than this (Twilio slow: they wait behind the
        # debtor's earlier ones) are renewed before the next send, so that no
        # resend sweep, here or in another ingest (Twilio's fallback URL),
        # takes them while this one still sends them: whatever follows a
        # renewal (a reply, its template fallback, recording the outcomes)
        # ends before the sweep's `unsent_after`.
        longest = 2 * self.sender.longest_send_seconds() if self.sender is not None else 0.0
        self.renew_after = self.unsent_after - longest - sum(OUTCOME_DELAYS) - 10.0
        self.clock: Callable[[], float] = time.monotonic
        # Rasa's /process: connections kept alive, requests written straight to them.
        self.rasa = RasaLink(self.rasa_url)
        self.chains: dict[str, asyncio.Task] = {}  # last forward per sender, to keep their order
        # Earlier forwards of a sender whose next one went on while they record
        # their replies (`forward`): waited for on the way out like the chains.
        self.recording: set[asyncio.Task] = set()
        self.turns = asyncio.Semaphore(int(os.environ.get("COBRADOR_MAX_TURNS_IN_FLIGHT", "32")))
        self.look_every = LOOK_EVERY
        self.drain_seconds = float(os.environ.get("COBRADOR_DRAIN_SECONDS", "8"))
        self.next_look = 0.0
        self.storing: set[str] = set()  # senders with a message being stored claimed
        # Senders whose last forward has Rasa's answer and is only recording it:
        # their next message's turn can start as soon as that is done.
        self.answered: set[str] = set()
        self.claims = HeldClaims(functools.partial(self.pool.run, TURN))  # touched while their turns last
        self.tasks: set[asyncio.Task] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_get("/webhooks/whatsapp/", self.health)
        app.router.add_post("/webhooks/whatsapp/webhook", self.webhook)
        app.router.add_post("/webhooks/whatsapp/status", self.status)
        app.router.add_get("/webhooks/whatsapp/media/{token}", self.media)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, app: web.Application) -> None:
        if self.understanding is not None:
            self.understanding.start()
        if self.sender is not None:
            self._spawn(self._resend())
        self._spawn(self.claims.keep())

    async def _stop(self, app: web.Application) -> None:
        await self._drain()
        for task in list(self.tasks):
            task.cancel()
        await self.rasa.close()
        if self.sender is not None:
            await self.sender.close()
        self.pool.shutdown()
        if self.understanding is not None:
            self.understanding.close()

    async def _drain(self) -> None:
        """On the way out (a restart, a deploy: aiohttp takes no more requests
        by now), lets the turns under way end and their replies go, for up to
        `COBRADOR_DRAIN_SECONDS` (8: inside the 10 s Docker and systemd give
        before killing), instead of cutting them off: a message cut off mid-turn
        stays claimed until the stale-claim sweep takes it, minutes later."""
        deadline = self.clock() + self.drain_seconds
        while True:
            under_way = [
                task for task in (*self.chains.values(), *self.recording, *self.sending.values()) if not task.done()
            ]
            left = deadline - self.clock()
            if not under_way or left <= 0:
                break
            logger.info("waiting for %s turns and sends under way (%.0f s at most)", len(under_way), left)
            await asyncio.wait(under_way, timeout=left)  # a turn may start its replies' sends: looked at again
        if under_way:
            logger.warning("%s turns or sends cut off on the way out; the sweeps take them up", len(under_way))

    async def health(self, request: web.Request) -> web.Response:
        # parse_ahead: "ready", "loading" (the worker is loading the model) or
        # "off" (not asked for, or the worker is gone: Rasa parses every message).
        worker = self.understanding
        if worker is None or worker.process is None:
            parse_ahead = "off"
        else:
            parse_ahead = "ready" if worker.model_id is not None else "loading"
        # heap_frozen: what start-up left is out of the garbage collector's full walks (`serve`).
        return web.json_response(
            {
                "status": "ok", "mode": "local" if self.settings.local else "twilio", "parse_ahead": parse_ahead,
                "heap_frozen": heap.frozen(),
            }
        )  # fmt: skip

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        url = public_url(self.settings, request.path, request.query_string)
        signature = request.headers.get("X-Twilio-Signature", "")
        admission = screen(self.validator, url, raw, signature)  # no I/O: on the loop
        inbound = admission.inbound
        if inbound is not None:
            # A message whose turn can start at once (its sender has none in
            # progress, Rasa has room) is stored already claimed for it: the
            # claim rides on the acknowledgement's transaction instead of
            # costing one of its own. The others are claimed when their turn comes.
            claim = not admission.opt_out and self._can_start(inbound.phone)
            if claim:
                self.storing.add(inbound.phone)
            loop = asyncio.get_running_loop()
            # While Rasa has no turn under way (at most some whose replies are
            # being recorded), this one goes to it first, and only then are its
            # store and its parse begun: Rasa reads the debtor's tracker while
            # the message is stored and parsed, and takes the message once word
            # comes that it is stored, its parse following on the same request
            # (cobrador.whatsapp.forwarded). Under load Rasa's core is the limit,
            # not the wait: the message goes once stored, with its parse, in one
            # piece, as cheaply as can be.
            early = loop.create_future() if claim and self._rasa_idle() else None
            # The NLU worker parses the text while the message is stored (see
            # cobrador.whatsapp.understanding): Rasa's core is spared the parse.
            worker = None if admission.opt_out else self.understanding
            parse: Optional[asyncio.Future] = None
            storing: Optional[asyncio.Future] = None
            try:
                if early is not None:
                    parse = loop.create_future() if worker is not None else None  # filled in below
                    written = loop.create_future()
                    self.forward(Handover(inbound, None, parse, early, written))
                    await asyncio.wait([written], timeout=FORWARD_FIRST_WAIT)
                storing = self.acks.submit(inbound, claim)
                if worker is not None:
                    asked = worker.parse_soon(neutralize_command(inbound.body))
                    if parse is None:
                        parse = asked
                    else:
                        _pass_on(asked, parse)
                stored = await storing
            except SQLAlchemyError:
                logger.exception("the message could not be stored")
                _drop(parse)
                return _store_failed()
            finally:  # Rasa is told what came of it (nothing stored, if this failed or was cancelled)
                self.storing.discard(inbound.phone)
                if early is not None and not early.done():
                    ok = storing is not None and storing.done() and not storing.cancelled()
                    early.set_result(storing.result() if ok and storing.exception() is None else None)
            if not stored.new:  # a replay: acknowledged, dropped
                _drop(parse)
                return web.Response(status=200, text=EMPTY_TWIML, content_type="text/xml")
            if admission.opt_out:
                self._spawn(opt_out(self.settings, self.sender, inbound.sid, inbound.phone, inbound.body))
            else:
                if stored.language is not None:  # stored claimed
                    self.claims.hold(inbound.sid)
                if early is None:
                    self.forward(Handover(inbound, stored.language, parse))
        return web.Response(status=admission.status, text=admission.text, content_type=admission.content_type)

    async def status(self, request: web.Request) -> web.Response:
        """Twilio's delivery callbacks (two or three for each reply): checked
        on the loop, applied in group commits like the acknowledgements."""
        raw = await request.read()
        url = public_url(self.settings, request.path, request.query_string)
        signature = request.headers.get("X-Twilio-Signature", "")
        screened = screen_status(self.validator, url, raw, signature)  # no I/O: on the loop
        if not isinstance(screened, StatusCallback):
            code, text = screened
            return web.Response(status=code, text=text)
        try:
            await self.callbacks.submit(screened.sid, screened.state, screened.code)
        except SQLAlchemyError:
            logger.exception("the status could not be stored")
            return _store_failed()
        return web.Response(status=204)

    async def media(self, request: web.Request) -> web.Response:
        code, content = await self.pool.run(MEDIA, media_document, self.settings, request.match_info["token"])
        if code != 200:
            return web.Response(status=code, text=str(content))
        return web.Response(body=content, content_type="application/pdf", headers=MEDIA_HEADERS)

    def _under_way(self, phone: str) -> bool:
        """Whether the sender has a turn on its way to Rasa or at Rasa. One
        that has Rasa's answer is not: only its recording is left, and the
        next message's turn starts right away. A debtor mostly writes again on
        seeing the replies, which show (or go) once recorded; the turn's task
        tidies up a few steps of the event loop later, and a message that came
        in before that (a quarter of all at 30 conversations) cost a claim
        transaction of its own, and waited for that task."""
        return phone in self.chains and phone not in self.answered

    def _can_start(self, phone: str) -> bool:
        return not self._under_way(phone) and phone not in self.storing and not self.turns.locked()

    def _rasa_idle(self) -> bool:
        """Whether Rasa has none of this ingest's turns under way."""
        return not any(self._under_way(phone) for phone in self.chains)

    def forward(self, handover: Handover) -> None:
        """Hands the message to Rasa after the sender's previous one is answered.

        A previous one that is answered and only recording its replies is not
        waited for: its recording went to its writer in the step its answer
        came (`hand_over`), and the writers take their items in order, so its
        replies are recorded (and sent) before this turn's; Rasa, for its part,
        runs a debtor's turns one after the other."""
        phone = handover.inbound.phone
        previous = self.chains.get(phone)
        if previous is not None and not self._under_way(phone):
            self.recording.add(previous)
            previous.add_done_callback(self.recording.discard)
            previous = None
        self.chains[phone] = self._spawn(self._forward_after(previous, handover))
        self.answered.discard(phone)

    async def _forward_after(self, previous: Optional[asyncio.Task], handover: Handover) -> None:
        inbound = handover.inbound
        try:
            if previous is not None:
                await asyncio.wait([previous])
            async with self.turns:
                await self.hand_over(handover)
        finally:
            if handover.written is not None and not handover.written.done():
                handover.written.set_result(None)  # it did not go: its store waits no more
            self.claims.let_go(inbound.sid)  # answered, given back, or left to the sweep
            # Forgotten in the same step as the turn's end (a done-callback
            # would run a loop iteration later, after the debtor's next message
            # may have come in and, finding this one, been claimed separately).
            if self.chains.get(inbound.phone) is asyncio.current_task():
                del self.chains[inbound.phone]
                self.answered.discard(inbound.phone)

    async def hand_over(self, handover: Handover) -> None:
        """Claims the message (unless it was stored claimed, or is being
        stored claimed), has Rasa run its turn (with the message's parse, when
        the NLU worker made one), then records and sends the replies."""
        inbound = handover.inbound
        if handover.language is None and handover.stored is None:
            handover.language = await self.pool.run(TURN, claim_for_turn, inbound.sid, inbound.phone, False)
            if handover.language is None:
                _drop(handover.parse)
                return  # answered or being answered by the Rasa channel itself
            self.claims.hold(inbound.sid)
        replies = await self._run_turn(handover)
        if replies is None:
            return
        if self.chains.get(inbound.phone) is asyncio.current_task():  # no later message queued behind it
            self.answered.add(inbound.phone)
        if self.sender is None:  # local mode: the outbox and the "processed" mark together
            await self.finishes.submit(inbound.sid, replies)
            return
        # Twilio: the replies are logged `sending` with the "processed" mark
        # (one group commit: the turn is over), then sent, after the debtor's
        # earlier replies and in order, while the next turn may already run.
        ids, touched = await self.finishes_to_send.submit(inbound.sid, replies)
        logged = [(i, *reply) for i, reply in zip(ids, replies, strict=True)]
        language = handover.language if handover.stored is None else handover.stored.result().language
        self.send_in_order(inbound.phone, language, logged, touched)

    def send_in_order(self, phone: str, language: str, replies: list[Logged], touched: dt.datetime) -> None:
        """Sends logged replies (id, phone, body, media, sender), last touched
        at `touched` (logged or claimed), after those of the debtor's earlier
        turns, then records what happened to each."""
        if not replies:
            return
        previous = self.sending.get(phone)
        lease = (touched, self.clock())
        self.sending[phone] = self._spawn(self._send_after(previous, phone, language, replies, lease))

    async def _send_after(
        self,
        previous: Optional[asyncio.Task],
        phone: str,
        language: str,
        replies: list[Logged],
        lease: tuple[dt.datetime, float],
    ) -> None:
        try:
            if previous is not None:
                await asyncio.wait([previous])
            output = WhatsAppOutput(
                self.settings, self.sender, language, database=functools.partial(self.pool.run, TURN)
            )
            outcomes: list[Outcome] = []
            held = [message_id for message_id, *_ in replies]  # logged, not yet recorded as sent
            for message_id, to, body, media, _ in replies:
                if self.clock() - lease[1] > self.renew_after:
                    try:
                        held, touched = await self.pool.run(TURN, renew_sending, held, lease[0])
                    except SQLAlchemyError:  # not renewed: the rest is left to the sweep
                        logger.warning("the replies to %s could not be renewed; the resend sweep sends them", phone)
                        break
                    lease = (touched, self.clock())
                    if any(outcome[0] not in held for outcome in outcomes):
                        logger.error("a resend sweep took replies to %s already sent: they may go twice", phone)
                if message_id not in held:
                    logger.warning("reply %s to %s is sent by a resend sweep", message_id, phone)
                    continue
                outcomes.append(await output.send_logged(message_id, to, body, [m["url"] for m in media]))
            if not outcomes:
                return
            # Sent: their outcomes must be written, or the sweep would send them
            # again; a database that is briefly down is waited for.
            for delay in (*OUTCOME_DELAYS, None):
                try:
                    await self.outcomes.submit(outcomes)
                    break
                except SQLAlchemyError:
                    if delay is None:
                        raise
                    logger.warning("recording what happened to the replies to %s failed; retrying", phone)
                    await asyncio.sleep(delay)
        except Exception:  # noqa: BLE001 - left `sending`: the resend sweep sends what was not
            logger.exception("sending the replies to %s failed", phone)
        finally:
            if self.sending.get(phone) is asyncio.current_task():
                del self.sending[phone]

    async def _resend(self) -> None:
        """Twilio mode: at start and then every `COBRADOR_RESEND_SECONDS`, sends
        the replies a crash left logged but unsent (untouched for
        `COBRADOR_UNSENT_AFTER_SECONDS`, longer than any send's retries),
        unless Twilio already has them (`_reached_twilio`)."""
        while True:
            try:
                busy = set(self.sending)  # debtors this ingest is still sending to (Twilio slow)
                # Replies go out in order, so once one of a debtor's did not
                # reach Twilio, the later ones did not either (nor is one of
                # theirs taken for the copy of an earlier one just resent).
                resending: set[str] = set()
                for message, language, touched in await self.pool.run(TURN, claim_unsent, self.unsent_after):
                    if message.phone in busy:
                        continue  # claimed: looked at again once the claim is as old
                    if message.phone not in resending and await self._reached_twilio(message):
                        continue
                    resending.add(message.phone)
                    logger.warning("sending reply %s to %s, left unsent by a crash", message.id, message.phone)
                    self.send_in_order(
                        message.phone, language, [(message.id, message.phone, message.body, message.media, "")], touched
                    )
            except SQLAlchemyError:
                logger.exception("the resend sweep could not read the message log")
            except Exception:  # noqa: BLE001 - the sweep must outlive any one failure
                logger.exception("the resend sweep failed; it runs again")
            await asyncio.sleep(self.resend_seconds)

    async def _reached_twilio(self, message: LoggedMessage) -> bool:
        """Whether Twilio already took a reply the sweep is about to send again
        (sent, but its outcome never written: the ingest died, or the database
        was down for longer than the outcome's retries); if so, its SID and
        status are recorded instead, and the debtor does not get it twice.

        Twilio's list of our messages to the debtor is asked for one it created
        since the reply was logged, with the same text and number of media, and
        whose SID the log does not hold yet (the oldest such). A reply whose
        check fails is sent: the debtor gets it, at worst twice."""
        assert self.sender is not None
        try:
            listed = await self.sender.sent_to(message.phone)
        except SendError as error:
            logger.warning("Twilio could not say whether reply %s went (%s): it is sent", message.id, error)
            return False
        logged = message.created_at if message.created_at.tzinfo else message.created_at.replace(tzinfo=dt.timezone.utc)
        same = [
            item
            for item in reversed(listed)  # oldest first
            if isinstance(item.get("sid"), str)
            and (item.get("body") or "") == message.body
            and str(item.get("num_media") or "0") == str(len(message.media))
            and str(item.get("direction") or "").startswith("outbound")
            and (created := _twilio_time(item.get("date_created"))) is not None
            and created >= logged - CLOCK_SKEW
        ]
        if not same:
            return False
        known = await self.pool.run(TURN, known_sids, [item["sid"] for item in same])
        found = next((item for item in same if item["sid"] not in known), None)
        if found is None:
            return False
        code = found.get("error_code")
        await self.outcomes.submit(
            [(message.id, found.get("status") or "queued", found["sid"], code and str(code), None)]
        )
        logger.warning("reply %s to %s had reached Twilio (%s): recorded, not sent again", message.id, message.phone,
                       found["sid"])  # fmt: skip
        return True

    async def _run_turn(self, handover: Handover) -> Optional[list[tuple[str, str, list, str]]]:
        """The turn's replies from Rasa; None when there are none to record now.

        While Rasa cannot be reached the claim is retried with backoff and then
        given back, so the channel's sweep (or start-up recovery) answers the
        message. If Rasa took the message but the answer was lost, the message
        stays claimed: the channel's stale-claim sweep records the replies the
        turn gave (or, if Rasa restarted, its start-up recovery runs the turn),
        never twice in a row."""
        inbound, stored = handover.inbound, handover.stored
        for delay in self.retry_delays:
            if delay:  # the first try goes at once, without a turn of the loop
                await asyncio.sleep(delay)
            forward = await self._forward_body(handover)
            if forward is None:
                return None  # not stored: no turn
            body, headers = forward
            try:
                answer = await self.rasa.post(PROCESS_PATH, headers, body)
            except Unreachable as error:
                logger.warning("Rasa unreachable for %s (%s); retrying", inbound.sid, error)
                continue
            except Dropped as error:
                logger.error("Rasa dropped %s mid-turn (%s); answered after its restart", inbound.sid, error)
                return None
            except asyncio.TimeoutError:
                logger.error("Rasa took too long with %s; the stale-claim sweep records its replies", inbound.sid)
                return None
            if answer.status == 200:
                payload = json.loads(answer.body)
                self._follow(payload.get("model"))
                return [(m["phone"], m["body"], m["media"], m["sender"]) for m in payload["messages"]]
            if answer.status in (404, 502, 503):  # Rasa (re)starting or behind a proxy that is
                continue
            if answer.status == 409 and stored is not None and not _new(stored):
                return None  # not stored (said here already): Rasa dropped the turn
            if answer.status == 409:  # its recovery or sweep took it meanwhile and answers it
                logger.info("%s is answered by the Rasa channel itself", inbound.sid)
                return None
            text = answer.body.decode("utf-8", "replace")
            logger.error("Rasa answered %s for %s: %s", answer.status, inbound.sid, text)
            return None
        logger.error("Rasa did not take %s; it is given back to the channel's sweep", inbound.sid)
        if stored is not None:
            # Still being stored claimed (the forward went first): given back
            # once it is, or it would be stored `processing` after the release
            # and wait for the stale-claim sweep (PostgreSQL has threads for both).
            await asyncio.wait([stored])
            if not _new(stored):
                return None
        await self.pool.run(TURN, release_claim, inbound.sid)
        return None

    async def _forward_body(self, handover: Handover) -> Optional[tuple[Any, dict[str, str]]]:
        """The body of a forward and its headers (None: the message was not
        stored, there is no turn). The message, signed in the header, goes at
        once; while it is being stored (`stored`), word that it is follows on
        a line of its own with the debtor's language, and then, if the NLU
        worker is still parsing it, its parse; each line is signed for that
        message (cobrador.whatsapp.forwarded). What is known already goes in
        the message itself."""
        inbound, language, parse, stored = handover.inbound, handover.language, handover.parse, handover.stored
        forward: dict[str, Any] = {**_as_json(inbound)}
        if stored is not None and stored.done():
            if not _new(stored):
                return None
            language, stored = stored.result().language, None
        if stored is not None:
            forward["stored_follows"] = True
        else:
            forward["language"] = language
        follows = stored is not None and parse is not None and not parse.done()  # see `webhook`
        if follows:
            forward["parse_follows"] = True
        elif parse is not None:
            done = await parsed(parse)
            if done is not None:
                forward["parse"] = done
        body = json.dumps(forward, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "X-Cobrador-Signature": forward_signature(self.key, body)}
        if stored is None and not follows:
            return body, headers

        def line(item: dict[str, Any]) -> bytes:
            data = json.dumps(item, ensure_ascii=False).encode("utf-8")
            return forward_signature(self.key, covered(inbound.sid, data)).encode("ascii") + b" " + data + b"\n"

        async def streamed() -> AsyncIterator[bytes]:
            yield body + b"\n"
            if handover.written is not None and not handover.written.done():
                handover.written.set_result(None)  # asked for more: the message went
            if stored is not None:
                await stored
                if not _new(stored):
                    yield line({"stored": False})
                    return
                yield line({"stored": True, "language": stored.result().language})
            if follows:
                yield line({"parse": await parsed(parse)})

        return streamed(), {**headers, "Content-Type": "application/x-ndjson"}

    def _follow(self, model: Any) -> None:
        """Keeps the NLU worker on the model Rasa runs (`model`, the id Rasa
        answered a turn with), so parse-ahead survives a new model (Rasa
        ignores parses made by another). The worker's model differs: if the
        model file changed since the worker loaded it, a new worker loads it;
        if not, the file holds another model than Rasa's, and the worker
        stops (its parses would all be thrown away) until the file changes."""
        worker = self.understanding
        if worker is None or not isinstance(model, str):
            return
        if worker.model_id is not None:
            if worker.model_id == model:
                return
            if file_stamp(worker.model) == worker.stamp:
                logger.warning(
                    "Rasa runs model %s but %s holds model %s: nothing is parsed ahead until that file changes",
                    model, worker.model, worker.model_id,
                )  # fmt: skip
                worker.close()
                return
            self._restart_worker()
        elif worker.process is None and self.clock() >= self.next_look:  # stopped (or gone)
            self.next_look = self.clock() + self.look_every
            if file_stamp(worker.model) != worker.stamp:
                self._restart_worker()

    def _restart_worker(self) -> None:
        old = self.understanding
        assert old is not None
        logger.info("the model file changed: a new NLU worker loads %s", old.model)
        old.close()
        self.understanding = Understanding(old.model, old.most_waiting)
        self.understanding.start()

    def _spawn(self, coroutine) -> asyncio.Task:  # noqa: ANN001
        task = asyncio.get_running_loop().create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def _twilio_time(value: Any) -> Optional[dt.datetime]:
    """A time in Twilio's JSON (RFC 2822, "Tue, 01 Dec 2026 10:40:00 +0000"), or None."""
    try:
        when = email.utils.parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _new(stored: asyncio.Future) -> bool:
    """Whether a message being stored (`stored`, done) was stored anew."""
    result = stored.result()
    return result is not None and result.new


def _drop(parse: Optional[asyncio.Future]) -> None:
    if parse is not None:
        parse.cancel()


def _pass_on(asked: Optional[asyncio.Future], parse: asyncio.Future) -> None:
    """Fills `parse`, which a forward gone first was given, with what the NLU
    worker was then `asked` for (None: nothing, as `parsed` takes a failure);
    dropping `parse` drops what was asked."""
    if asked is None:
        parse.set_result(None)
        return

    def settle(done: asyncio.Future) -> None:
        if parse.done():
            return
        if done.cancelled():
            parse.cancel()
        elif done.exception() is not None:
            logger.warning("no parse ahead for a message: %s", done.exception())
            parse.set_result(None)
        else:
            parse.set_result(done.result())

    asked.add_done_callback(settle)
    parse.add_done_callback(lambda _: parse.cancelled() and asked.cancel())


def _as_json(inbound: Inbound) -> dict[str, object]:
    return {
        "sid": inbound.sid, "phone": inbound.phone, "body": inbound.body, "media": inbound.media,
        "profile_name": inbound.profile_name, "wa_id": inbound.wa_id,
    }  # fmt: skip


async def _freeze_heap(app: web.Application) -> None:
    heap.freeze()


def serve(host: str, port: int, rasa_url: str, model: Optional[str] = None) -> None:
    """Runs the ingest until interrupted (`python -m cobrador ingest`); with
    `model` (Rasa's), the NLU worker parses ahead unless COBRADOR_PARSE_AHEAD=off."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    understanding = Understanding(Path(model)) if model and parse_ahead_enabled() else None
    ingest = Ingest(ChannelSettings.from_env(), rasa_url, understanding=understanding)
    app = ingest.app()
    # What start-up made (aiohttp, SQLAlchemy, twilio, the channel's Rasa
    # imports: some 200,000 objects, none of them garbage) is kept out of the
    # garbage collector's full walks, which took 85-130 ms of the event loop
    # each, every thousand turns or so (cobrador.heap).
    app.on_startup.append(_freeze_heap)
    # uvloop (installed with Sanic, which Rasa runs on) makes the loop's own
    # work, sockets and callbacks from the database threads, cheaper.
    import uvloop

    web.run_app(app, host=host, port=port, access_log=None, print=None, loop=uvloop.new_event_loop())
