"""The agent console web app (aiohttp + Jinja2, autoescaped; no inline scripts).

Pages need a session cookie; every POST needs the session's CSRF token (the
login form a cookie-bound one). Debtor text is only ever rendered escaped by
Jinja2 or set with `textContent` by console.js. Responses carry a strict
Content-Security-Policy. Replies go through the WhatsApp channel's own output
(`WhatsAppOutput`): the local outbox, or Twilio with the re-engagement
template outside the 24-hour window.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

import aiohttp
import jinja2
import jwt
from aiohttp import web
from sqlalchemy import func, select

from cobrador.console import auth, service
from cobrador.console.service import Invalid, Refused
from cobrador.ledger import lookups, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.inspect import debtor_snapshot
from cobrador.ledger.models import Account, Agent, Debtor, Escalation, EscalationNote, Message, Promise, utcnow
from cobrador.ledger.models_console import AuditEntry
from cobrador.whatsapp.channel import WhatsAppOutput
from cobrador.whatsapp.settings import ChannelSettings
from cobrador.whatsapp.twilio_api import TwilioSender

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "cobrador_session"
LOGIN_COOKIE = "cobrador_login"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
FAILED_LOGIN_DELAY = 1.0  # seconds every failed login costs the caller
REPLY_WINDOW = dt.timedelta(hours=24)  # WhatsApp: free-form text only this long after the debtor's last message


def _age(delta: dt.timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} days"


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE / "templates")), autoescape=True, undefined=jinja2.StrictUndefined
)
TEMPLATES.filters["age"] = _age


class Console:
    """The console's routes and what they share (settings, the WhatsApp sender)."""

    def __init__(self, database_url: Optional[str] = None, secure_cookies: Optional[bool] = None) -> None:
        self.database_url = database_url
        self.secure = secure_cookies if secure_cookies is not None else os.environ.get("COBRADOR_CONSOLE_SECURE") == "1"
        self.channel = ChannelSettings.from_env()
        self.sender = TwilioSender(self.channel.twilio) if self.channel.twilio else None
        self.rasa_url = os.environ.get("COBRADOR_RASA_URL", "").rstrip("/")
        self.jwt_secret = os.environ.get("RASA_JWT_SECRET", "")
        self.failed_login_delay = FAILED_LOGIN_DELAY

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers, self._errors], client_max_size=64 * 1024)
        app.router.add_get("/login", self.login_page)
        app.router.add_post("/login", self.login)
        app.router.add_post("/logout", self.protected(self.logout))
        app.router.add_get("/", self.protected(self.queue))
        app.router.add_get("/audit", self.protected(self.audit))
        app.router.add_get("/conversations/{id:\\d+}", self.protected(self.conversation))
        app.router.add_get("/api/conversations/{id:\\d+}/messages", self.protected(self.new_messages, api=True))
        for action in ("claim", "assign", "reply", "note", "promise", "plan", "resolve", "close"):
            app.router.add_post(f"/conversations/{{id:\\d+}}/{action}", self.protected(self.act))
        app.router.add_static("/static/", HERE / "static", show_index=False)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        if self.sender is not None:
            await self.sender.close()

    # --- plumbing -------------------------------------------------------

    @web.middleware
    async def _headers(self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            response = exc
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if isinstance(response, web.HTTPException):
            raise response
        return response

    @web.middleware
    async def _errors(self, request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        try:
            return await handler(request)
        except Refused as exc:
            return web.Response(status=403, text=f"Forbidden: {exc}")

    async def db(self, function: Callable[..., Any], *args: Any) -> Any:
        """Runs a unit of work on a worker thread: `function(session, *args)`."""

        def work() -> Any:
            with session_scope(self.database_url) as session:
                return function(session, *args)

        return await asyncio.to_thread(work)

    def protected(self, handler: Callable[..., Awaitable[web.StreamResponse]], api: bool = False):
        """Requires a live session, and the CSRF token on every POST."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            agent = await self.db(auth.signed_in, request.cookies.get(SESSION_COOKIE))
            if agent is None:
                if api:
                    return web.json_response({"error": "not logged in"}, status=401)
                raise web.HTTPFound("/login")
            if request.method == "POST":
                form = await request.post()
                given = form.get("csrf") or request.headers.get("X-CSRF-Token")
                if not auth.csrf_ok(agent.csrf_token, str(given) if given else None):
                    return web.Response(status=403, text="Forbidden: missing or wrong CSRF token; reload the page")
                request["form"] = form
            request["agent"] = agent
            return await handler(request)

        return guarded

    def render(self, name: str, status: int = 200, **context: Any) -> web.Response:
        context.setdefault("flash", None)
        context.setdefault("flash_kind", None)
        context.setdefault("agent", None)
        body = TEMPLATES.get_template(name).render(**context)
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8")

    # --- login ----------------------------------------------------------

    async def login_page(self, request: web.Request, flash: Optional[str] = None, status: int = 200, email: str = ""):
        token = request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)
        response = self.render("login.html", status, login_csrf=token, flash=flash, flash_kind="error", email=email)
        response.set_cookie(LOGIN_COOKIE, token, httponly=True, samesite="Strict", secure=self.secure, path="/login")
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        expected = request.cookies.get(LOGIN_COOKIE)
        if not expected or not auth.csrf_ok(expected, str(form.get("csrf") or "")):
            return web.Response(status=403, text="Forbidden: missing or wrong CSRF token; reload the page")
        email, password = str(form.get("email") or "")[:200], str(form.get("password") or "")[:1000]
        address = request.remote or "unknown"
        if await self.db(auth.throttled, email, address):
            return await self.login_page(request, "Too many failed attempts. Try again in 15 minutes.", 429, email)
        result = await self.db(auth.log_in, email, password, address)
        if result is None:
            await asyncio.sleep(self.failed_login_delay)
            return await self.login_page(request, "Wrong email or password.", 401, email)
        token, _ = result
        response = web.HTTPFound("/")
        response.set_cookie(
            SESSION_COOKIE, token, httponly=True, samesite="Strict", secure=self.secure, path="/",
            max_age=auth.SESSION_HOURS * 3600,
        )  # fmt: skip
        response.del_cookie(LOGIN_COOKIE, path="/login")
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        await self.db(auth.log_out, request.cookies.get(SESSION_COOKIE, ""))
        response = web.HTTPFound("/login")
        response.del_cookie(SESSION_COOKIE, path="/")
        return response

    # --- pages ----------------------------------------------------------

    async def queue(self, request: web.Request) -> web.Response:
        agent = request["agent"]
        items = await self.db(service.queue, agent)
        return self.render("queue.html", agent=agent, items=items, flash=request.query.get("flash"))

    async def audit(self, request: web.Request) -> web.Response:
        agent = request["agent"]
        if not agent.supervisor:
            raise Refused("supervisors only")

        def entries(session):  # noqa: ANN001, ANN202
            return session.execute(
                select(AuditEntry, Agent.name, Escalation.case_number)
                .outerjoin(Agent, Agent.id == AuditEntry.agent_id)
                .outerjoin(Escalation, Escalation.id == AuditEntry.escalation_id)
                .order_by(AuditEntry.id.desc())
                .limit(500)
            ).all()

        return self.render("audit.html", agent=agent, entries=await self.db(entries))

    async def conversation(self, request: web.Request, flash: Optional[str] = None, status: int = 200):
        agent = request["agent"]
        escalation_id = int(request.match_info["id"])
        view = await self.db(_conversation_view, agent, escalation_id)
        bot_state = await self.bot_state(view["escalation"].phone)
        flash = flash or request.query.get("flash")
        kind = "error" if status >= 400 else "ok"
        return self.render("conversation.html", status, agent=agent, bot_state=bot_state, flash=flash,
                           flash_kind=kind, **view)  # fmt: skip

    async def new_messages(self, request: web.Request) -> web.Response:
        agent = request["agent"]
        escalation_id = int(request.match_info["id"])
        try:
            after = int(request.query.get("after", "0"))
        except ValueError:
            after = 0

        def fetch(session):  # noqa: ANN001, ANN202
            escalation = service.escalation_for(session, agent, escalation_id)
            names = _agent_names(session)
            rows = messages.conversation(session, escalation.phone, after_id=after)
            return escalation.status, [_message_item(m, names) for m in rows]

        state, items = await self.db(fetch)
        for item in items:
            item["at"] = item["at"].strftime("%d %b %H:%M")
        return web.json_response({"status": state, "messages": items})

    # --- actions --------------------------------------------------------

    async def act(self, request: web.Request) -> web.StreamResponse:
        agent, form = request["agent"], request["form"]
        escalation_id = int(request.match_info["id"])
        action = request.path.rsplit("/", 1)[-1]
        here = f"/conversations/{escalation_id}"
        try:
            if action == "claim":
                taken = await self.db(service.claim, agent, escalation_id)
                if not taken:
                    raise web.HTTPFound("/?flash=Someone+else+took+that+conversation")
                raise web.HTTPFound(here)
            if action == "reply":
                await self.reply(agent, escalation_id, str(form.get("text") or ""))
                raise web.HTTPFound(here + "?flash=Sent")
            if action == "assign":
                await self.db(_on_escalation(service.assign), agent, escalation_id, str(form.get("agent") or ""))
                raise web.HTTPFound(here + "?flash=Assigned")
            if action == "note":
                await self.db(_on_escalation(service.add_note), agent, escalation_id, str(form.get("body") or ""))
                raise web.HTTPFound(here + "?flash=Note+added")
            if action == "promise":
                args = (str(form.get("account")), str(form.get("amount") or ""), str(form.get("date") or ""))
                await self.db(_on_escalation(service.record_promise), agent, escalation_id, *args)
                raise web.HTTPFound(here + "?flash=Promise+recorded")
            if action == "plan":
                args = (str(form.get("account")), str(form.get("count") or ""), str(form.get("frequency") or ""),
                        str(form.get("first") or ""))  # fmt: skip
                await self.db(_on_escalation(service.record_plan), agent, escalation_id, *args)
                raise web.HTTPFound(here + "?flash=Plan+recorded")
            status = "resolved" if action == "resolve" else "closed"
            await self.db(_on_escalation(service.finish), agent, escalation_id, status)
            message = "Returned+to+the+bot" if status == "resolved" else "Case+closed"
            raise web.HTTPFound(f"/?flash={message}")
        except Invalid as exc:
            return await self.conversation(request, flash=str(exc), status=400)

    async def reply(self, agent: auth.SignedIn, escalation_id: int, text: str) -> None:
        text = text.strip()
        if not text:
            raise Invalid("The reply is empty.")
        if len(text) > 1600:
            raise Invalid("Keep replies under 1,600 characters.")

        def prepare(session):  # noqa: ANN001, ANN202
            escalation = service.escalation_for(session, agent, escalation_id, act=True)
            if lookups.is_opted_out(session, escalation.phone):
                raise Invalid("The debtor opted out of WhatsApp messages: do not write.")
            debtor = session.execute(select(Debtor).where(Debtor.phone == escalation.phone)).scalar_one_or_none()
            language = debtor.language if debtor else "es"
            last = session.execute(
                select(func.max(Message.created_at)).where(
                    Message.phone == escalation.phone, Message.direction == "inbound"
                )
            ).scalar_one()
            inside = last is not None and _aware(last) > utcnow() - REPLY_WINDOW
            template = None if inside else self.channel.reengage_templates.get(language)
            if not inside and template is None:
                raise Invalid(
                    "The debtor last wrote more than 24 hours ago: WhatsApp only allows an approved template, and "
                    "no re-engagement template is configured (TWILIO_REENGAGE_TEMPLATE_ES / _EN)."
                )
            service.audit(session, agent, "reply" if inside else "reengage_template", escalation, length=len(text))
            return escalation.phone, language, template

        phone, language, template = await self.db(prepare)
        output = WhatsAppOutput(self.channel, self.sender, language)
        if template is not None:
            await output.deliver_template(phone, template, sender=f"agent:{agent.agent_id}")
            raise Invalid(
                "Outside WhatsApp's 24-hour window: the approved re-engagement template was sent instead of your "
                "text. Reply again once the debtor answers."
            )
        await output.deliver(phone, text, sender=f"agent:{agent.agent_id}")

    async def bot_state(self, phone: str) -> str:
        """The bot's view of the conversation, from Rasa's HTTP API (JWT-authenticated)."""
        if not (self.rasa_url and self.jwt_secret):
            return "bot state unavailable (Rasa API not configured)"
        token = jwt.encode({"user": {"username": "console", "role": "admin"}}, self.jwt_secret, algorithm="HS256")
        url = f"{self.rasa_url}/conversations/{phone}/tracker"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
                async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as answer:
                    if answer.status != 200:
                        return f"bot state unavailable (Rasa answered {answer.status})"
                    tracker = await answer.json()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            return "bot state unavailable (Rasa unreachable)"
        slots = tracker.get("slots") or {}
        dialogue = slots.get("dialogue") or {}
        intent = ((tracker.get("latest_message") or {}).get("intent") or {}).get("name") or "-"
        verified = "verified" if isinstance(dialogue, dict) and dialogue.get("verified") else "not verified"
        return f"language {slots.get('language') or '-'} · {verified} · last intent {intent}"


def _on_escalation(function: Callable[..., Any]) -> Callable[..., Any]:
    """Adapts a service action to (session, agent, escalation_id, *args), checking the right to act."""

    def run(session, agent: auth.SignedIn, escalation_id: int, *args: Any) -> Any:  # noqa: ANN001
        escalation = service.escalation_for(session, agent, escalation_id, act=True)
        return function(session, agent, escalation, *args)

    return run


def _agent_names(session) -> dict[str, str]:  # noqa: ANN001
    return {f"agent:{i}": name for i, name in session.execute(select(Agent.id, Agent.name)).all()}


def _message_item(message: messages.LoggedMessage, names: dict[str, str]) -> dict[str, Any]:
    sender = message.sender
    if message.direction == "inbound":
        who, css = "Debtor", "debtor"
    elif sender.startswith("agent:"):
        who, css = f"Agent {names.get(sender, sender)}", "agent"
    elif sender == "bot":
        who, css = "Bot" + (" (template)" if message.body == "" else ""), "bot"
    else:
        who, css = sender.capitalize(), "system"
    text = message.body or ""
    if message.media:
        text += ("\n" if text else "") + " ".join(f"[{m.get('content_type') or 'attachment'}]" for m in message.media)
    return {"id": message.id, "who": who, "css": css, "at": message.created_at, "text": text, "status": message.status}


def _conversation_view(session, agent: auth.SignedIn, escalation_id: int) -> dict[str, Any]:  # noqa: ANN001
    escalation = service.escalation_for(session, agent, escalation_id)
    names = _agent_names(session)
    rows = messages.conversation(session, escalation.phone, limit=1000)
    timeline = [_message_item(m, names) for m in rows]
    for other in session.execute(select(Escalation).where(Escalation.phone == escalation.phone)).scalars():
        timeline.append(_system(other.created_at, f"Handed to a person: {other.reason} ({other.case_number})"))
        if other.resolved_at:
            timeline.append(_system(other.resolved_at, f"{other.case_number} {other.status}: back to the bot"))
    debtor = session.execute(select(Debtor).where(Debtor.phone == escalation.phone)).scalar_one_or_none()
    accounts = []
    if debtor is not None:
        accounts = session.execute(
            select(Account.id, Account.reference, Account.balance, Account.currency)
            .where(Account.debtor_id == debtor.id, Account.status.in_(("active", "disputed")))
            .order_by(Account.id)
        ).all()
        for promise, reference in session.execute(
            select(Promise, Account.reference).join(Account).where(Account.debtor_id == debtor.id)
        ).all():
            who = "the bot" if promise.created_by == "bot" else names.get(promise.created_by, promise.created_by)
            timeline.append(_system(promise.created_at, f"Promise recorded by {who}: {promise.amount} on "
                                                        f"{promise.due_date} ({reference})"))  # fmt: skip
    timeline.sort(key=lambda item: _aware(item["at"]))
    notes = session.execute(
        select(EscalationNote, Agent.name)
        .outerjoin(Agent, Agent.id == EscalationNote.author_id)
        .where(EscalationNote.escalation_id == escalation.id)
        .order_by(EscalationNote.id)
    ).all()
    today = utcnow().date()
    can_act = agent.supervisor or (escalation.status == "assigned" and escalation.assignee_id == agent.agent_id)
    if escalation.status not in service.ACTIVE:
        can_act = False
    agents = []
    if agent.supervisor:
        agents = session.execute(select(Agent.id, Agent.name).where(Agent.active.is_(True)).order_by(Agent.name)).all()
    return {
        "agents": agents,
        "escalation": escalation,
        "timeline": timeline,
        "last_id": max((m.id for m in rows), default=0),
        "snapshot": debtor_snapshot(session, escalation.phone, today),
        "opted_out": lookups.is_opted_out(session, escalation.phone),
        "accounts": accounts,
        "notes": notes,
        "can_act": can_act,
    }


def _system(at: dt.datetime, text: str) -> dict[str, Any]:
    return {"id": None, "who": "System", "css": "system", "at": at, "text": text, "status": ""}


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.timezone.utc)


def serve(host: str, port: int) -> None:
    """Runs the console until interrupted (`python -m cobrador web`)."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(message)s")
    web.run_app(Console().app(), host=host, port=port, access_log=None, print=None)
