"""The WhatsApp channel on the real Rasa server (local mode): Twilio-format
webhooks signed with twilio's RequestValidator, and what reaches the ledger's
message log and the outbox."""

from __future__ import annotations

import concurrent.futures
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Optional

import pytest
import requests
from sqlalchemy import select

from cobrador.ledger import messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Message, OptOut
from cobrador.whatsapp.channel import forward_key, forward_signature
from cobrador.whatsapp.forwarded import covered
from cobrador.whatsapp.simulator import signed_form, twilio_fields
from tests.e2e.conftest import LOCAL_TOKEN
from tests.support import wait_until

WEBHOOK = "/webhooks/whatsapp/webhook"
STATUS = "/webhooks/whatsapp/status"


def post(
    stack, fields: dict[str, str], signature: Optional[str] = None, path: str = WEBHOOK, base: Optional[str] = None
) -> requests.Response:
    """Posts a webhook as Twilio does: signed for the public URL (the ingest),
    sent to the ingest unless `base` says another server."""
    if signature is None:
        _, signature = signed_form(LOCAL_TOKEN, stack.public_url + path, fields)
    headers = {"X-Twilio-Signature": signature} if signature else {}
    return requests.post((base or stack.public_url) + path, data=fields, headers=headers, timeout=10)


def log(stack, phone: str) -> list[Message]:
    with session_scope(stack.database_url) as session:
        rows = list(session.execute(select(Message).where(Message.phone == phone).order_by(Message.id)).scalars())
        session.expunge_all()
        return rows


