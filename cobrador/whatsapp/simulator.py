"""A WhatsApp-like page for local mode: pick a demo debtor and chat.

The page never talks to Rasa directly. It asks this server to post a
Twilio-format webhook, signed with the local token exactly as Twilio signs,
to the real /webhooks/whatsapp/webhook endpoint, so a simulated message goes
through the same code path as a real one (signature, dedupe, opt-out,
storage, NLU, actions). Replies land in the outbox (the message log) and the
page shows them with their delivery states; showing a reply on the simulated
phone marks it delivered, as the handset would.

Registered only in local mode (no Twilio credentials).
"""

from __future__ import annotations

import asyncio
import secrets
from typing import TYPE_CHECKING, Any

import aiohttp
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from cobrador.ledger import messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Debtor, Message
from cobrador.ledger.phones import try_e164

if TYPE_CHECKING:
    from cobrador.whatsapp.channel import WhatsAppInput

SIMULATED_BUSINESS_NUMBER = "whatsapp:+14155238886"
MAX_TEXT = 5000


def signed_form(token: str, url: str, fields: dict[str, str]) -> tuple[dict[str, str], str]:
    """The form and the X-Twilio-Signature Twilio would send for it."""
    return fields, RequestValidator(token).compute_signature(url, fields)


def twilio_fields(phone: str, text: str, media: list[dict[str, str]], profile_name: str = "") -> dict[str, str]:
    """The fields of a Twilio WhatsApp webhook for one inbound message."""
    fields = {
        "SmsMessageSid": "",
        "MessageSid": "SM" + secrets.token_hex(16),
        "AccountSid": "AC" + "0" * 32,
        "From": f"whatsapp:{phone}",
        "To": SIMULATED_BUSINESS_NUMBER,
        "Body": text,
        "NumMedia": str(len(media)),
        "ProfileName": profile_name,
        "WaId": phone.lstrip("+"),
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }
    fields["SmsMessageSid"] = fields["MessageSid"]
    for n, item in enumerate(media):
        fields[f"MediaUrl{n}"] = item["url"]
        fields[f"MediaContentType{n}"] = item.get("content_type", "application/octet-stream")
    return fields


def _debtors() -> list[dict[str, str]]:
    with session_scope() as session:
        rows = session.execute(select(Debtor.phone, Debtor.name, Debtor.language).order_by(Debtor.id)).all()
        return [{"phone": p, "name": n, "language": lang} for p, n, lang in rows]


def _messages(phone: str, after: int) -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = messages.conversation(session, phone, after_id=after)
        # The simulated handset received what it shows: local delivery.
        queued = [r.id for r in rows if r.direction == "outbound" and r.status == "queued"]
        if queued:
            for row in session.execute(select(Message).where(Message.id.in_(queued))).scalars():
                row.status = "delivered"
        return [
            {
                "id": r.id,
                "direction": r.direction,
                "body": r.body,
                "media": r.media,
                "status": "delivered" if r.id in queued else r.status,
                "sender": r.sender,
                "at": r.created_at.isoformat() if r.created_at else None,
            }
            for r in rows
        ]


def register(hook: Blueprint, channel: WhatsAppInput) -> None:
    """Adds the simulator's routes to the channel's blueprint (local mode only)."""
    from cobrador.whatsapp.channel import WEBHOOK_PATH

    @hook.route("/simulator", methods=["GET"])
    async def page(request: Request) -> HTTPResponse:
        return response.html(PAGE)

    @hook.route("/simulator/debtors", methods=["GET"])
    async def debtors(request: Request) -> HTTPResponse:
        return response.json(await asyncio.to_thread(_debtors))

    @hook.route("/simulator/messages", methods=["GET"])
    async def conversation(request: Request) -> HTTPResponse:
        phone = try_e164(request.args.get("phone", ""))
        if phone is None:
            return response.json({"error": "a valid phone is required"}, status=400)
        after = int(request.args.get("after", "0") or 0)
        return response.json(await asyncio.to_thread(_messages, phone, after))

    @hook.route("/simulator/send", methods=["POST"])
    async def send(request: Request) -> HTTPResponse:
        payload = request.json or {}
        phone = try_e164(str(payload.get("phone", "")))
        text = str(payload.get("text", ""))[:MAX_TEXT]
        media = [m for m in payload.get("media") or [] if isinstance(m, dict) and m.get("url")]
        if phone is None or not (text or media):
            return response.json({"error": "a valid phone and a text or a media item are required"}, status=400)
        url = channel.settings.public_url + WEBHOOK_PATH
        fields, signature = signed_form(channel.settings.auth_token, url, twilio_fields(phone, text, media))
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=fields, headers={"X-Twilio-Signature": signature}) as answer:
                return response.json({"status": answer.status, "message_sid": fields["MessageSid"]})


