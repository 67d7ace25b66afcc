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
import logging
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import parse_qs

from rasa.core.channels.channel import InputChannel, OutputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from twilio.request_validator import RequestValidator

from cobrador.language.commands import neutralize_command
from cobrador.language.text import fold
from cobrador.ledger import commands, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.phones import try_e164
from cobrador.whatsapp import documents
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.twilio_api import OUTSIDE_WINDOW, SendError, TwilioSender, split_body

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
    """Parsed form fields with every value kept (the validator reads `getlist`)."""

    def getlist(self, key: str) -> list[str]:
        return self[key]


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
    ) -> None:
        self.settings = settings
        self.sender = sender
        self.language = language
        # Local mode collects a turn's replies here; the channel writes them to
        # the outbox together with the "processed" mark, in one transaction.
        self.outbox = outbox

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
        message_id = await asyncio.to_thread(_store_outbound, phone, body, media, sender)
        if self.sender is None:
            return message_id  # local mode: the outbox (the simulator shows it)
        try:
            result = await self.sender.send(phone, body or None, media_urls=list(media_urls))
            await asyncio.to_thread(_mark, message_id, result.get("status") or "queued", result.get("sid"), None, None)
        except SendError as error:
            template = self.settings.reengage_templates.get(self.language)
            if error.code == OUTSIDE_WINDOW and template:
                await self._send_template(phone, message_id, template)
            else:
                logger.error("send to %s failed: %s (code %s)", phone, error, error.code)
                await asyncio.to_thread(_mark, message_id, "failed", None, str(error.code or error.status or ""), None)
        except Exception:  # noqa: BLE001 - the turn must survive any send failure
            logger.exception("send to %s failed", phone)
            await asyncio.to_thread(_mark, message_id, "failed", None, "exception", None)
        return message_id

    async def _send_template(self, phone: str, message_id: int, template: str) -> None:
        """Outside the 24-hour window: the approved re-engagement template instead."""
        assert self.sender is not None
        try:
            result = await self.sender.send(phone, content_sid=template, content_variables={"1": "Cobrador"})
            await asyncio.to_thread(_mark, message_id, "failed", None, str(OUTSIDE_WINDOW), None)
            template_id = await asyncio.to_thread(_store_outbound, phone, "", [], "bot", template)
            await asyncio.to_thread(
                _mark, template_id, result.get("status") or "queued", result.get("sid"), None, template
            )
        except SendError as error:
            await asyncio.to_thread(_mark, message_id, "failed", None, str(error.code or error.status or ""), None)


def _store_outbound(phone: str, body: str, media: list, sender: str, template_sid: Optional[str] = None) -> int:
    with session_scope() as session:
        return messages.record_outbound(session, phone, body, sender=sender, media=media, template_sid=template_sid)


def _mark(message_id: int, status: str, sid: Optional[str], error: Optional[str], template: Optional[str]) -> None:
    with session_scope() as session:
        messages.mark_outbound(session, message_id, status, provider_sid=sid, error_code=error, template_sid=template)


def _store_inbound(sid: str, phone: str, body: str, media: list) -> bool:
    with session_scope() as session:
        return messages.record_inbound(session, sid, phone, body, media)


def _set_status(sid: str, status: str) -> None:
    with session_scope() as session:
        messages.set_inbound_status(session, sid, status)


def _finish_turn(sid: str, outbox: list[tuple[str, str, list, str]]) -> None:
    """The turn's replies (local mode) and the "processed" mark, atomically:
    a crash before this leaves the message pending with no half-written
    answer, and it is answered once after the restart."""
    with session_scope() as session:
        for phone, body, media, sender in outbox:
            messages.record_outbound(session, phone, body, sender=sender, media=media)
        messages.set_inbound_status(session, sid, "processed")


def _begin_processing(sid: str, phone: str) -> str:
    """Marks the message as being processed; returns the debtor's language."""
    from sqlalchemy import select

    from cobrador.ledger.models import Debtor

    with session_scope() as session:
        messages.set_inbound_status(session, sid, "processing")
        return session.execute(select(Debtor.language).where(Debtor.phone == phone)).scalar_one_or_none() or "es"


def _language(phone: str) -> str:
    from cobrador.ledger.lookups import find_debtor

    with session_scope() as session:
        debtor = find_debtor(session, phone)
        return debtor.language if debtor else "es"