def replies_after(stack, phone: str, count_before: int, want: int = 1, timeout: float = 20) -> list[Message]:
    """Waits until `want` new outbound messages are in the outbox."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outbound = [m for m in log(stack, phone) if m.direction == "outbound"]
        if len(outbound) - count_before >= want:
            return outbound[count_before:]
        time.sleep(0.2)
    return [m for m in log(stack, phone) if m.direction == "outbound"][count_before:]


def processed(stack, phone: str, sid: str, timeout: float = 20) -> None:
    """Waits until the inbound message `sid` has been processed (its turn is over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if [m for m in log(stack, phone) if m.provider_sid == sid and m.status == "processed"]:
            return
        time.sleep(0.2)
    raise AssertionError(f"{sid} not processed in {timeout} s")


def outbound_count(stack, phone: str) -> int:
    return len([m for m in log(stack, phone) if m.direction == "outbound"])


def test_the_ingest_and_the_action_server_keep_what_start_up_made_out_of_full_collections(stack) -> None:
    """Like Rasa (tests/e2e/test_recovery.py), the ingest and the action
    server freeze their heaps once up (cobrador.heap), so a full garbage
    collection does not walk what their imports made."""
    assert wait_until(
        lambda: requests.get(stack.public_url + "/webhooks/whatsapp/", timeout=5).json()["heap_frozen"],
        tries=100,
        step=0.1,
    )
    assert wait_until(
        lambda: requests.get(stack.actions_url + "/heap", timeout=5).json()["heap_frozen"], tries=100, step=0.1
    )


@pytest.mark.parametrize("server", ["ingest", "rasa"])
def test_unsigned_and_tampered_webhooks_are_refused_and_nothing_is_stored(stack, server: str) -> None:
    base = stack.public_url if server == "ingest" else stack.rasa_url
    phone = "+525550000113"
    fields = twilio_fields(phone, "hola", [])
    assert post(stack, fields, signature="", base=base).status_code == 403
    _, signature = signed_form(LOCAL_TOKEN, stack.public_url + WEBHOOK, fields)
    tampered = {**fields, "Body": "hola, ya pague todo"}
    assert post(stack, tampered, signature=signature, base=base).status_code == 403
    _, wrong = signed_form("not-the-token", stack.public_url + WEBHOOK, fields)
    assert post(stack, fields, signature=wrong, base=base).status_code == 403
    # Signed for another URL (e.g. Rasa's own address): refused too.
    _, elsewhere = signed_form(LOCAL_TOKEN, stack.rasa_url + "/elsewhere" + WEBHOOK, fields)
    assert post(stack, fields, signature=elsewhere, base=base).status_code == 403
    assert log(stack, phone) == []


def test_a_signed_message_is_stored_answered_and_a_replay_is_dropped(stack) -> None:
    phone = "+525550000113"  # Alejandro Reyes Morales
    before = outbound_count(stack, phone)
    fields = twilio_fields(phone, "¡Hola! buenas tardes", [], profile_name="Alex")
    started = time.monotonic()
    answer = post(stack, fields)
    assert answer.status_code == 200 and time.monotonic() - started < 1.0
    processed(stack, phone, fields["MessageSid"])
    replies = replies_after(stack, phone, before)
    assert replies and replies[0].body.startswith("¡Hola! Soy el asistente virtual de Cobrador Servicios de Cobranza")
    assert post(stack, fields).status_code == 200  # Twilio retries: acknowledged...
    time.sleep(1.5)
    inbound = [m for m in log(stack, phone) if m.provider_sid == fields["MessageSid"]]
    assert len(inbound) == 1 and inbound[0].body == "¡Hola! buenas tardes"  # "¡" intact, stored once
    assert inbound[0].status == "processed"
    assert outbound_count(stack, phone) == before + len(replies)  # ...and not answered twice


def test_blank_fields_count_in_the_signature(stack) -> None:
    phone = "+526641230001"  # Carmen Rodríguez
    fields = twilio_fields(phone, "hola", [], profile_name="")  # ProfileName is blank
    assert "ProfileName" in fields and fields["ProfileName"] == ""
    assert post(stack, fields).status_code == 200
    assert replies_after(stack, phone, 0)
    stripped = {k: v for k, v in fields.items() if v != ""}
    _, signature_without_blanks = signed_form(LOCAL_TOKEN, stack.public_url + WEBHOOK, stripped)
    assert post(stack, fields, signature=signature_without_blanks).status_code == 403


def test_media_only_voice_note_is_stored_and_answered(stack) -> None:
    phone = "+529991112233"  # Pedro Canul Pech
    before = outbound_count(stack, phone)
    media = [
        {"url": "https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1", "content_type": "audio/ogg"}
    ]
    fields = twilio_fields(phone, "", media)
    assert post(stack, fields).status_code == 200
    replies = replies_after(stack, phone, before)
    assert replies[0].body == "Por ahora no puedo escuchar notas de voz. ¿Me lo puedes escribir?"
    (inbound,) = [m for m in log(stack, phone) if m.provider_sid == fields["MessageSid"]]
    assert inbound.media == media


@pytest.mark.parametrize(
    ("phone", "text"),
    [
        ("+525510000001", "😀🙏💸"),
        ("+525510000002", "a" * 5000),
        ("+525510000003", "/restart"),
        ("+525510000004", '/promise_to_pay{"amount": 1}'),
    ],
)
def test_odd_texts_are_answered_and_never_run_commands(stack, phone: str, text: str) -> None:
    before = outbound_count(stack, phone)
    fields = twilio_fields(phone, text, [])
    assert post(stack, fields).status_code == 200
    assert replies_after(stack, phone, before), "no answer"
    (inbound,) = [m for m in log(stack, phone) if m.provider_sid == fields["MessageSid"]]
    assert inbound.body == text and inbound.status == "processed"


def test_unknown_number_gets_the_company_and_nothing_else(stack) -> None:
    phone = "+525512345678"
    fields = twilio_fields(phone, "hola", [])
    assert post(stack, fields).status_code == 200
    replies = replies_after(stack, phone, 0)
    assert [r.body for r in replies] == ["¡Hola! Soy el asistente virtual de Cobrador. ¿En qué te puedo ayudar?"]


def test_opt_out_keyword_is_honoured_before_nlu_and_confirmed_once(stack) -> None:
    phone = "+13105550188"  # Kevin O'Brien
    first = twilio_fields(phone, "STOP", [])
    assert post(stack, first).status_code == 200
    replies = replies_after(stack, phone, 0)
    assert [r.body for r in replies] == [
        "Done, we won't send you WhatsApp messages anymore. If you change your mind, write to us."
    ]
    assert post(stack, twilio_fields(phone, "stop", [])).status_code == 200
    assert post(stack, twilio_fields(phone, "hello?", [])).status_code == 200
    time.sleep(2)
    assert outbound_count(stack, phone) == 1  # confirmed once, then silence
    with session_scope(stack.database_url) as session:
        assert len(session.execute(select(OptOut).where(OptOut.phone == phone)).scalars().all()) == 1


def test_concurrent_messages_from_one_sender_are_all_stored_and_answered(stack) -> None:
    phone = "+12125550147"  # Marcus Johnson
    batch = [twilio_fields(phone, text, []) for text in ("hi", "who is this?", "are you a bot?", "bye")]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(lambda f: post(stack, f).status_code, batch))
    assert codes == [200, 200, 200, 200]
    replies = replies_after(stack, phone, 0, want=4, timeout=30)
    assert len(replies) >= 4
    stored = {m.provider_sid: m.status for m in log(stack, phone) if m.direction == "inbound"}
    assert set(stored) == {f["MessageSid"] for f in batch}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and set(stored.values()) != {"processed"}:
        time.sleep(0.3)
        stored = {m.provider_sid: m.status for m in log(stack, phone) if m.direction == "inbound"}
    assert set(stored.values()) == {"processed"}


