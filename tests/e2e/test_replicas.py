"""Two Rasa replicas serve one number, as in production: the ledger and the
trackers on PostgreSQL, the conversations' locks on Redis
(endpoints.production.yml), and the ingest's forwards spread over both by a
load balancer that takes turns, so a debtor's consecutive messages land on
different replicas.

Each debtor writes three messages in a burst. Every message is answered once,
the replies come in the order of the messages, and the conversation in the
shared tracker store holds each message followed by its own reply, in order,
whichever replica ran the turn. (The ingest sends a turn's replies on before
Rasa saves the tracker, and the debtor's next turn then waits on the other
replica for that save through the Redis lock.)"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests
from sqlalchemy import create_engine, select, text

from cobrador.devstack import ROOT, free_port, local_stack, redis_locks, sql_trackers, wait_for
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message
from cobrador.rasa_fixes import STORES_OFF_LOOP
from cobrador.whatsapp.simulator import signed_form, twilio_fields
from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import LOCAL_TOKEN, MODEL
from tests.e2e.test_whatsapp_channel import tracker_at
from tests.support import unavailable, wait_until

BURST = ("hola", "quien habla?", "gracias")
# What the bot answers each of them (an unknown number: no account is named).
ANSWERS = ("¡Hola! Soy el asistente virtual", "Te escribe Cobrador", "¡Con gusto!")
DEBTORS = ("+525550009101", "+525550009102", "+525550009103")


class TakingTurns:
    """A load balancer in front of the replicas: each request goes to the next
    one in turn (the body streamed through as it comes, as the ingest sends it)."""

    def __init__(self, replicas: list[str]) -> None:
        from aiohttp import web

        self.replicas = replicas
        self.turn = itertools.count()
        self.served = {replica: 0 for replica in replicas}
        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._pass_on)
        self.runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def _pass_on(self, request):  # noqa: ANN001, ANN202
        import aiohttp
        from aiohttp import web

        replica = self.replicas[next(self.turn) % len(self.replicas)]
        self.served[replica] += 1

        async def body():  # noqa: ANN202
            async for chunk in request.content.iter_any():
                yield chunk

        headers = {
            k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length", "transfer-encoding")
        }
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
            async with http.request(
                request.method, replica + request.path_qs, data=body() if request.can_read_body else None,
                headers=headers,
            ) as answer:  # fmt: skip
                payload = await answer.read()
                kind = answer.headers.get("Content-Type", "application/octet-stream")
                return web.Response(status=answer.status, body=payload, headers={"Content-Type": kind})

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str, redis_url: str) -> Iterator[dict]:
    """The production setup on this machine: two Rasa replicas, one action
    server, and an ingest whose forwards go through `TakingTurns`."""
    if not MODEL.exists():
        unavailable("a trained model", f"{MODEL} is missing; `make train` builds it")
    server = POSTGRES_URL.rsplit("/", 1)[0]
    trackers_db = f"cobrador_replicas_{uuid.uuid4().hex[:8]}"
    trackers = sql_trackers(tmp_path / "unused.db", server, trackers_db)
    locks = redis_locks(redis_url, f"replicas{uuid.uuid4().hex[:8]}")
    balancer = None
    ingest = None
    try:
        # The stores' calls on threads, as Rasa makes them when its stores are
        # on another host (production; here they are on this machine).
        with local_stack(
            tmp_path, postgres_url, token=LOCAL_TOKEN, tracker_store=trackers, lock_store=locks,
            extra_env={STORES_OFF_LOOP: "yes"},
        ) as stack:  # fmt: skip
            second_port = free_port()
            second = stack.launch_rasa(second_port, tmp_path / "rasa-second.log", trackers, locks)
            second_url = f"http://127.0.0.1:{second_port}"
            wait_for(f"{second_url}/webhooks/rest/", second, 300, tmp_path / "rasa-second.log")
            for url in (stack.rasa_url, second_url):
                health = f"{url}/webhooks/whatsapp/"
                assert wait_until(lambda h=health: requests.get(h, timeout=5).json()["recovered"], tries=600, step=0.1)
            balancer = TakingTurns([stack.rasa_url, second_url])
            ingest_port = free_port()
            ingest_url = f"http://127.0.0.1:{ingest_port}"
            ingest_log = tmp_path / "ingest-balanced.log"
            ingest = subprocess.Popen(
                [sys.executable, "-m", "cobrador", "ingest", "--port", str(ingest_port), "--rasa-url", balancer.url],
                cwd=ROOT, env={**stack.env, "COBRADOR_PUBLIC_URL": ingest_url},
                stdout=open(ingest_log, "w"), stderr=subprocess.STDOUT,
            )  # fmt: skip
            wait_for(f"{ingest_url}/webhooks/whatsapp/", ingest, 60, ingest_log)
            yield {
                "ingest": ingest_url, "ledger": postgres_url, "balancer": balancer,
                "replicas": [stack.rasa_url, second_url],
            }  # fmt: skip
    finally:
        if ingest is not None:
            ingest.terminate()
            ingest.wait(20)
        if balancer is not None:
            balancer.close()
        admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{trackers_db}" WITH (FORCE)'))
        admin.dispose()


def _burst(ingest: str, phone: str) -> list[str]:
    """The debtor's three messages, posted one right after the other (each
    acknowledged before the next goes, none waiting for a reply); their SIDs."""
    sids = []
    for text_ in BURST:
        fields, signature = signed_form(
            LOCAL_TOKEN, ingest + "/webhooks/whatsapp/webhook", twilio_fields(phone, text_, [])
        )
        answer = requests.post(
            ingest + "/webhooks/whatsapp/webhook", data=fields, headers={"X-Twilio-Signature": signature}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        sids.append(fields["MessageSid"])
    return sids


def _log(ledger: str, phone: str) -> list[tuple[str, str, str, str]]:
    with session_scope(ledger) as session:
        rows = session.execute(
            select(Message.direction, Message.provider_sid, Message.body, Message.status)
            .where(Message.phone == phone)
            .order_by(Message.id)
        ).all()
    return [tuple(row) for row in rows]


def test_two_replicas_answer_each_debtors_burst_once_and_in_order(replicas: dict) -> None:
    with concurrent.futures.ThreadPoolExecutor(len(DEBTORS)) as pool:
        sent = dict(zip(DEBTORS, pool.map(lambda phone: _burst(replicas["ingest"], phone), DEBTORS), strict=True))

    def all_processed() -> bool:
        return all(
            sum(1 for d, _, _, status in _log(replicas["ledger"], phone) if d == "inbound" and status == "processed")
            == len(BURST)
            for phone in DEBTORS
        )

    assert wait_until(all_processed, tries=300, step=0.2), {p: _log(replicas["ledger"], p) for p in DEBTORS}
    served = replicas["balancer"].served
    assert all(count > 0 for count in served.values()), served  # both replicas ran turns
    for phone, sids in sent.items():
        rows = _log(replicas["ledger"], phone)
        assert [sid for d, sid, _, _ in rows if d == "inbound"] == sids
        replies = [body for d, _, body, _ in rows if d == "outbound"]
        # One reply per message, in the order of the messages.
        assert len(replies) == len(BURST), replies
        for reply, expected in zip(replies, ANSWERS, strict=True):
            assert reply.startswith(expected), replies

        # The shared tracker: each message, then its own reply, in order
        # (read through either replica: the store is the same), once the last
        # turn's save, which follows its recorded replies, is in.
        def saved(phone: str = phone) -> list[dict]:
            events = tracker_at(replicas["replicas"][1], phone)["events"]
            return events if [e for e in events if e["event"] == "user"][len(BURST) - 1 :] else []

        assert wait_until(saved, tries=100, step=0.1)
        events = saved()
        said = [(e["event"], e.get("message_id") if e["event"] == "user" else e.get("text", "")) for e in events
                if e["event"] in ("user", "bot")]  # fmt: skip
        expected_order = [step for sid, answer in zip(sids, ANSWERS, strict=True) for step in (("user", sid), answer)]
        assert len(said) == len(expected_order), said
        for (kind, value), step in zip(said, expected_order, strict=True):
            if isinstance(step, tuple):
                assert (kind, value) == step, said
            else:
                assert kind == "bot" and value.startswith(step), said
