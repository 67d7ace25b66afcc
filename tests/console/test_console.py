"""The agent console over HTTP, against a real server on a free port and a
real ledger (SQLite and PostgreSQL) holding the demo portfolio."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
import socket
import threading
import time
from typing import Iterator

import pytest
import requests
from aiohttp import web
from sqlalchemy import select

from cobrador.console.app import Console
from cobrador.ledger import commands, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.demo import DEMO_AGENTS, load_demo
from cobrador.ledger.models import Escalation, Message, PaymentPlan, Promise
from cobrador.ledger.models_console import AuditEntry

AGENT, SUPERVISOR = DEMO_AGENTS[0], DEMO_AGENTS[1]
DISPUTE_PHONE = "+529981230004"  # the demo's first dispute (AM-100237)


class Server:
    def __init__(self, url: str, database_url: str, console: Console) -> None:
        self.url = url
        self.database_url = database_url
        self.console = console

    def login(self, who=AGENT, password: str | None = None) -> requests.Session:  # noqa: ANN001
        http = requests.Session()
        page = http.get(f"{self.url}/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        answer = http.post(f"{self.url}/login", data={"csrf": token, "email": who[0], "password": password or who[2]},
                           allow_redirects=False)  # fmt: skip
        http.last_login = answer  # type: ignore[attr-defined]
        return http

    def csrf(self, http: requests.Session, path: str = "/") -> str:
        return re.search(r'name="csrf" value="([^"]+)"', http.get(f"{self.url}{path}").text).group(1)

    def escalation(self, phone: str = DISPUTE_PHONE) -> int:
        with session_scope(self.database_url) as session:
            return session.execute(select(Escalation.id).where(Escalation.phone == phone)).scalars().first()

    def post(self, http: requests.Session, path: str, **data: str) -> requests.Response:
        data.setdefault("csrf", self.csrf(http))
        return http.post(f"{self.url}{path}", data=data, allow_redirects=False)


@pytest.fixture
def server(ledger_url: str) -> Iterator[Server]:
    with session_scope(ledger_url) as session:
        load_demo(session, dt.date.today())
    console = Console(database_url=ledger_url)
    console.failed_login_delay = 0.05
    loop = asyncio.new_event_loop()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = web.AppRunner(console.app())
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield Server(f"http://127.0.0.1:{port}", ledger_url, console)
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_nothing_is_reachable_without_logging_in(server: Server) -> None:
    case = server.escalation()
    for path in ("/", "/audit", f"/conversations/{case}"):
        answer = requests.get(f"{server.url}{path}", allow_redirects=False)
        assert (answer.status_code, answer.headers["Location"]) == (302, "/login")
    assert requests.get(f"{server.url}/api/conversations/{case}/messages").status_code == 401
    answer = requests.post(f"{server.url}/conversations/{case}/claim", data={"csrf": "x"}, allow_redirects=False)
    assert answer.status_code == 302
    with session_scope(server.database_url) as session:
        assert session.get(Escalation, case).status == "open"


def test_login_sets_a_strict_http_only_session_cookie_and_security_headers(server: Server) -> None:
    http = server.login()
    answer = http.last_login
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    cookie = [c for c in answer.headers.get("Set-Cookie", "").split(", ") if c.startswith("cobrador_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = http.get(f"{server.url}/")
    assert page.status_code == 200 and "DSP-" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    assert "<script>" not in page.text.replace('<script src="/static/console.js"></script>', "")


def test_wrong_passwords_are_refused_and_brute_force_is_stopped(server: Server) -> None:
    for _ in range(5):
        attempt = server.login(password="wrong-password-123")
        assert attempt.last_login.status_code == 401 and "Wrong email or password" in attempt.last_login.text
    blocked = server.login()  # the right password, too late
    assert blocked.last_login.status_code == 429 and "Too many failed attempts" in blocked.last_login.text
    unknown = server.login(who=("nobody@example.com", "", "whatever-123"))
    assert unknown.last_login.status_code == 429  # the address is throttled too
    started = time.monotonic()
    assert requests.Session().post(f"{server.url}/login", data={}).status_code == 403  # no login CSRF cookie
    assert time.monotonic() - started < 1


def test_every_post_needs_the_csrf_token(server: Server) -> None:
    http = server.login()
    case = server.escalation()
    for token in (None, "forged"):
        data = {} if token is None else {"csrf": token}
        answer = http.post(f"{server.url}/conversations/{case}/claim", data=data, allow_redirects=False)
        assert answer.status_code == 403 and "CSRF" in answer.text
    with session_scope(server.database_url) as session:
        assert session.get(Escalation, case).status == "open"
    assert server.post(http, f"/conversations/{case}/claim").status_code == 302


def test_roles_and_ownership(server: Server) -> None:
    agent, supervisor = server.login(), server.login(SUPERVISOR)
    assert agent.get(f"{server.url}/audit").status_code == 403
    assert supervisor.get(f"{server.url}/audit").status_code == 200
    with session_scope(server.database_url) as session:
        from cobrador.console.auth import add_agent

        add_agent(session, "otro@demo.cobrador.mx", "Otro Agente", "otro-agente-2026")
    other = server.login(("otro@demo.cobrador.mx", "", "otro-agente-2026"))
    case = server.escalation()
    assert server.post(agent, f"/conversations/{case}/claim").status_code == 302
    # Two agents cannot both take it: the second is told someone else did.
    late = server.post(other, f"/conversations/{case}/claim")
    assert late.status_code == 302 and "Someone+else" in late.headers["Location"]
    assert other.get(f"{server.url}/conversations/{case}").status_code == 403
    assert server.post(other, f"/conversations/{case}/reply", text="hola").status_code == 403
    assert other.get(f"{server.url}/api/conversations/{case}/messages").status_code == 403
    assert supervisor.get(f"{server.url}/conversations/{case}").status_code == 200
    assert case not in [int(i) for i in re.findall(r"/conversations/(\d+)", other.get(f"{server.url}/").text)]


def test_reply_promise_plan_note_and_return_to_the_bot_are_recorded_and_audited(server: Server) -> None:
    http = server.login()
    case = server.escalation("+528112340001") or _escalate(server, "+528112340001")
    with session_scope(server.database_url) as session:  # the debtor wrote: inside the 24-hour window
        messages.record_inbound(session, "SM" + "5" * 32, "+528112340001", "¿me pueden llamar?", [])
    assert server.post(http, f"/conversations/{case}/claim").status_code == 302
    page = http.get(f"{server.url}/conversations/{case}").text
    account = re.search(r'<option value="(\d+)">', page).group(1)
    assert server.post(http, f"/conversations/{case}/reply", text="Hola, soy Laura. ¿Te ayudo?").status_code == 302
    with session_scope(server.database_url) as session:
        (sent,) = session.execute(select(Message).where(Message.sender.like("agent:%"))).scalars()
        assert (sent.phone, sent.body, sent.direction) == ("+528112340001", "Hola, soy Laura. ¿Te ayudo?", "outbound")
    far = (dt.date.today() + dt.timedelta(days=90)).isoformat()
    refused = server.post(http, f"/conversations/{case}/promise", account=account, amount="100", date=far)
    assert refused.status_code == 400 and "further away than this portfolio allows" in refused.text
    soon = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    assert (
        server.post(http, f"/conversations/{case}/promise", account=account, amount="500.00", date=soon).status_code
        == 302
    )
    bad_plan = server.post(
        http, f"/conversations/{case}/plan", account=account, count="40", frequency="weekly", first=soon
    )
    assert bad_plan.status_code == 400 and "at most" in bad_plan.text
    assert server.post(http, f"/conversations/{case}/plan", account=account, count="3", frequency="weekly",
                       first=soon).status_code == 302  # fmt: skip
    assert server.post(http, f"/conversations/{case}/note", body="Pide llamada el lunes").status_code == 302
    assert server.post(http, f"/conversations/{case}/resolve").status_code == 302
    with session_scope(server.database_url) as session:
        promise = session.execute(select(Promise).where(Promise.account_id == int(account))).scalar_one()
        assert (promise.amount, promise.due_date.isoformat(), promise.created_by) == (500, soon, "agent:1")
        plan = session.execute(
            select(PaymentPlan).where(PaymentPlan.account_id == int(account), PaymentPlan.created_by.like("agent:%"))
        ).scalar_one()
        assert len(plan.installments) == 3 and sum(i.amount for i in plan.installments) == plan.total_amount
        assert session.get(Escalation, case).status == "resolved"
        actions = [a for (a,) in session.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
        assert actions == ["claim", "reply", "promise", "plan", "note", "return_to_bot"]


def test_no_reply_to_a_debtor_who_opted_out(server: Server) -> None:
    http = server.login()
    case = server.escalation()
    server.post(http, f"/conversations/{case}/claim")
    with session_scope(server.database_url) as session:
        commands.record_opt_out(session, DISPUTE_PHONE, keyword="BAJA")
    answer = server.post(http, f"/conversations/{case}/reply", text="hola")
    assert answer.status_code == 400 and "opted out" in answer.text


def test_debtor_text_is_shown_as_text(server: Server) -> None:
    payload = "<script>alert(1)</script><img src=x onerror=alert(1)>"
    with session_scope(server.database_url) as session:
        messages.record_inbound(session, "SM" + "7" * 32, DISPUTE_PHONE, payload, [])
    http = server.login()
    case = server.escalation()
    page = http.get(f"{server.url}/conversations/{case}").text
    assert payload not in page and "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    api = http.get(f"{server.url}/api/conversations/{case}/messages?after=0").json()
    assert [m["text"] for m in api["messages"] if m["who"] == "Debtor"] == [payload]  # console.js sets textContent


def _escalate(server: Server, phone: str) -> int:
    with session_scope(server.database_url) as session:
        escalation_id, _ = commands.escalate(session, phone, "request_agent", "quiere hablar con alguien")
        return escalation_id


def test_outside_the_24_hour_window_only_the_approved_template_goes(server: Server) -> None:
    http = server.login()
    case = _escalate(server, "+528112340001")  # no message from the debtor at all
    server.post(http, f"/conversations/{case}/claim")
    refused = server.post(http, f"/conversations/{case}/reply", text="Hola")
    assert refused.status_code == 400 and "no re-engagement template is configured" in refused.text
    template = "HX" + "9" * 32
    server.console.channel = dataclasses.replace(server.console.channel, reengage_templates={"es": template})
    answer = server.post(http, f"/conversations/{case}/reply", text="Hola")
    assert answer.status_code == 400 and "the approved re-engagement template was sent" in answer.text
    with session_scope(server.database_url) as session:
        (sent,) = session.execute(select(Message).where(Message.sender.like("agent:%"))).scalars()
        assert (sent.template_sid, sent.body) == (template, "")
        actions = [a for (a,) in session.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
        assert actions == ["claim", "reengage_template"]


def test_a_supervisor_reassigns_and_an_agent_cannot(server: Server) -> None:
    agent, supervisor = server.login(), server.login(SUPERVISOR)
    case = server.escalation()
    with session_scope(server.database_url) as session:
        from cobrador.console.auth import add_agent

        other = add_agent(session, "otro@demo.cobrador.mx", "Otro Agente", "otro-agente-2026")
    assert server.post(agent, f"/conversations/{case}/claim").status_code == 302
    assert server.post(agent, f"/conversations/{case}/assign", agent=str(other)).status_code == 403
    assert server.post(supervisor, f"/conversations/{case}/assign", agent=str(other)).status_code == 302
    with session_scope(server.database_url) as session:
        assert session.get(Escalation, case).assignee_id == other
    assert agent.get(f"{server.url}/conversations/{case}").status_code == 403  # no longer theirs
    taken = server.login(("otro@demo.cobrador.mx", "", "otro-agente-2026"))
    assert taken.get(f"{server.url}/conversations/{case}").status_code == 200