class WhatsAppInput(InputChannel):
    """Twilio's WhatsApp webhooks, signed, stored, deduplicated, acknowledged at once."""

    def __init__(self, settings: ChannelSettings) -> None:
        self.settings = settings
        self.validator = RequestValidator(settings.auth_token)
        self.sender = TwilioSender(settings.twilio) if settings.twilio else None
        self.ack_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="whatsapp-ack")
        # Turns in flight at once: more only queue inside Rasa and slow down
        # the acknowledgements that share its event loop.
        self.turns = asyncio.Semaphore(int(os.environ.get("COBRADOR_MAX_TURNS_IN_FLIGHT", "6")))

    @classmethod
    def name(cls) -> str:
        return "whatsapp"

    @classmethod
    def from_credentials(cls, credentials: Optional[dict[str, Any]]) -> WhatsAppInput:
        return cls(ChannelSettings.from_env(credentials))

    def output(self, language: str) -> WhatsAppOutput:
        return WhatsAppOutput(self.settings, self.sender, language)

    def signed(self, request: Request, form: _Form) -> bool:
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            return False
        url = self.settings.public_url + request.path + (f"?{request.query_string}" if request.query_string else "")
        return self.validator.validate(url, form, signature)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("whatsapp_webhook", __name__)

        async def process(sid: str, phone: str, body: str, metadata: dict[str, Any]) -> None:
            async with self.turns:
                await run_turn(sid, phone, body, metadata)

        async def run_turn(sid: str, phone: str, body: str, metadata: dict[str, Any]) -> None:
            language = await asyncio.to_thread(_begin_processing, sid, phone)
            outbox: Optional[list] = [] if self.sender is None else None
            message = UserMessage(
                text=neutralize_command(body),
                output_channel=WhatsAppOutput(self.settings, self.sender, language, outbox),
                sender_id=phone,
                input_channel=self.name(),
                message_id=sid,
                metadata=metadata,
            )
            try:
                await on_new_message(message)
            except Exception:  # noqa: BLE001 - keep it pending; retried on restart
                logger.exception("processing %s failed; it stays pending", sid)
                return
            await asyncio.to_thread(_finish_turn, sid, outbox or [])

        @hook.route("/", methods=["GET"])
        async def health(request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "mode": "local" if self.settings.local else "twilio"})

        @hook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            form = parse_form(request.body or b"")
            if not self.signed(request, form):
                return response.text("invalid signature", status=403)
            sid = (form.get("MessageSid") or form.get("SmsMessageSid") or [""])[0]
            phone = try_e164((form.get("From") or [""])[0].removeprefix("whatsapp:"))
            if not sid or phone is None:
                return response.text("MessageSid and a valid From are required", status=400)
            body = (form.get("Body") or [""])[0]
            media = []
            for n in range(min(int((form.get("NumMedia") or ["0"])[0] or 0), 10)):
                url = (form.get(f"MediaUrl{n}") or [""])[0]
                if url:
                    media.append({"url": url, "content_type": (form.get(f"MediaContentType{n}") or [""])[0]})
            # Stored before Twilio gets its 200, on threads of its own so the
            # acknowledgement never queues behind turns in progress.
            stored = await asyncio.get_running_loop().run_in_executor(
                self.ack_pool, _store_inbound, sid, phone, body, media
            )
            if not stored:
                return response.text(EMPTY_TWIML, content_type="text/xml")  # replay: acknowledged, dropped
            if is_opt_out_keyword(body):
                request.app.add_task(self._opt_out(sid, phone, body))
                return response.text(EMPTY_TWIML, content_type="text/xml")
            metadata = {
                "message_sid": sid,
                "profile_name": (form.get("ProfileName") or [""])[0],
                "wa_id": (form.get("WaId") or [""])[0],
                "media": media,
            }
            request.app.add_task(process(sid, phone, body, metadata))
            return response.text(EMPTY_TWIML, content_type="text/xml")

        @hook.route("/status", methods=["POST"])
        async def status(request: Request) -> HTTPResponse:
            form = parse_form(request.body or b"")
            if not self.signed(request, form):
                return response.text("invalid signature", status=403)
            sid = (form.get("MessageSid") or [""])[0]
            state = (form.get("MessageStatus") or [""])[0]
            code = (form.get("ErrorCode") or [""])[0] or None
            if not sid or not state:
                return response.text("MessageSid and MessageStatus are required", status=400)
            await asyncio.to_thread(_status_callback, sid, state, code)
            return response.text("", status=204)

        @hook.route("/media/<token>", methods=["GET"])
        async def media(request: Request, token: str) -> HTTPResponse:
            found = documents.verify(documents.media_key(self.settings.auth_token), token)
            if found is None:
                return response.text("this link is invalid or has expired", status=403)
            pdf = await asyncio.to_thread(_document, *found)
            if pdf is None:
                return response.text("not found", status=404)
            return response.raw(
                pdf,
                content_type="application/pdf",
                headers={"Cache-Control": "private, no-store", "Content-Disposition": "inline; filename=cobrador.pdf"},
            )

        @hook.listener("after_server_start")
        async def recover(app: Any, loop: Any) -> None:
            app.add_task(self._recover(app, process))

        if self.settings.local:
            from cobrador.whatsapp.simulator import register

            register(hook, self)
        return hook

    async def _opt_out(self, sid: str, phone: str, keyword: str) -> None:
        created = await asyncio.to_thread(_record_opt_out, phone, keyword)
        await asyncio.to_thread(_set_status, sid, "processed")
        if created:  # confirmed once, then silence
            language = await asyncio.to_thread(_language, phone)
            await self.output(language).deliver(phone, OPT_OUT_CONFIRMATION[language])

    async def _recover(self, app: Any, process: Callable[..., Awaitable[None]]) -> None:
        """Processes what a crash or restart left pending, oldest first, once Rasa is ready."""
        pending = await asyncio.to_thread(_pending)
        if not pending:
            return
        for _ in range(300):
            agent = getattr(app.ctx, "agent", None)
            if agent is not None and agent.is_ready():
                break
            await asyncio.sleep(1)
        logger.info("processing %s pending inbound messages", len(pending))
        for message in pending:
            metadata = {"message_sid": message.provider_sid, "media": message.media, "recovered": True}
            await process(message.provider_sid, message.phone, message.body, metadata)


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


def _status_callback(sid: str, state: str, code: Optional[str]) -> None:
    with session_scope() as session:
        messages.apply_status_callback(session, sid, state, code)