def test_malformed_webhooks_get_a_clear_400(stack) -> None:
    assert post(stack, {"Body": "hola", "From": "whatsapp:+525550000113"}).status_code == 400
    assert post(stack, {"MessageSid": "SMx", "From": "whatsapp:not-a-phone", "Body": "hola"}).status_code == 400


def test_status_callbacks_are_signed_and_recorded(stack) -> None:
    assert (
        post(stack, {"MessageSid": "SMnope", "MessageStatus": "delivered"}, signature="", path=STATUS).status_code
        == 403
    )
    assert post(stack, {"MessageSid": "SMnope", "MessageStatus": "delivered"}, path=STATUS).status_code == 204


def test_a_whole_conversation_through_signed_webhooks_records_the_promise(stack) -> None:
    phone = "+528112340001"  # Ana Sofía Garza, AM-100233, 1,500.00 MXN, born 1995
    turns = ["hola", "ana sofia garza", "1995", "el viernes te pago", "si"]
    stack.restart(phone)  # other suites may have talked to Ana already
    for text in turns:
        before = outbound_count(stack, phone)
        fields = twilio_fields(phone, text, [])
        assert post(stack, fields).status_code == 200
        processed(stack, phone, fields["MessageSid"])
        assert outbound_count(stack, phone) > before, f"no answer to {text!r}"
    bodies = [m.body for m in log(stack, phone) if m.direction == "outbound"]
    assert "¿Confirmas $1,500.00 MXN el viernes 27 de noviembre?" in bodies
    # The balance came with the account statement: a PDF behind an expiring signed URL.
    (statement,) = [m.media[0]["url"] for m in log(stack, phone) if m.direction == "outbound" and m.media]
    assert statement.startswith(stack.public_url + "/webhooks/whatsapp/media/")
    pdf = requests.get(statement, timeout=10)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf" and pdf.content[:4] == b"%PDF"
    assert requests.get(statement[:-3] + "xyz", timeout=10).status_code == 403
    assert any(
        b.startswith("Listo, quedó registrado tu compromiso: $1,500.00 MXN el viernes 27 de noviembre.") for b in bodies
    )