PAGE = """<!doctype html>
<html lang="es"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Cobrador · WhatsApp simulator</title>
<style>
body{margin:0;font-family:system-ui,sans-serif;background:#e5ddd5;display:flex;justify-content:center}
.app{width:min(480px,100vw);height:100vh;display:flex;flex-direction:column;background:#efeae2}
header{background:#075e54;color:#fff;padding:10px;display:flex;gap:8px;align-items:center}
header select{flex:1;padding:6px}
#chat{flex:1;overflow-y:auto;padding:12px;display:flex;flex-direction:column;gap:6px}
.msg{max-width:80%;padding:6px 9px;border-radius:8px;white-space:pre-wrap;word-wrap:break-word}
.in{align-self:flex-end;background:#d9fdd3}.out{align-self:flex-start;background:#fff}
.meta{font-size:11px;color:#667781;text-align:right;margin-top:2px}
form{display:flex;gap:6px;padding:8px;background:#f0f2f5}
form input{flex:1;padding:10px;border-radius:20px;border:0}
form button{border:0;border-radius:20px;padding:0 14px;background:#00a884;color:#fff}
</style></head>
<body><div class="app">
<header><strong>Cobrador</strong><select id="debtor" aria-label="demo debtor"></select></header>
<div id="chat" aria-live="polite"></div>
<form id="composer"><input id="text" autocomplete="off" placeholder="Escribe un mensaje" aria-label="message">
<button id="send" type="submit">Enviar</button></form>
</div>
<script>
const base = location.pathname.replace(/\\/simulator$/, "");
const chat = document.getElementById("chat"), picker = document.getElementById("debtor");
let last = 0, timer = null;
function bubble(m) {
  const div = document.createElement("div");
  div.className = "msg " + (m.direction === "inbound" ? "in" : "out");
  div.dataset.id = m.id; div.dataset.status = m.status;
  const body = document.createElement("div");
  body.textContent = m.body;
  for (const item of (m.media || [])) {
    const link = document.createElement("a");
    link.textContent = "📎 " + (item.content_type || "documento");
    if (/^https?:\\/\\//.test(item.url || "")) { link.href = item.url; link.target = "_blank"; link.rel = "noopener"; }
    body.append(link);
  }
  const meta = document.createElement("div");
  meta.className = "meta"; meta.textContent = (m.sender || "") + " · " + m.status;
  div.append(body, meta); chat.append(div); chat.scrollTop = chat.scrollHeight;
}
async function poll() {
  const phone = picker.value; if (!phone) return;
  const r = await fetch(base + "/simulator/messages?phone=" + encodeURIComponent(phone) + "&after=" + last);
  if (r.ok) for (const m of await r.json()) { bubble(m); last = Math.max(last, m.id); }
}
async function load() {
  const list = await (await fetch(base + "/simulator/debtors")).json();
  for (const d of list) { const o = document.createElement("option"); o.value = d.phone;
    o.textContent = d.name + " (" + d.phone + ", " + d.language + ")"; picker.append(o); }
  picker.onchange = () => { chat.replaceChildren(); last = 0; poll(); };
  picker.onchange(); timer = setInterval(poll, 700);
}
document.getElementById("composer").onsubmit = async (e) => {
  e.preventDefault(); const input = document.getElementById("text"); const text = input.value;
  if (!text.trim()) return; input.value = "";
  await fetch(base + "/simulator/send", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({phone: picker.value, text})});
  poll();
};
load();
</script></body></html>
"""
