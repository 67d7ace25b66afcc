"""The WhatsApp channel: Twilio webhooks in, Twilio REST (or the local
outbox) out. Registered in credentials.yml by module path:

    cobrador.whatsapp.channel.WhatsAppInput:

and served at /webhooks/whatsapp/webhook (messages) and
/webhooks/whatsapp/status (delivery statuses).

Why not Rasa's `twilio` channel: it checks no signature, turns "¡" into "@",
answers 500 to media-only messages, blocks the event loop while sending and
loses the turn when a send fails (../shared/design/architecture.md).

The path of one inbound message:

1. The `X-Twilio-Signature` header is checked with the twilio library's
   `RequestValidator` against the configured public URL and the raw form
   (parsed with blank fields kept). Anything unsigned or tampered gets 403
   and nothing is stored. There is no switch to turn the check off; local
   mode signs with a local token.
2. The message is stored by MessageSid before anything else; a replay is
   acknowledged and dropped.
3. Opt-out keywords (STOP, BAJA, ALTO, ...) are honoured here, before NLU.
4. Twilio gets its 200 at once; the turn runs in a background task. A crash
   mid-turn leaves the message `received`/`processing`, and it is processed
   when the server starts again.
5. Rasa sees the debtor's E.164 phone as sender, the text with any leading
   "/" removed (debtor text can never trigger an intent or a command), and
   the message id, profile name and media as metadata.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.events import ActionExecuted, BotUttered, UserUttered
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy.exc import SQLAlchemyError
from twilio.request_validator import RequestValidator

from cobrador.heap import frozen, keep_frozen
from cobrador.language.commands import neutralize_command
from cobrador.language.text import fold
from cobrador.ledger import commands, messages
from cobrador.ledger.db import direct_unit, session_scope
from cobrador.ledger.phones import try_e164
from cobrador.whatsapp import documents
from cobrador.whatsapp.forwarded import (
    PARSE_WAIT,
    REPLAYED,
    AlreadyInTracker,
    ForwardedTurn,
    Lines,
    NotStored,
    covered,
    position_of,
)
from cobrador.whatsapp.forwarded import install as install_forwarded
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.twilio_api import OUTSIDE_WINDOW, SendError, TwilioSender, split_body
from cobrador.whatsapp.understanding import usable

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/whatsapp/webhook"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'

# Honoured before NLU, whole message only (case, accents and punctuation ignored).
OPT_OUT_KEYWORDS = {
    "stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "opt out",
    "baja", "alto", "cancelar", "parar", "detener", "darme de baja", "no mas mensajes",
}  # fmt: skip
OPT_OUT_CONFIRMATION = {
    "es": "Listo, ya no te enviaremos mensajes por WhatsApp. Si cambias de opinión, escríbenos.",
    "en": "Done, we won't send you WhatsApp messages anymore. If you change your mind, write to us.",
}


def is_opt_out_keyword(text: str) -> bool:
    """Whether the whole message is an opt-out keyword ("STOP", "Baja.", "alto!")."""
    return re.sub(r"[^\w ]+", "", fold(text)).strip() in OPT_OUT_KEYWORDS


class _Form(dict):
    """Parsed form fields with every value kept. The validator asks a form
    for `getall` (a MultiDict's), then for `getlist`, each time it reads a
    field: both are here, so it never pays for the exception of a missing one."""

    def getall(self, key: str) -> list[str]:
        return self[key]

    getlist = getall


def parse_form(body: bytes) -> _Form:
    """The raw body as form fields, blank ones included (Sanic's form drops them)."""
    return _Form(parse_qs(body.decode("utf-8"), keep_blank_values=True))


def _buttons_menu(text: str, buttons: list[dict[str, Any]]) -> str:
    lines = [text] + [f"{n}) {b.get('title', '')}" for n, b in enumerate(buttons, start=1)]
    return "\n".join(lines)


class WhatsAppOutput(OutputChannel):
    """Replies to one debtor: logged first, then sent (or left in the outbox).

    A failed send is recorded as failed and never raises: the turn is kept.
    """

    def __init__(
        self,
        settings: ChannelSettings,
        sender: Optional[TwilioSender],
        language: str = "es",
        outbox: Optional[list[tuple[str, str, list, str]]] = None,
        database: Optional[Callable[..., Awaitable[Any]]] = None,
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.language = language
        # Local mode collects a turn's replies here; the channel writes them to
        # the outbox together with the "processed" mark, in one transaction.
        self.outbox = outbox
        # How the message log is written: a worker thread by default; the
        # ingest passes its database threads (on SQLite, its one writer).
        self.database = database or asyncio.to_thread

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        for part in split_body(text):
            await self.deliver(recipient_id, part)

    async def send_text_with_buttons(
        self, recipient_id: str, text: str, buttons: list[dict[str, Any]], **kwargs: Any
    ) -> None:
        # WhatsApp free-form messages have no buttons: a numbered menu, whose
        # "1"/"2" answers the engine reads back.
        await self.send_text_message(recipient_id, _buttons_menu(text, buttons))

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self.deliver(recipient_id, "", media_urls=[image])

    async def send_attachment(self, recipient_id: str, attachment: str, **kwargs: Any) -> None:
        await self.deliver(recipient_id, "", media_urls=[attachment])

    async def deliver(self, phone: str, body: str, media_urls: tuple | list = (), sender: str = "bot") -> int:
        media = [{"url": url} for url in media_urls]
        if self.sender is None and self.outbox is not None:
            self.outbox.append((phone, body, media, sender))
            return 0
        message_id = await self.database(_store_outbound, phone, body, media, sender)
        if self.sender is None:
            return message_id  # local mode: the outbox (the simulator shows it)
        await self.database(_mark, *await self.send_logged(message_id, phone, body, media_urls))
        return message_id

    async def send_logged(self, message_id: int, phone: str, body: str, media_urls: Sequence[str] = ()) -> Outcome:
        """Sends a message already logged as `message_id` through Twilio and
        returns what happened to it, for the caller to record (`_mark`): its
        status and SID, or failed with the error. Never raises. Outside the
        24-hour window (63016) the approved re-engagement template goes
        instead, logged and sent on its own."""
        assert self.sender is not None
        try:
            result = await self.sender.send(phone, body or None, media_urls=list(media_urls))
            return (message_id, result.get("status") or "queued", result.get("sid"), None, None)
        except SendError as error:
            template = self.settings.reengage_templates.get(self.language)
            if error.code == OUTSIDE_WINDOW and template:
                await self.deliver_template(phone, template)
                return (message_id, "failed", None, str(OUTSIDE_WINDOW), None)
            logger.error("send to %s failed: %s (code %s)", phone, error, error.code)
            return (message_id, "failed", None, str(error.code or error.status or ""), None)
        except Exception:  # noqa: BLE001 - the turn must survive any send failure
            logger.exception("send to %s failed", phone)
            return (message_id, "failed", None, "exception", None)

    async def deliver_template(self, phone: str, template: str, sender: str = "bot") -> int:
        """Logs and sends an approved template (ContentSid); in local mode it stays in the outbox."""
        template_id = await self.database(_store_outbound, phone, "", [], sender, template)
        if self.sender is None:
            return template_id
        try:
            result = await self.sender.send(phone, content_sid=template, content_variables={"1": "Cobrador"})
            await self.database(_mark, template_id, result.get("status") or "queued", result.get("sid"), None, template)
        except SendError as error:
            await self.database(_mark, template_id, "failed", None, str(error.code or error.status or ""), None)
        return template_id


def _store_outbound(phone: str, body: str, media: list, sender: str, template_sid: Optional[str] = None) -> int:
    with session_scope() as session:
        return messages.record_outbound(session, phone, body, sender=sender, media=media, template_sid=template_sid)


# What happened to a send: (message id, status, Twilio's SID, error code, template SID).
Outcome = tuple[int, str, Optional[str], Optional[str], Optional[str]]


def finish_turns_to_send(
    sids: Sequence[str], outboxes: Sequence[list[tuple[str, str, list, str]]]
) -> list[tuple[list[int], dt.datetime]]:
    """Twilio mode: the replies of turns that ended together logged `sending`
    (to be sent, in order, once this commits) with each turn's "processed"
    mark, in one transaction; each turn's message ids, and when they were
    logged (their `updated_at`, for `messages.renew_sending`). A crash before
    they are sent leaves them `sending` without a SID, for the resend sweep."""
    now = messages.utcnow()
    turns = list(zip(sids, outboxes, strict=True))
    with messages.batch_unit(sum(map(len, outboxes))) as session:
        ids = messages.finish_turns_many(session, turns, "sending", now)
    return [(turn, now) for turn in ids]


def record_outcomes(batches: Sequence[list[Outcome]]) -> list[None]:
    """What happened to sends (status and SID, or failed with the error), in one transaction."""
    with direct_unit(one_round_trip=True) as session:
        for outcomes in batches:
            for message_id, status, provider_sid, error, template in outcomes:
                messages.mark_outbound(
                    session, message_id, status, provider_sid=provider_sid, error_code=error, template_sid=template
                )
    return [None] * len(batches)


def claim_unsent(older_than_seconds: float, limit: int = 100) -> list[tuple[messages.LoggedMessage, str, dt.datetime]]:
    """The replies a crash left unsent (none touched for `older_than_seconds`),
    each claimed for sending, with its debtor's language and the claim's time
    (for `messages.renew_sending`); oldest first."""
    since = messages.utcnow() - dt.timedelta(seconds=older_than_seconds)
    with session_scope() as session:
        found = messages.unsent_outbound(session, since, limit)
        claims = [(m, messages.claim_unsent(session, m.id, since)) for m in found]
        claimed = [(m, touched) for m, touched in claims if touched is not None]
        languages = messages.languages(session, {m.phone for m, _ in claimed}) if claimed else {}
    return [(m, languages.get(m.phone) or "es", touched) for m, touched in claimed]


def known_sids(provider_sids: Sequence[str]) -> set[str]:
    """`messages.known_sids` in a transaction of its own."""
    with session_scope() as session:
        return messages.known_sids(session, provider_sids)


def renew_sending(message_ids: Sequence[int], touched: dt.datetime) -> tuple[list[int], dt.datetime]:
    """`messages.renew_sending` in a transaction of its own."""
    with session_scope() as session:
        return messages.renew_sending(session, message_ids, touched)


def _mark(message_id: int, status: str, sid: Optional[str], error: Optional[str], template: Optional[str]) -> None:
    with direct_unit(one_round_trip=True) as session:
        messages.mark_outbound(session, message_id, status, provider_sid=sid, error_code=error, template_sid=template)


def _set_status(sid: str, status: str) -> None:
    with session_scope() as session:
        messages.set_inbound_status(session, sid, status)


def finish_turn(sid: str, outbox: list[tuple[str, str, list, str]]) -> None:
    """The turn's replies (local mode) and the "processed" mark, atomically:
    a crash before this leaves the message pending with no half-written
    answer, and it is answered once after the restart."""
    finish_turns([sid], [outbox])


def finish_turns(sids: Sequence[str], outboxes: Sequence[list[tuple[str, str, list, str]]]) -> list[None]:
    """`finish_turn` for turns that ended together, in one transaction."""
    turns = list(zip(sids, outboxes, strict=True))
    with messages.batch_unit(sum(map(len, outboxes))) as session:
        messages.finish_turns_many(session, turns)
    return [None] * len(sids)


def claim_for_turn(sid: str, phone: str, recovered: bool) -> Optional[str]:
    """Claims the message for this turn; returns the debtor's language, or None
    if it was already answered or claimed. After a restart, messages left
    `processing` by the dead process are claimed again."""

    statuses = messages.INBOUND_PENDING if recovered else ("received",)
    with direct_unit() as session:
        if not messages.claim_inbound(session, sid, statuses):
            return None
        return messages.languages(session, [phone]).get(phone) or "es"


# A live process (the ingest, or Rasa for the turns it claims itself) touches
# the claims it holds this often; a claim left untouched for
# COBRADOR_STALE_CLAIM_SECONDS (a minute) is a dead process's, and the Rasa
# channel's sweep takes it over.
KEEP_CLAIMS_SECONDS = 15.0
STALE_CLAIM_SECONDS = 60.0


def keep_claims(sids: Sequence[str]) -> int:
    """`messages.keep_claims` in a transaction of its own."""
    with session_scope() as session:
        return messages.keep_claims(session, sids)


class HeldClaims:
    """The inbound messages this process holds claimed for their turns, and
    the task (`keep`) that touches those held longer than `every` seconds,
    every `every` seconds, however long their turns take (Rasa slow or
    restarting, a turn waiting behind others): only a process that died
    leaves a claim to go stale. `database` runs a function off the loop."""

    def __init__(self, database: Callable[..., Awaitable[Any]], every: Optional[float] = None) -> None:
        if every is None:
            every = float(os.environ.get("COBRADOR_KEEP_CLAIMS_SECONDS", str(KEEP_CLAIMS_SECONDS)))
        self.database = database
        self.every = every
        self.held: dict[str, float] = {}  # sid -> when last claimed or touched (monotonic)

    def hold(self, sid: str) -> None:
        self.held[sid] = time.monotonic()

    def let_go(self, sid: str) -> None:
        self.held.pop(sid, None)

    async def keep(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            now = time.monotonic()
            due = [sid for sid, since in self.held.items() if now - since >= self.every * 0.9]
            if not due:
                continue
            try:
                await self.database(keep_claims, due)
            except Exception:  # noqa: BLE001 - tried again next time; a claim goes stale only after several
                logger.warning("the claims on %s messages could not be touched", len(due), exc_info=True)
                continue
            for sid in due:
                if sid in self.held:
                    self.held[sid] = now


def release_claim(sid: str) -> None:
    """Gives a claimed message back (its turn could not start), for the sweep."""
    with session_scope() as session:
        messages.release_inbound(session, sid)


def _stale(status: str, seconds: float) -> list[messages.LoggedMessage]:
    import datetime as dt

    with session_scope() as session:
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        return messages.stale_inbound(session, status, cutoff)


def _take_over(sid: str, seconds: float) -> Optional[str]:
    """Claims a message stuck in `processing` for longer than `seconds`; its language, or None."""
    import datetime as dt

    from sqlalchemy import select

    from cobrador.ledger.models import Message

    with session_scope() as session:
        cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        if not messages.claim_inbound(session, sid, ("processing",), unchanged_since=cutoff):
            return None
        phone = session.execute(select(Message.phone).where(Message.provider_sid == sid)).scalar_one()
        return messages.languages(session, [phone]).get(phone) or "es"


def _language(phone: str) -> str:
    from cobrador.ledger.lookups import find_debtor

    with session_scope() as session:
        debtor = find_debtor(session, phone)
        return debtor.language if debtor else "es"


@dataclass(frozen=True)
class Inbound:
    """One debtor message as Twilio posted it, reduced to what a turn needs."""

    sid: str
    phone: str
    body: str
    media: list[dict[str, str]] = field(default_factory=list)
    profile_name: str = ""
    wa_id: str = ""

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """What reaches Rasa (and the actions) with the text."""
        return {
            "message_sid": self.sid, "profile_name": self.profile_name, "wa_id": self.wa_id, "media": self.media,
            **extra,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: Any) -> Optional[Inbound]:
        """The ingest's forward, checked field by field; None if malformed."""
        if not isinstance(data, dict):
            return None
        phone = try_e164(str(data.get("phone", "")))
        sid, body = data.get("sid"), data.get("body")
        media = data.get("media") or []
        if phone is None or not isinstance(sid, str) or not sid or not isinstance(body, str):
            return None
        if not isinstance(media, list) or not all(isinstance(m, dict) for m in media):
            return None
        return cls(sid, phone, body, media, str(data.get("profile_name", "")), str(data.get("wa_id", "")))


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd")


def read_inbound(form: _Form) -> Inbound | str:
    """The message in a (signed) webhook form, or why it cannot be one."""
    sid = (form.get("MessageSid") or form.get("SmsMessageSid") or [""])[0]
    phone = try_e164((form.get("From") or [""])[0].removeprefix("whatsapp:"))
    # Twilio's SIDs are 34 characters; the log keeps up to 64, and an
    # unstorable one would be retried by Twilio forever.
    if not sid or len(sid) > 64 or "\x00" in sid or phone is None:
        return "MessageSid and a valid From are required"
    media = []
    try:
        count = min(int((form.get("NumMedia") or ["0"])[0] or 0), 10)
    except ValueError:
        count = 0
    for n in range(count):
        url = (form.get(f"MediaUrl{n}") or [""])[0]
        if url:
            media.append({"url": _no_nul(url), "content_type": _no_nul((form.get(f"MediaContentType{n}") or [""])[0])})
    # A NUL cannot be stored in a PostgreSQL text column: it would make the
    # message unstorable, and Twilio would retry it forever.
    return Inbound(
        sid, phone, _no_nul((form.get("Body") or [""])[0]), media,
        _no_nul((form.get("ProfileName") or [""])[0]), _no_nul((form.get("WaId") or [""])[0]),
    )  # fmt: skip


@dataclass(frozen=True)
class Admission:
    """The answer to one webhook, and the message to act on if it is new."""

    status: int
    text: str
    inbound: Optional[Inbound] = None
    opt_out: bool = False

    @property
    def content_type(self) -> str:
        return "text/xml" if self.status == 200 else "text/plain"


def signed_by_twilio(validator: RequestValidator, url: str, form: _Form, signature: str) -> bool:
    """Whether `signature` is Twilio's over `url` and the form, by the twilio
    library's `RequestValidator`. Every genuine request is signed over the URL
    as configured (`COBRADOR_PUBLIC_URL`), so that signature is computed first,
    once; only a request it does not match goes through `validate`, which
    computes it over the URL both with and without the scheme's default port
    (Twilio has signed either). So a genuine request costs one HMAC instead of
    two, and nothing is accepted that `validate` would refuse but a signature
    over the very URL configured."""
    if not signature:
        return False
    computed = validator.compute_signature(url, form).encode("utf-8")
    if hmac.compare_digest(computed, signature.encode("utf-8", "replace")):
        return True
    return validator.validate(url, form, signature)


def screen(validator: RequestValidator, url: str, raw_body: bytes, signature: str) -> Admission:
    """The checks before a webhook's message may be stored (no database): the
    signature over the public URL and the raw form, then the fields. Unsigned,
    tampered or malformed requests get their refusal; a message to store
    comes back in `inbound`, with the 200 it will get once stored."""
    try:
        form = parse_form(raw_body)
    except UnicodeDecodeError:
        return Admission(400, "the form is not UTF-8")
    if not signed_by_twilio(validator, url, form, signature):
        return Admission(403, "invalid signature")
    inbound = read_inbound(form)
    if isinstance(inbound, str):
        return Admission(400, inbound)
    return Admission(200, EMPTY_TWIML, inbound, is_opt_out_keyword(inbound.body))


def admit(validator: RequestValidator, url: str, raw_body: bytes, signature: str) -> Admission:
    """Everything that must happen before Twilio gets its answer, in one call
    (run on a worker thread): `screen`, then the message stored once by
    MessageSid; a replay is acknowledged and dropped."""
    admission = screen(validator, url, raw_body, signature)
    inbound = admission.inbound
    if inbound is not None and not store_inbound_batch([inbound])[0].new:
        return Admission(200, EMPTY_TWIML)
    return admission


@dataclass(frozen=True)
class Stored:
    """What storing one message did: `new` is False for a replay (its
    MessageSid was already stored, also earlier in the same batch); `language`
    is the debtor's, set when it was stored already claimed for its turn."""

    new: bool
    language: Optional[str] = None


def store_inbound_batch(inbounds: Sequence[Inbound], claimed: Sequence[bool] = ()) -> list[Stored]:
    """Stores screened messages in one transaction, so a burst costs one commit.

    Those flagged in `claimed` are stored `processing` (claimed for a turn that
    starts right away: the claim costs no transaction of its own) and come back
    with their debtor's language; the others are stored `received`."""
    claims = list(claimed) or [False] * len(inbounds)
    rows = [
        (i.sid, i.phone, i.body, i.media, "processing" if c else "received")
        for i, c in zip(inbounds, claims, strict=True)
    ]
    with messages.batch_unit(len(rows)) as session:
        new, languages = messages.store_inbound_many(
            session, rows, [i.sid for i, c in zip(inbounds, claims, strict=True) if c]
        )
    return [
        Stored(n, (languages.get(i.sid) or "es") if c and n else None)
        for i, c, n in zip(inbounds, claims, new, strict=True)
    ]


@dataclass(frozen=True)
class StatusCallback:
    """A signed delivery-status callback, checked, to be applied."""

    sid: str
    state: str
    code: Optional[str]


def screen_status(
    validator: RequestValidator, url: str, raw_body: bytes, signature: str
) -> tuple[int, str] | StatusCallback:
    """A delivery-status callback checked (no I/O): the callback, or the
    answer that refuses it."""
    try:
        form = parse_form(raw_body)
    except UnicodeDecodeError:
        return 400, "the form is not UTF-8"
    if not signed_by_twilio(validator, url, form, signature):
        return 403, "invalid signature"
    sid = (form.get("MessageSid") or [""])[0]
    state = (form.get("MessageStatus") or [""])[0]
    code = (form.get("ErrorCode") or [""])[0] or None
    if not sid or not state:
        return 400, "MessageSid and MessageStatus are required"
    return StatusCallback(sid, state, code)


def record_status(validator: RequestValidator, url: str, raw_body: bytes, signature: str) -> tuple[int, str]:
    """A signed delivery-status callback applied to the message log."""
    screened = screen_status(validator, url, raw_body, signature)
    if not isinstance(screened, StatusCallback):
        return screened
    record_callbacks([screened.sid], [screened.state], [screened.code])
    return 204, ""


def record_callbacks(sids: Sequence[str], states: Sequence[str], codes: Sequence[Optional[str]]) -> list[None]:
    """Delivery callbacks that came together, applied in one transaction."""
    with direct_unit(one_round_trip=True) as session:
        for sid, state, code in zip(sids, states, codes, strict=True):
            messages.record_status_callback(session, sid, state, code)
    return [None] * len(sids)


def media_document(settings: ChannelSettings, token: str) -> tuple[int, bytes | str]:
    """The PDF behind a signed, expiring media link."""
    found = documents.verify(documents.media_key(settings.auth_token), token)
    if found is None:
        return 403, "this link is invalid or has expired"
    pdf = _document(*found)
    return (404, "not found") if pdf is None else (200, pdf)


MEDIA_HEADERS = {"Cache-Control": "private, no-store", "Content-Disposition": "inline; filename=cobrador.pdf"}


def forward_key(secret: str) -> bytes:
    """The key the ingest signs its forwards to Rasa with, derived from the channel's secret."""
    return hashlib.sha256(b"cobrador-forward:" + secret.encode("utf-8")).digest()


def forward_signature(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def public_url(settings: ChannelSettings, path: str, query: str) -> str:
    """The URL Twilio signed: the configured public URL, whatever host or port it reached."""
    return settings.public_url + path + (f"?{query}" if query else "")


async def opt_out(settings: ChannelSettings, sender: Optional[TwilioSender], sid: str, phone: str, word: str) -> None:
    """STOP/BAJA/...: recorded before any NLU, confirmed once, then silence."""
    created = await asyncio.to_thread(_record_opt_out, phone, word)
    await asyncio.to_thread(_set_status, sid, "processed")
    if created:
        language = await asyncio.to_thread(_language, phone)
        await WhatsAppOutput(settings, sender, language).deliver(phone, OPT_OUT_CONFIRMATION[language])


class WhatsAppInput(InputChannel):
    """Twilio's WhatsApp webhooks, signed, stored, deduplicated, acknowledged at once.

    Messages arrive either directly (/webhook, a one-process deployment) or
    from the ingest process (/process, see cobrador.whatsapp.ingest), which
    answers Twilio from a process of its own so the acknowledgement never
    waits behind turns in progress. Either way a message is claimed in the
    message log before its turn, so it is answered once.
    """

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.validator = RequestValidator(settings.auth_token)
        self.sender = TwilioSender(settings.twilio) if settings.twilio else None
        self.ack_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="whatsapp-ack")
        self.forward_key = forward_key(settings.auth_token)
        # Turns in flight at once: more only queue inside Rasa and slow down
        # everything else that shares its event loop.
        self.turns = asyncio.Semaphore(int(os.environ.get("COBRADOR_MAX_TURNS_IN_FLIGHT", "6")))
        self.in_flight: set[str] = set()
        # The messages this process answered lately, and when. A message can
        # reach it by two ways (the ingest retrying for about a minute while
        # Rasa restarts, and the start-up recovery or the sweep), and the
        # second must not run the turn again in the two minutes before the
        # first one's "processed" mark is written (a message whose answer
        # could not be recorded is still taken over by the sweep, which finds
        # its turn in the tracker: `ran_already`).
        self.answered: OrderedDict[str, float] = OrderedDict()
        self.turns_running: set[asyncio.Future] = set()
        self.turn_of: dict[str, asyncio.Future] = {}  # each debtor's latest forwarded turn
        install_forwarded()  # the answer before the save, the parse that follows (cobrador.whatsapp.forwarded)
        self.sweep_seconds = float(os.environ.get("COBRADOR_SWEEP_SECONDS", "15"))
        # Start-up: how many of the message log's last messages the catch-up
        # reads (`_catch_up`); until it has, no turn runs (`catch_up_gate`),
        # and then none of a debtor it is still looking at (`catching_up`).
        self.catch_up_messages = int(os.environ.get("COBRADOR_CATCH_UP_MESSAGES", "2000"))
        self.catch_up_gate: Optional[asyncio.Future] = None
        # The start-up recovery has read what was left pending (or given up):
        # the heap is frozen only after, so the freeze's one pause of Rasa's
        # loop does not hold back that read (cobrador.heap).
        self.log_read = False
        self.catching_up: dict[str, asyncio.Future] = {}
        self.claims = HeldClaims(asyncio.to_thread)  # those of the turns run by the sweep and recovery
        self.app: Any = None  # Rasa's Sanic app, once it serves (its agent holds the tracker store)

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    def _answered(self, sid: str, keep: int = 10_000) -> None:
        """`sid` answered now."""
        self.answered[sid] = time.monotonic()
        self.answered.move_to_end(sid)
        while len(self.answered) > keep:
            self.answered.popitem(last=False)

    def _just_answered(self, sid: str, seconds: float = 120.0) -> bool:
        when = self.answered.get(sid)
        return when is not None and time.monotonic() - when < seconds

    async def ran_already(self, inbound: Inbound, language: str) -> Optional[list[tuple[str, str, list, str]]]:
        """The replies of the turn of `inbound`, if that turn already ran (the
        debtor's tracker holds the message): None if it did not.

        A turn is saved to the tracker whole, once it ends, so a message the
        tracker holds was answered, and its replies are the bot messages
        between it and the turn's end (action_listen), turned into WhatsApp
        replies by the output channel as they were then. Whoever lost them
        (an ingest that died before recording them, a Rasa that restarted,
        another Rasa replica, the database down when they were to be written)
        they are recorded from here, and the turn never runs twice. Nothing is
        kept in memory: the tracker store is shared and durable."""
        agent = getattr(getattr(self.app, "ctx", None), "agent", None)
        store = getattr(agent, "tracker_store", None)
        if store is None:
            return None
        tracker = await store.retrieve(inbound.phone)
        if tracker is None:
            return None
        events = list(tracker.events)
        start = position_of(events, inbound.sid)
        if start is None:
            return None
        outbox: list[tuple[str, str, list, str]] = []
        output = WhatsAppOutput(self.settings, None, language, outbox)
        for event in events[start + 1 :]:
            if isinstance(event, UserUttered) or (
                isinstance(event, ActionExecuted) and event.action_name == ACTION_LISTEN_NAME
            ):
                break
            if isinstance(event, BotUttered):
                await output.send_response(inbound.phone, event.message())
        return outbox

    async def record_given(self, sid: str, language: str, replies: list[tuple[str, str, list, str]]) -> None:
        """Records the replies the turn of message `sid` gave (`ran_already`)
        with the message's "processed" mark: into the outbox (local mode), or
        logged `sending` with the mark and then sent in order (Twilio; a crash
        meanwhile leaves them to the ingest's resend sweep), as the ingest does."""
        logger.warning("%s: its turn ran already; recording the replies it gave", sid)
        if self.sender is None:
            await asyncio.to_thread(finish_turn, sid, replies)
            return
        [(ids, _)] = await asyncio.to_thread(finish_turns_to_send, [sid], [replies])
        output = WhatsAppOutput(self.settings, self.sender, language)
        outcomes = [
            await output.send_logged(message_id, phone, body, [m["url"] for m in media])
            for message_id, (phone, body, media, _) in zip(ids, replies, strict=True)
        ]
        await asyncio.to_thread(record_outcomes, [outcomes])

    async def _follows(
        self,
        lines: Lines,
        sid: str,
        turn: ForwardedTurn,
        model_id: Optional[str],
        text: str,
    ) -> None:
        """Reads what follows message `sid` on its request, for its turn: word
        that it is stored (with the debtor's language), and its parse; each
        line signed for that message. Anything missing, unsigned or malformed
        counts as not stored (the turn is dropped) or as no parse (Rasa parses)."""
        stored_follows, parse_follows = not turn.stored.done(), not turn.parse.done()
        try:
            while stored_follows or parse_follows:
                line = await lines.line()
                if line is None:
                    break
                signature, _, data = line.partition(b" ")
                expected = forward_signature(self.forward_key, covered(sid, data))
                if not hmac.compare_digest(signature.decode("ascii", "replace"), expected):
                    logger.warning("a line that followed %s was not signed by the ingest", sid)
                    break
                item = json.loads(data)
                if stored_follows and "stored" in item:
                    stored_follows = False
                    turn.stored.set_result(_known_language(item.get("language")) if item["stored"] is True else None)
                elif parse_follows and "parse" in item:
                    parse_follows = False
                    turn.parse.set_result(usable(item["parse"], model_id, text))
            await lines.drain()
        except (ValueError, AttributeError, TypeError):
            logger.warning("what followed %s on its request was malformed", sid)
        finally:
            for future in (turn.stored, turn.parse):
                if not future.done():
                    future.set_result(None)

    async def _caught_up(self, phone: str) -> None:
        """Waits, at start-up, until the catch-up has read the message log, and
        then while it looks at (or puts back) this debtor's last turn."""
        gate = self.catch_up_gate
        if gate is not None and not gate.done():
            await asyncio.shield(gate)
        looking = self.catching_up.get(phone)
        if looking is not None:
            await asyncio.shield(looking)

    async def _catch_up(self, app: Any, replay: Callable[[Inbound, str], Awaitable[None]]) -> None:
        """At start-up, puts back into the trackers the turns a crash answered
        but did not save, before any other turn runs.

        A forwarded turn is answered before Rasa saves its tracker
        (cobrador.whatsapp.forwarded): had Rasa died in between, the message
        is processed and its replies recorded, but the debtor's tracker lacks
        the turn, and the conversation would go on as if it had never been.
        So each debtor's latest processed message among the log's last
        `catch_up_messages` is looked for in their tracker; one that is missing
        (from a tracker that exists: in-memory trackers are all gone anyway)
        runs again, its replies discarded. What it records in the ledger it
        recorded already, once per message; the debtor's next message finds
        the conversation where the debtor left it. Opt-out keywords never
        reach Rasa and are left alone."""
        latest: list[messages.LoggedMessage] = []
        try:
            latest = [m for m in await asyncio.to_thread(_latest_processed, self.catch_up_messages)
                      if not is_opt_out_keyword(m.body)]  # fmt: skip
            self.catching_up = {m.phone: asyncio.get_running_loop().create_future() for m in latest}
        except Exception:  # noqa: BLE001 - the turns go on as they would without
            logger.exception("could not read the message log to catch the trackers up")
        finally:
            if self.catch_up_gate is not None and not self.catch_up_gate.done():
                self.catch_up_gate.set_result(None)
        put_back = 0
        try:
            lost = []
            if latest:
                await _agent_ready(app)
                store = app.ctx.agent.tracker_store
            for message in latest:  # first the look, each debtor free to go on once looked at
                if await self._lost(store, message):
                    lost.append(message)
                else:
                    self._looked_at(message.phone)
            for message in lost:  # then the turns put back
                logger.warning("%s was answered but its turn is not in the tracker: it runs again, "
                               "its replies discarded", message.provider_sid)  # fmt: skip
                try:
                    await replay(_from_log(message), await asyncio.to_thread(_language, message.phone))
                    put_back += 1
                except AlreadyInTracker:
                    logger.info("%s is in the tracker by now (another Rasa saved it)", message.provider_sid)
                except Exception:  # noqa: BLE001 - that debtor's tracker stays as it is; the others go on
                    logger.exception("could not put the turn of %s back in its tracker", message.provider_sid)
                self._looked_at(message.phone)
        except Exception:  # noqa: BLE001 - no agent or tracker store: the turns go on as they would without
            logger.exception("could not catch the trackers up")
        finally:
            for phone in list(self.catching_up):
                self._looked_at(phone)
        if latest:
            logger.info(
                "catch-up: the trackers of %s recent debtors looked at, %s turns put back", len(latest), put_back
            )

    @staticmethod
    async def _lost(store: Any, message: messages.LoggedMessage) -> bool:
        """Whether the debtor's tracker (one that exists) lacks processed `message`."""
        try:
            tracker = await store.retrieve(message.phone)
        except Exception:  # noqa: BLE001 - that debtor's tracker stays as it is; the others go on
            logger.exception("could not read the tracker of %s to catch it up", message.phone)
            return False
        return tracker is not None and position_of(tracker.events, message.provider_sid) is None

    def _looked_at(self, phone: str) -> None:
        """The catch-up is done with this debtor: their turns may run."""
        looking = self.catching_up.pop(phone, None)
        if looking is not None and not looking.done():
            looking.set_result(None)

    def _user_message(self, inbound: Inbound, output: WhatsAppOutput, **metadata: Any) -> UserMessage:
        """The debtor's message as Rasa takes it, its replies going to `output`."""
        return UserMessage(
            text=neutralize_command(inbound.body),
            output_channel=output,
            sender_id=inbound.phone,
            input_channel=self.name(),
            message_id=inbound.sid,
            metadata=inbound.metadata(**metadata),
        )

    def _turn_ended(self, phone: str, task: asyncio.Future) -> None:
        if self.turn_of.get(phone) is task:
            del self.turn_of[phone]

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> WhatsAppInput:
        return cls(ChannelSettings.from_env(credentials))

    def output(self, language: str) -> WhatsAppOutput:
        return WhatsAppOutput(self.settings, self.sender, language)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("whatsapp_webhook", __name__)

        async def process(inbound: Inbound, recovered: bool = False, take_over: Optional[float] = None) -> None:
            if inbound.sid in self.in_flight:
                return
            if self._just_answered(inbound.sid) and take_over is None:  # not twice in a row
                return
            self.in_flight.add(inbound.sid)
            try:
                async with self.turns:
                    if take_over is not None:
                        language = await asyncio.to_thread(_take_over, inbound.sid, take_over)
                    else:
                        language = await asyncio.to_thread(claim_for_turn, inbound.sid, inbound.phone, recovered)
                    if language is None:  # answered or being answered elsewhere
                        return
                    self.claims.hold(inbound.sid)
                    # A message claimed before (by an ingest that died, or
                    # before a restart) may have had its turn without its
                    # replies being recorded: they are recorded now. (One that
                    # was only ever `received` never reached a turn.)
                    stale = recovered or take_over is not None
                    given = await self.ran_already(inbound, language) if stale else None
                    if given is not None:
                        await self.record_given(inbound.sid, language, given)
                    else:
                        await run_turn(inbound, language, recovered)
            finally:
                self.in_flight.discard(inbound.sid)
                self.claims.let_go(inbound.sid)

        async def run_turn(inbound: Inbound, language: str, recovered: bool) -> None:
            await self._caught_up(inbound.phone)
            outbox: Optional[list] = [] if self.sender is None else None
            output = WhatsAppOutput(self.settings, self.sender, language, outbox)
            message = self._user_message(inbound, output, **({"recovered": True} if recovered else {}))
            try:
                await on_new_message(message)
            except Exception:  # noqa: BLE001 - keep it pending; retried on restart
                logger.exception("processing %s failed; it stays pending", inbound.sid)
                return
            self._answered(inbound.sid)
            await asyncio.to_thread(finish_turn, inbound.sid, outbox or [])

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            # recovered: the start-up recovery has read what a crash or restart
            # left pending; heap_frozen: the model is out of the garbage
            # collector's full walks (cobrador.heap), its one pause done.
            mode = "local" if self.settings.local else "twilio"
            return response.json({"status": "ok", "mode": mode, "recovered": self.log_read, "heap_frozen": frozen()})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            url = public_url(self.settings, request.path, request.query_string)
            signature = request.headers.get("X-Twilio-Signature", "")
            # On threads of its own, so the acknowledgement does not queue behind turns.
            try:
                admission = await asyncio.get_running_loop().run_in_executor(
                    self.ack_pool, admit, self.validator, url, request.body or b"", signature
                )
            except SQLAlchemyError:  # the database is down: not acknowledged, nothing stored
                logger.exception("the message could not be stored")
                return response.text("the message could not be stored; try again", status=503)
            if admission.inbound is not None:
                if admission.opt_out:
                    request.app.add_task(opt_out(self.settings, self.sender, *_opt_out_args(admission.inbound)))
                else:
                    request.app.add_task(process(admission.inbound))
            return response.text(admission.text, status=admission.status, content_type=admission.content_type)

        @hook.route("/process", methods=["POST"], stream=True)
        async def forwarded(request: Request) -> Optional[HTTPResponse]:
            """A message the ingest stored (or is storing) claimed: the turn runs
            now and its replies go back in the answer, before Rasa saves the
            tracker; the ingest records and sends them, so this process spends
            its time on turns only. The body is the message (JSON, signed in
            the header), then possibly, each on a line of its own and signed
            for that message, word that it is stored and its parse
            (cobrador.whatsapp.forwarded)."""
            lines = Lines(request.stream, request.body or b"")
            body = await lines.line() or b""
            signature = request.headers.get("X-Cobrador-Signature", "")
            if not hmac.compare_digest(signature, forward_signature(self.forward_key, body)):
                return response.text("invalid signature", status=403)
            try:
                payload = json.loads(body)
                inbound = Inbound.from_json(payload)
            except ValueError:
                inbound = None
            if inbound is None:
                return response.text("malformed message", status=400)
            if inbound.sid in self.in_flight or self._just_answered(inbound.sid):
                # Being or just answered here by the other way in (see `answered`).
                return response.text("already answered", status=409)
            language = _known_language(payload.get("language"))
            outbox: list[tuple[str, str, list, str]] = []
            message = self._user_message(inbound, WhatsAppOutput(self.settings, None, language, outbox))
            # The ingest's NLU worker parsed it ahead, with this very model:
            # Rasa takes that parse instead of parsing again (otherwise it parses).
            agent = getattr(request.app.ctx, "agent", None)
            model_id = getattr(agent, "model_id", None)
            turn_state = ForwardedTurn()
            if not payload.get("stored_follows"):
                turn_state.stored.set_result(language)
            if not payload.get("parse_follows"):
                turn_state.parse.set_result(usable(payload.get("parse"), model_id, message.text))
            reading = asyncio.ensure_future(self._follows(lines, inbound.sid, turn_state, model_id, message.text))
            self.in_flight.add(inbound.sid)
            previous = self.turn_of.get(inbound.phone)  # answered, maybe still saving: it goes first

            async def turn() -> None:
                turn_state.enter()
                try:
                    if previous is not None and not previous.done():
                        await asyncio.wait([previous])
                    await self._caught_up(inbound.phone)
                    await on_new_message(message)
                finally:
                    self.in_flight.discard(inbound.sid)
                self._answered(inbound.sid)

            # Shielded: if the ingest goes away mid-turn (it died, or gave up
            # waiting), Sanic cancels this handler, but the turn still ends
            # here, never half done, and saved whole in the tracker, where the
            # sweep finds its replies (`ran_already`).
            running = asyncio.ensure_future(turn())
            self.turns_running.add(running)  # referenced until done, even if this handler is not
            running.add_done_callback(self.turns_running.discard)
            self.turn_of[inbound.phone] = running
            running.add_done_callback(functools.partial(self._turn_ended, inbound.phone))
            failed = ""
            try:
                await asyncio.wait([turn_state.replies_ready, running], return_when=asyncio.FIRST_COMPLETED)
                if not turn_state.replies_ready.done():
                    await running  # it ended without a save (it failed, or a model without dialogue)
                replies = [{"phone": p, "body": b, "media": m, "sender": s} for p, b, m, s in outbox]
                # With the model that ran the turn: the ingest keeps its NLU worker on it.
                answer = await request.respond(response.json({"messages": replies, "model": model_id}))
                await answer.send(end_stream=True)
            except asyncio.CancelledError:
                logger.warning("the ingest left during the turn of %s; its replies wait for the sweep", inbound.sid)
                reading.cancel()
                raise
            except NotStored:
                logger.info("%s was not stored: its turn is dropped", inbound.sid)
                failed = "not stored"
            except Exception:  # noqa: BLE001 - it stays claimed; retried on restart
                logger.exception("processing %s failed; it stays pending", inbound.sid)
                failed = "the turn failed"
            finally:
                turn_state.sent.set()  # Rasa saves the tracker now, whether or not the answer went
            # The rest of the body (read by now, unless the turn failed first).
            await asyncio.wait([reading], timeout=PARSE_WAIT)
            reading.cancel()
            if failed:
                return response.text(failed, status=409 if failed == "not stored" else 500)
            return None

        @hook.route("/status", methods=["POST"])
        async def status(request: Request) -> HTTPResponse:
            url = public_url(self.settings, request.path, request.query_string)
            signature = request.headers.get("X-Twilio-Signature", "")
            code, text = await asyncio.to_thread(record_status, self.validator, url, request.body or b"", signature)
            return response.text(text, status=code)

        @hook.route("/media/<token>", methods=["GET"])
        async def media(request: Request, token: str) -> HTTPResponse:
            code, content = await asyncio.to_thread(media_document, self.settings, token)
            if code != 200:
                return response.text(str(content), status=code)
            return response.raw(content, content_type="application/pdf", headers=MEDIA_HEADERS)

        async def replay(inbound: Inbound, language: str) -> None:
            """The turn of a message answered already, run again for the tracker
            alone (`_catch_up`): its replies go nowhere."""
            output = WhatsAppOutput(self.settings, None, language, [])
            await on_new_message(self._user_message(inbound, output, recovered=True, **{REPLAYED: True}))

        @hook.listener("before_server_start")
        async def hold_turns(app: Any, loop: Any) -> None:
            self.catch_up_gate = loop.create_future()  # no turn runs before the catch-up has read the log

        @hook.listener("after_server_start")
        async def recover(app: Any, loop: Any) -> None:
            self.app = app
            app.add_task(self._recover(app, process, replay))
            app.add_task(self._sweep(process))
            app.add_task(self.claims.keep())
            # The model's objects out of the garbage collector's full walks
            # (cobrador.heap), once the start-up recovery has read the log.
            model = lambda: getattr(getattr(app.ctx, "agent", None), "model_id", None) if self.log_read else None  # noqa: E731
            app.add_task(keep_frozen(model))

        if self.settings.local:
            from cobrador.whatsapp.simulator import register

            register(hook, self)
        return hook

    async def _recover(
        self, app: Any, process: Callable[..., Awaitable[None]], replay: Callable[[Inbound, str], Awaitable[None]]
    ) -> None:
        """Puts back the turns a crash did not save (`_catch_up`), then
        processes what it left pending, oldest first, once Rasa is ready."""
        await self._catch_up(app, replay)
        pending = await _pending_at_start()
        self.log_read = True
        if not pending:
            return
        await _agent_ready(app)
        logger.info("processing %s pending inbound messages", len(pending))
        for message in pending:
            try:
                await process(_from_log(message), recovered=True)
            except Exception:  # noqa: BLE001 - left for the sweep; the others go on
                logger.exception("%s could not be answered at start; the sweep takes it", message.provider_sid)

    async def _sweep(self, process: Callable[..., Awaitable[None]]) -> None:
        """Picks up messages stored but never answered, so nothing waits for the
        next restart: `received` ones whose hand-over failed (Rasa was down
        longer than the ingest's retries), and `processing` ones held for
        longer than COBRADOR_STALE_CLAIM_SECONDS (a minute; an ingest that
        died): a live ingest touches its claims every 15 s however long it
        holds them (`HeldClaims`), and a turn still running here is in
        `in_flight`. If its turn ran (the tracker holds it), the replies it
        gave are recorded (`ran_already`); otherwise it runs."""
        stale_claim = float(os.environ.get("COBRADOR_STALE_CLAIM_SECONDS", str(STALE_CLAIM_SECONDS)))
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                received = await asyncio.to_thread(_stale, "received", 2 * self.sweep_seconds)
                stuck = await asyncio.to_thread(_stale, "processing", stale_claim)
            except Exception:  # noqa: BLE001 - the database may be down for a while
                logger.exception("sweep of stale inbound messages failed")
                continue
            for message, take_over in [(m, None) for m in received] + [(m, stale_claim) for m in stuck]:
                if message.provider_sid in self.in_flight:
                    continue
                try:
                    await process(_from_log(message), take_over=take_over)
                except Exception:  # noqa: BLE001 - left for the next sweep; the sweep goes on
                    logger.exception("the sweep could not answer %s; it tries again later", message.provider_sid)


def _known_language(value: Any) -> str:
    """The language the ingest named for a debtor ("es" or "en"; Spanish otherwise)."""
    return value if value in ("es", "en") else "es"


async def _agent_ready(app: Any) -> None:
    for _ in range(300):
        agent = getattr(app.ctx, "agent", None)
        if agent is not None and agent.is_ready():
            return
        await asyncio.sleep(1)


def _latest_processed(last: int) -> list[messages.LoggedMessage]:
    with session_scope() as session:
        return messages.latest_processed_inbound(session, last)


async def _pending_at_start() -> list[messages.LoggedMessage]:
    """What a crash or restart left pending; none if the database cannot be
    read for half a minute (the sweep takes the received ones then)."""
    for attempt in range(10):  # the database may be busy (or down) while everything starts
        try:
            return await asyncio.to_thread(_pending)
        except Exception:  # noqa: BLE001
            logger.warning("could not read pending messages (attempt %s); retrying", attempt + 1, exc_info=True)
            await asyncio.sleep(3)
    logger.error("pending messages not recovered at start; the sweep will take the received ones")
    return []


def _from_log(message: messages.LoggedMessage) -> Inbound:
    return Inbound(str(message.provider_sid), message.phone, message.body, list(message.media))


def _opt_out_args(inbound: Inbound) -> tuple[str, str, str]:
    return inbound.sid, inbound.phone, inbound.body


def _document(kind: str, object_id: int, lang: str) -> Optional[bytes]:
    import datetime as dt

    with session_scope() as session:
        today = dt.date.today()
        if kind == "plan":
            return documents.plan_pdf(session, object_id, lang, today)
        return documents.statement_pdf(session, object_id, lang, today)


def _record_opt_out(phone: str, keyword: str) -> bool:
    with session_scope() as session:
        return commands.record_opt_out(session, phone, keyword=keyword[:200])[1]


def _pending() -> list[messages.LoggedMessage]:
    with session_scope() as session:
        return messages.pending_inbound(session)