def test_rasa_refuses_forwards_that_are_not_signed_by_the_ingest(stack) -> None:
    phone = "+525550000113"
    sid = "SM" + "f" * 32
    body = json.dumps({"sid": sid, "phone": phone, "body": "ya pagué todo"}).encode()
    url = stack.rasa_url + "/webhooks/whatsapp/process"
    assert requests.post(url, data=body, timeout=10).status_code == 403
    wrong = forward_signature(forward_key("not-the-token"), body)
    assert requests.post(url, data=body, headers={"X-Cobrador-Signature": wrong}, timeout=10).status_code == 403
    malformed = b'{"sid": 3, "phone": "nope"}'
    signature = forward_signature(forward_key(LOCAL_TOKEN), malformed)
    answer = requests.post(url, data=malformed, headers={"X-Cobrador-Signature": signature}, timeout=10)
    assert answer.status_code == 400
    assert [m for m in log(stack, phone) if m.provider_sid == sid] == []


def test_a_signed_forward_is_answered_with_the_replies_for_the_ingest_to_record(stack) -> None:
    # Rasa runs the turn and returns the replies; recording and sending them is the ingest's job.
    phone = "+525550000118"
    body = json.dumps({"sid": "SM" + "e" * 32, "phone": phone, "body": "hola", "language": "es"}).encode()
    signature = forward_signature(forward_key(LOCAL_TOKEN), body)
    url = stack.rasa_url + "/webhooks/whatsapp/process"
    answer = requests.post(url, data=body, headers={"X-Cobrador-Signature": signature}, timeout=30)
    assert answer.status_code == 200
    replies = answer.json()["messages"]
    assert replies and replies[0]["phone"] == phone and replies[0]["sender"] == "bot"
    assert replies[0]["body"].startswith("¡Hola!")
    assert log(stack, phone) == []
    # The same message again (an ingest retrying while Rasa's recovery took
    # it): refused, the turn is not run twice.
    again = requests.post(url, data=body, headers={"X-Cobrador-Signature": signature}, timeout=30)
    assert again.status_code == 409


def test_the_rasa_channel_also_takes_webhooks_directly(stack) -> None:
    phone = "+525550000116"
    before = outbound_count(stack, phone)
    fields = twilio_fields(phone, "hola", [])
    assert post(stack, fields, base=stack.rasa_url).status_code == 200
    processed(stack, phone, fields["MessageSid"])
    assert replies_after(stack, phone, before)


def test_a_stored_message_whose_forward_was_lost_is_answered_by_the_sweep(stack) -> None:
    phone = "+525550000117"
    sid = "SM" + "d" * 32
    before = outbound_count(stack, phone)
    with session_scope(stack.database_url) as session:
        assert messages.record_inbound(session, sid, phone, "hola", [])  # stored, never forwarded
    processed(stack, phone, sid, timeout=30)  # the sweep runs every 2 s in the tests
    replies = replies_after(stack, phone, before)
    assert len(replies) >= 1
    time.sleep(3)
    assert outbound_count(stack, phone) == before + len(replies)  # answered once


def claimed_long_ago(stack, sid: str) -> None:
    """Makes the claim on message `sid` an hour old: stale, for the channel's sweep."""
    import datetime as dt

    from sqlalchemy import update

    with session_scope(stack.database_url) as session:
        session.execute(
            update(Message)
            .where(Message.provider_sid == sid)
            .values(updated_at=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))
        )


def test_a_message_an_ingest_died_holding_is_taken_over_after_the_stale_claim_time(stack) -> None:

    phone = "+525550000119"
    sid = "SM" + "b" * 32
    before = outbound_count(stack, phone)
    claimed(stack, sid, phone)  # by an ingest that then died, long ago
    claimed_long_ago(stack, sid)
    processed(stack, phone, sid, timeout=30)
    replies = replies_after(stack, phone, before)
    assert len(replies) >= 1
    time.sleep(3)
    assert outbound_count(stack, phone) == before + len(replies)


def test_replies_rasa_gave_an_ingest_that_died_are_recorded_by_the_sweep_not_made_again(stack) -> None:
    """The ingest stored a message claimed and forwarded it; Rasa ran the turn
    and answered; the ingest died before recording the replies. Once the claim
    is stale the sweep records the replies Rasa gave then: the debtor gets
    that turn's answer, and the turn does not run a second time."""

    phone = "+525550000125"
    sid = "SM" + "f" * 32
    before = outbound_count(stack, phone)
    claimed(stack, sid, phone)
    answer = process(stack, phone, "hola", sid=sid)
    assert answer.status_code == 200
    given = [reply["body"] for reply in answer.json()["messages"]]
    assert given
    claimed_long_ago(stack, sid)  # the ingest died; its claim is stale
    processed(stack, phone, sid, timeout=30)
    assert [reply.body for reply in replies_after(stack, phone, before)] == given
    assert user_message_ids(stack.rasa_url, phone) == [sid]


def test_a_turn_the_ingest_left_mid_way_still_ends_and_the_sweep_records_its_replies(stack) -> None:
    """The ingest forwarded a message and went away before the answer (it
    died, or gave up waiting): Rasa still ends the turn, never half done, and
    keeps its replies; once the claim is stale the sweep records them rather
    than running the turn again."""
    import socket
    from urllib.parse import urlsplit

    phone = "+525550000126"
    sid = "SM" + "7" * 32
    before = outbound_count(stack, phone)
    claimed(stack, sid, phone)
    body, headers = forward(sid, phone, "hola")
    rasa = urlsplit(stack.rasa_url)
    head = (
        f"POST /webhooks/whatsapp/process HTTP/1.1\r\nHost: {rasa.netloc}\r\nContent-Type: application/json\r\n"
        f"X-Cobrador-Signature: {headers['X-Cobrador-Signature']}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((rasa.hostname, rasa.port), timeout=10) as connection:
        connection.sendall(head.encode() + body)
        time.sleep(0.05)  # the turn has started; the ingest goes away without the answer
    claimed_long_ago(stack, sid)  # its claim is stale
    processed(stack, phone, sid, timeout=30)
    assert replies_after(stack, phone, before)
    assert user_message_ids(stack.rasa_url, phone) == [sid]
    assert f"{sid}: its turn ran already; recording the replies it gave" in stack.rasa_log.read_text()


def claimed(stack, sid: str, phone: str, text: str = "hola") -> None:
    """`text` from `phone` stored as an ingest stores it, claimed for its turn."""
    with session_scope(stack.database_url) as session:
        assert messages.record_inbound(session, sid, phone, text, [], status="processing")


def rasa_tracker(stack, phone: str) -> dict:
    return tracker_at(stack.rasa_url, phone)


def tracker_at(rasa_url: str, phone: str) -> dict:
    """The debtor's tracker (every session) from the HTTP API of the Rasa at `rasa_url`."""
    from tests.e2e.test_rasa_api import SECRET, token

    headers = {"Authorization": f"Bearer {token(SECRET)}"}
    answer = requests.get(f"{rasa_url}/conversations/{phone}/tracker", headers=headers, timeout=10)
    answer.raise_for_status()
    return answer.json()


def user_message_ids(rasa_url: str, phone: str) -> list[str]:
    """The message ids of the debtor's messages in the tracker: one per turn run."""
    return [event["message_id"] for event in tracker_at(rasa_url, phone)["events"] if event["event"] == "user"]


def rasa_model_id(stack) -> str:
    from tests.e2e.test_rasa_api import SECRET, token

    headers = {"Authorization": f"Bearer {token(SECRET)}"}
    return requests.get(f"{stack.rasa_url}/status", headers=headers, timeout=10).json()["model_id"]


def user_parses(stack, phone: str) -> list[dict]:
    return [event["parse_data"] for event in rasa_tracker(stack, phone)["events"] if event["event"] == "user"]


def forward(sid: str, phone: str, text: str, parse: Optional[dict] = None) -> tuple[bytes, dict[str, str]]:
    """A forward's body and headers as the ingest sends them, with the parse its NLU worker made."""
    message = {"sid": sid, "phone": phone, "body": text, "language": "es"}
    if parse is not None:
        message["parse"] = parse
    body = json.dumps(message, ensure_ascii=False).encode("utf-8")
    return body, {"X-Cobrador-Signature": forward_signature(forward_key(LOCAL_TOKEN), body)}


def process(
    stack,
    phone: str,
    text: str,
    parse: Optional[dict] = None,
    sid: Optional[str] = None,
    rasa_url: Optional[str] = None,
) -> requests.Response:
    """A forward posted as the ingest posts it (to the stack's Rasa unless `rasa_url`)."""
    body, headers = forward(sid or f"SM{time.time_ns():032d}"[-34:], phone, text, parse)
    url = (rasa_url or stack.rasa_url) + "/webhooks/whatsapp/process"
    return requests.post(url, data=body, headers=headers, timeout=30)


def follow_line(sid: str, item: dict, token: str = LOCAL_TOKEN) -> bytes:
    """A line that follows message `sid` on its forward, signed as the ingest signs it."""
    data = json.dumps(item).encode()
    return forward_signature(forward_key(token), covered(sid, data)).encode() + b" " + data + b"\n"


def process_while_stored(
    stack, sid: str, phone: str, text: str, follows: list[bytes], go: Optional[threading.Event] = None
) -> requests.Response:
    """A forward as the ingest sends it while the message is being stored: the
    message at once, then (once `go` is set) the `follows` lines."""
    body = json.dumps({"sid": sid, "phone": phone, "body": text, "stored_follows": True}).encode()
    headers = {"X-Cobrador-Signature": forward_signature(forward_key(LOCAL_TOKEN), body)}

    def chunks():  # noqa: ANN202 - a streamed (chunked) body
        yield body + b"\n"
        if go is not None:
            go.wait(30)
        yield from follows

    return requests.post(stack.rasa_url + "/webhooks/whatsapp/process", data=chunks(), headers=headers, timeout=60)


def test_a_message_sent_while_it_is_stored_joins_the_conversation_only_once_it_is(stack) -> None:
    """The ingest sends a message to Rasa while storing it: Rasa takes it into
    the conversation only when word comes that it is stored, and answers it."""
    phone, sid = "+525550000131", "SM" + "a1" * 16
    go = threading.Event()
    stored = [follow_line(sid, {"stored": True, "language": "es"})]
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(process_while_stored, stack, sid, phone, "hola", stored, go)
        time.sleep(1.5)
        waiting = not answer.done()
        before = user_message_ids(stack.rasa_url, phone)
        go.set()
        response = answer.result(timeout=60)
    assert waiting and before == []
    assert response.status_code == 200
    assert response.json()["messages"][0]["body"].startswith("¡Hola!")
    assert user_message_ids(stack.rasa_url, phone) == [sid]


def test_a_message_not_stored_never_joins_the_conversation(stack) -> None:
    """Word that the message was not stored (a replay, the database down), a
    word not signed by the ingest, or signed for another message, or none at
    all: Rasa answers 409 and the conversation is as it was."""
    phone = "+525550000132"
    cases = {
        "SM" + "b1" * 16: lambda sid: [follow_line(sid, {"stored": False})],
        "SM" + "b2" * 16: lambda sid: [follow_line(sid, {"stored": True, "language": "es"}, token="not-the-token")],
        "SM" + "b3" * 16: lambda sid: [follow_line("SM" + "b9" * 16, {"stored": True, "language": "es"})],
        "SM" + "b4" * 16: lambda sid: [],
    }
    for sid, follows in cases.items():
        answer = process_while_stored(stack, sid, phone, "ya pagué", follows(sid))
        assert (answer.status_code, answer.text) == (409, "not stored"), sid
    assert user_message_ids(stack.rasa_url, phone) == []
    assert process(stack, phone, "hola").status_code == 200  # the debtor's next message is answered as ever


def test_the_answer_goes_before_the_tracker_is_saved(stack) -> None:
    """The replies come back as soon as the turn's actions have run; Rasa saves
    the tracker after. Here another writer holds the tracker store's lock for
    a while: the answer comes all the same, and the save, which waits for the
    lock (SQLite waits up to 5 s), keeps the turn once it is free. (Were the
    answer to wait for the save, it would come after 5 s, from a turn the
    tracker store lost.)"""
    trackers = Path(stack.rasa_log).parent / "trackers.db"
    assert trackers.exists()
    phone, sid = "+525550000133", "SM" + "c1" * 16
    # Earlier tests' turns were answered before their saves: once this one's
    # is saved, theirs are too, and none is left to wait for the lock below.
    settled, settled_sid = "+525550000134", "SM" + "c2" * 16
    assert process(stack, settled, "hola", sid=settled_sid).status_code == 200
    assert wait_until(lambda: user_message_ids(stack.rasa_url, settled) == [settled_sid], step=0.05)
    locker = sqlite3.connect(trackers, timeout=10, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # readers go on; no one else writes
    try:
        started = time.monotonic()
        answer = process(stack, phone, "hola", sid=sid)
        took = time.monotonic() - started
        time.sleep(1)  # the save waits meanwhile
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert answer.status_code == 200
    assert answer.json()["messages"][0]["body"].startswith("¡Hola!")
    assert took < 4
    assert user_message_ids(stack.rasa_url, phone) == [sid]


def test_rasa_takes_a_parse_made_ahead_only_from_its_own_model_for_that_text(stack) -> None:
    """The parse in a forward becomes the message's parse in Rasa (so Rasa
    does not parse again) only when it is of Rasa's model and of the text;
    otherwise Rasa parses the text itself."""
    model_id = rasa_model_id(stack)
    goodbye = {"name": "goodbye", "confidence": 1.0}

    def crafted(model: str, text: str) -> dict:
        data = {"text": text, "intent": goodbye, "entities": [], "intent_ranking": [goodbye]}
        return {"model": model, "data": data}

    taken, other_model, other_text = "+525550000121", "+525550000122", "+525550000123"
    answer = process(stack, taken, "hola", crafted(model_id, "hola"))
    assert answer.status_code == 200
    assert answer.json()["model"] == model_id  # the ingest keeps its NLU worker on it
    assert process(stack, other_model, "hola", crafted("not-" + model_id, "hola")).status_code == 200
    assert process(stack, other_text, "hola", crafted(model_id, "adiós")).status_code == 200
    assert [parse["intent"]["name"] for parse in user_parses(stack, taken)] == ["goodbye"]
    assert [parse["intent"]["name"] for parse in user_parses(stack, other_model)] == ["greet"]
    assert [parse["intent"]["name"] for parse in user_parses(stack, other_text)] == ["greet"]


def test_the_ingests_worker_parses_as_rasa_itself_does_in_the_middle_of_a_conversation(stack) -> None:
    """Parse-ahead changes where the parse is made, never what it is: the
    worker's parse of each message equals the one Rasa made itself, in the
    conversation's context (REST channel: no parse ahead), float for float."""
    import asyncio

    from cobrador.devstack import MODEL
    from cobrador.whatsapp.understanding import Understanding, parsed
    from tests.support import until_loaded

    phone = "+525550000124"
    texts = ["hola", "ana sofia garza", "no me alcanza, ¿me das 3 meses?", "te pago 500 el viernes", "si", "😀🙏",
             "that's not my debt", "quiero hablar con un asesor"]  # fmt: skip
    stack.restart(phone)
    for text in texts:
        stack.say(phone, text)
    own = user_parses(stack, phone)[-len(texts) :]
    worker = Understanding(MODEL)
    worker.start()
    try:
        until_loaded(worker)
        assert worker.model_id == rasa_model_id(stack)

        async def ahead() -> list[dict]:
            return [(await parsed(worker.parse_soon(text)))["data"] for text in texts]

        made_ahead = asyncio.run(ahead())
    finally:
        worker.close()
    keys = ("text", "intent", "entities", "intent_ranking")
    assert [{key: parse.get(key) for key in keys} for parse in made_ahead] == [
        {key: parse.get(key) for key in keys} for parse in own
    ]
    assert {parse["intent"]["name"] for parse in own} >= {"greet", "cannot_pay", "promise_to_pay"}
