"""The fixes to Rasa 3.6.21 keep its behaviour (cobrador.rasa_fixes)."""

from __future__ import annotations

import asyncio
import copy

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction
from rasa.utils.endpoints import EndpointConfig

import cobrador.nlu.classifier  # noqa: F401 - what installs the fixes in a Rasa process
from cobrador import rasa_fixes

VALID = [
    {"events": [], "responses": []},
    {},
    {
        "events": [
            {"event": "slot", "name": "balance", "value": 1200.5, "timestamp": None},
            {"event": "followup", "name": "action_listen"},
            {"event": "action_execution_rejected", "name": "action_x", "policy": None, "confidence": None},
        ],
        "responses": [{"text": "Hola", "buttons": [{"title": "1", "payload": "/x"}]}],
    },
]
INVALID = [
    {"events": "not a list"},
    {"events": [{"event": "slot"}]},  # a slot event needs its name
    {"events": [{"event": "no_such_event"}]},
    {"responses": [["not", "an", "object"]]},
    {"events": [], "responses": "hello"},
    "not an object",
]


def action() -> RemoteAction:
    return RemoteAction("action_test", EndpointConfig("http://127.0.0.1:1/webhook"))


def test_the_fix_is_installed_by_the_module_rasa_loads() -> None:
    assert RemoteAction._validate_action_result.__module__ == rasa_fixes.__name__
    rasa_fixes.apply()  # idempotent
    assert RemoteAction._validate_action_result.__module__ == rasa_fixes.__name__


@pytest.mark.parametrize("answer", VALID)
def test_a_valid_answer_passes_as_before(answer: dict) -> None:
    jsonschema.validate(answer, RemoteAction.action_response_format_spec())  # Rasa's own check
    assert action()._validate_action_result(copy.deepcopy(answer)) is True


@pytest.mark.parametrize("answer", INVALID)
def test_an_invalid_answer_fails_with_rasas_error(answer: object) -> None:
    with pytest.raises(jsonschema.ValidationError) as stock:
        jsonschema.validate(answer, RemoteAction.action_response_format_spec())
    with pytest.raises(jsonschema.ValidationError) as fixed:
        action()._validate_action_result(copy.deepcopy(answer))
    assert fixed.value.message.startswith(stock.value.message)
    assert fixed.value.message.endswith("/custom-actions")
    assert list(fixed.value.path) == list(stock.value.path)


def test_every_event_resolves_to_the_class_rasas_walk_finds() -> None:
    from rasa.shared.core.events import Event, UserUttered
    from rasa.shared.utils.common import all_subclasses

    first: dict[str, type] = {}
    for kind in all_subclasses(Event):
        first.setdefault(kind.type_name, kind)
    assert len(first) > 15
    for name, kind in first.items():
        assert Event.resolve_by_type(name) is kind
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", UserUttered) is UserUttered
    with pytest.raises(ValueError, match="Unknown event name 'no_such_event'"):
        Event.resolve_by_type("no_such_event")


def test_an_event_class_defined_later_is_found() -> None:
    from rasa.shared.core.events import ActionExecuted, Event

    Event.resolve_by_type("action")  # the table is filled

    class LateEvent(ActionExecuted):
        type_name = "cobrador_test_late_event"

    assert Event.resolve_by_type("cobrador_test_late_event") is LateEvent


def test_a_tracker_round_trips_through_the_store_format() -> None:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker, EventVerbosity

    events = [
        ActionExecuted("action_listen"),
        UserUttered("te pago el viernes", {"name": "promise_to_pay", "confidence": 0.9}),
        SlotSet("promised_date", "2026-12-04"),
        BotUttered("Gracias, anoto el viernes 4."),
    ]
    domain = Domain.from_dict({"slots": {"promised_date": {"type": "text", "mappings": [{"type": "custom"}]}}})
    tracker = DialogueStateTracker.from_events("+5215512345678", events, domain.slots)
    state = tracker.current_state(EventVerbosity.ALL)
    again = DialogueStateTracker.from_dict("+5215512345678", state["events"], domain.slots)
    assert list(again.events) == list(tracker.events)


def test_the_shortcut_is_on_for_the_schema_it_was_written_against() -> None:
    """The plain kinds' alternatives are what `plainly_valid` checks, by hand."""
    schema = RemoteAction.action_response_format_spec()
    assert rasa_fixes._digest(schema) == rasa_fixes.SCHEMA_DIGEST
    alternatives = schema["properties"]["events"]["items"]["oneOf"]
    by_kind = {alternative["properties"]["event"]["const"]: alternative for alternative in alternatives}
    assert len(by_kind) == len(alternatives) == 23  # one alternative per kind: at most one matches
    for kind in rasa_fixes._NAME_ONLY:
        assert by_kind[kind] == {"properties": {"event": {"const": kind}}}
    assert by_kind["slot"]["required"] == ["name", "value"]
    assert by_kind["slot"]["properties"] == {"event": {"const": "slot"}, "name": {"type": "string"}, "value": {}}
    assert set(by_kind["action"]) == {"properties"}


ANSWER_OF_A_TURN = {
    "events": [
        {"event": "slot", "timestamp": None, "name": "dialogue", "value": {"verified": False, "data": {}}},
        {"event": "slot", "timestamp": None, "name": "language", "value": "es"},
        {"event": "slot", "timestamp": None, "name": "company_name", "value": None},
    ],
    "responses": [{"text": "¡Hola! Soy el asistente virtual.", "buttons": [], "elements": [], "custom": {}}],
}


def test_an_answer_of_a_turn_takes_the_shortcut_and_a_user_event_does_not() -> None:
    assert rasa_fixes.plainly_valid(ANSWER_OF_A_TURN)
    assert rasa_fixes.plainly_valid({}) and rasa_fixes.plainly_valid(VALID[2])
    user = {"event": "user", "text": "hola", "parse_data": {"intent": {"name": "greet", "confidence": 1.0}}}
    assert not rasa_fixes.plainly_valid({"events": [user]})  # valid, but the schema decides
    jsonschema.validate({"events": [user]}, RemoteAction.action_response_format_spec())
    for answer in INVALID:
        assert not rasa_fixes.plainly_valid(answer)


def random_answer(rng) -> object:  # noqa: ANN001
    """An answer built from the pieces an action server sends, each often of a wrong type."""
    values = [None, True, False, 0, 1.5, -3, "x", "", [], {}, [1], {"a": 1}]
    kinds = [*sorted(rasa_fixes._NAME_ONLY), "slot", "action", "user", "entities", "nope", 7, None]
    fields = ["timestamp", "metadata", "name", "value", "policy", "confidence", "action_text", "hide_rule_turn"]

    def event() -> object:
        if rng.random() < 0.05:
            return rng.choice(values)
        built: dict = {}
        if rng.random() < 0.95:
            built["event"] = rng.choice(kinds)
        for field in fields:
            if rng.random() < 0.5:
                built[field] = rng.choice(values + ["action_listen", 0.97, 1796099485.2])
        return built

    answer: dict = {}
    if rng.random() < 0.9:
        answer["events"] = [event() for _ in range(rng.randrange(4))] if rng.random() < 0.95 else rng.choice(values)
    if rng.random() < 0.7:
        answer["responses"] = [rng.choice([{"text": "hola"}, {}, "x", None]) for _ in range(rng.randrange(3))]
    return answer if rng.random() < 0.97 else rng.choice(values)


def test_the_shortcut_never_passes_what_the_schema_refuses() -> None:
    import random

    rng = random.Random(20261201)
    schema = RemoteAction.action_response_format_spec()
    validator = jsonschema.validators.validator_for(schema)(schema)
    shortcut = refused = 0
    for _ in range(20_000):
        answer = random_answer(rng)
        if rasa_fixes.plainly_valid(answer):
            shortcut += 1
            assert validator.is_valid(answer), answer
        elif not validator.is_valid(answer):
            refused += 1
    assert shortcut > 1_000 and refused > 1_000  # both sides were exercised


@pytest.fixture(params=["sqlite", "postgres"])
def sql_tracker_store(request: pytest.FixtureRequest, tmp_path):
    """Rasa's SQL tracker store on a fresh SQLite file, or a fresh PostgreSQL database."""
    import uuid
    from pathlib import Path

    from rasa.shared.core.domain import Domain

    from cobrador.devstack import open_tracker_store, sql_trackers

    domain = Domain.load(str(Path(__file__).resolve().parents[2] / "domain.yml"))
    server = (
        request.getfixturevalue("postgres_url").split("?")[0].rsplit("/", 1)[0] if request.param == "postgres" else None
    )
    name = f"rasa_fix_{uuid.uuid4().hex[:8]}"
    store = open_tracker_store(sql_trackers(tmp_path / "trackers.db", server, name), domain)
    yield store
    store.engine.dispose()
    if server is not None:
        from sqlalchemy import create_engine, text

        admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_the_sql_tracker_store_reads_and_appends_the_events_rasa_did(sql_tracker_store) -> None:
    """Saved turn by turn over two sessions, as Rasa saves them: the tracker
    read back holds the latest session's events in order (every session's for
    the full tracker), and each save appends only the events not stored yet."""
    import asyncio

    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    store = sql_tracker_store
    phone = "+525550009999"
    turns = [
        [ActionExecuted("action_session_start", timestamp=1.0), SessionStarted(timestamp=1.1),
         ActionExecuted("action_listen", timestamp=1.2)],
        [UserUttered("¡hola! 🙏", message_id="SM1", timestamp=2.0), BotUttered("¡Hola!", timestamp=2.1),
         ActionExecuted("action_listen", timestamp=2.2)],
        [ActionExecuted("action_session_start", timestamp=9.0), SessionStarted(timestamp=9.1),
         SlotSet("language", "es", timestamp=9.2), ActionExecuted("action_listen", timestamp=9.3)],
        [UserUttered("te pago el viernes", message_id="SM2", timestamp=10.0),
         BotUttered("Anotado: el viernes.", timestamp=10.1), ActionExecuted("action_listen", timestamp=10.2)],
    ]  # fmt: skip

    async def converse() -> tuple:
        tracker = DialogueStateTracker(phone, store.domain.slots)
        for turn in turns:
            for event in turn:
                tracker.update(event)
            await store.save(tracker)
            tracker = await store.retrieve(phone)  # what the next turn starts from
            assert tracker is not None
        return tracker, await store.retrieve_full_tracker(phone), await store.retrieve("+525550000000")

    latest, full, nobody = asyncio.run(converse())
    every = [event for turn in turns for event in turn]
    assert [e.as_dict() for e in full.events] == [e.as_dict() for e in every]  # each stored once, in order
    assert [e.as_dict() for e in latest.events] == [e.as_dict() for e in every[7:]]  # from the last SessionStarted
    assert latest.get_slot("language") == "es" and latest.latest_message.text == "te pago el viernes"
    assert nobody is None
    with store.session_scope() as session:
        assert session.query(store.SQLEvent).count() == len(every)


def test_a_save_appends_each_new_event_once_whether_the_store_knows_the_tracker_or_counts(sql_tracker_store) -> None:
    """A tracker the store read, or saved, is saved without counting what the
    store holds (it knows); the rest are counted first. Either way every event
    is stored once, in order: saved twice in one turn, across a session
    started mid-turn, from a copy, from a tracker rebuilt from events, and
    from a full tracker (every session's events). (A tracker that keeps its
    last events only is counted, as Rasa does, and gets what Rasa gives it.)"""
    import asyncio

    from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from cobrador.rasa_fixes import STORED_EVENTS

    store = sql_tracker_store
    phone = "+525550008888"
    clock = iter(range(1, 1000))

    def turn(text: str) -> list:
        return [UserUttered(text, message_id=f"SM{text}", timestamp=next(clock)),
                BotUttered(f"re: {text}", timestamp=next(clock)), ActionExecuted("action_listen", timestamp=next(clock))]  # fmt: skip

    def session() -> list:
        return [ActionExecuted("action_session_start", timestamp=next(clock)), SessionStarted(timestamp=next(clock)),
                SlotSet("language", "es", timestamp=next(clock)), ActionExecuted("action_listen", timestamp=next(clock))]  # fmt: skip

    written: list = []

    async def add(tracker, events: list) -> None:
        for event in events:
            tracker.update(event)
        written.extend(events)
        await store.save(tracker)

    async def converse() -> tuple:
        known = []
        tracker = DialogueStateTracker(phone, store.domain.slots)  # new: counted
        await add(tracker, session())
        tracker = await store.retrieve(phone)
        known.append(getattr(tracker, STORED_EVENTS, None))  # read: the store knows
        await add(tracker, turn("uno"))
        await add(tracker, turn("dos"))  # saved twice in one turn
        tracker = await store.retrieve(phone)
        await add(tracker, session() + turn("tres"))  # a session started mid-turn
        await add(tracker, turn("cuatro"))  # then saved again
        copy = (await store.retrieve(phone)).copy()  # a copy: counted
        known.append(getattr(copy, STORED_EVENTS, None))
        await add(copy, turn("cinco"))
        rebuilt = await store.retrieve(phone)
        rebuilt = DialogueStateTracker.from_events(phone, list(rebuilt.events), store.domain.slots)  # counted
        known.append(getattr(rebuilt, STORED_EVENTS, None))
        await add(rebuilt, turn("seis"))
        full = await store.retrieve_full_tracker(phone)  # every session's events: the store knows all of them
        known.append(getattr(full, STORED_EVENTS, None))
        await add(full, turn("siete"))
        return known, await store.retrieve_full_tracker(phone), await store.retrieve(phone)

    known, full, latest = asyncio.run(converse())
    assert known[0] == 3 and known[1] is None and known[2] is None and known[3] == len(written) - 3
    assert [e.as_dict() for e in full.events] == [e.as_dict() for e in written]  # each once, in order
    second_session = 4 + 6 + 1  # its SessionStarted
    assert [e.as_dict() for e in latest.events] == [e.as_dict() for e in written[second_session:]]
    assert latest.latest_message.text == "siete"
    with store.session_scope() as session_:
        assert session_.query(store.SQLEvent).count() == len(written)


def test_an_endpoint_keeps_its_connection_and_makes_a_new_one_once_the_server_closed_it() -> None:
    """Rasa opened a new connection, and a new aiohttp session, for every call
    to the action server. The calls now share one, with Rasa's headers, token
    and errors; once the server has closed it (here after a second idle), the next
    call goes on a new one, and succeeds."""
    from aiohttp import web
    from rasa.utils.endpoints import ClientResponseError, EndpointConfig

    peers: list = []

    async def answer(request: web.Request) -> web.Response:
        peers.append(request.transport.get_extra_info("peername"))
        if request.query.get("fail"):
            return web.Response(status=500, text="the action failed")
        body = await request.json()
        return web.json_response({"n": body["n"], "token": request.query.get("token"), "agent": request.headers["X-A"]})

    async def calls() -> tuple[list, int]:
        app = web.Application()
        app.router.add_post("/webhook", answer)
        runner = web.AppRunner(app, keepalive_timeout=0.3)  # the server drops idle connections sooner than the client
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", token="secret", headers={"X-A": "rasa"})
        try:
            answers = [await endpoint.request(json={"n": n}, method="post") for n in range(3)]
            await asyncio.sleep(1.6)  # idle: the server closes the connection (it looks once a second)
            answers.append(await endpoint.request(json={"n": 3}, method="post"))
            with pytest.raises(ClientResponseError) as failed:
                await endpoint.request(json={"n": 4}, method="post", params={"fail": "1"})
            return answers, failed.value.status
        finally:
            await runner.cleanup()

    answers, status = asyncio.run(calls())
    assert answers == [{"n": n, "token": "secret", "agent": "rasa"} for n in range(4)]
    assert status == 500
    assert peers[0] == peers[1] == peers[2] != peers[3] == peers[4]


def test_an_endpoint_called_from_one_event_loop_after_another_is_answered_on_each() -> None:
    """An endpoint called again from a new event loop, the old one ended (a
    test, a script), is still answered: its sessions are kept per loop."""
    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def serve_and_call(endpoint: EndpointConfig) -> object:
        app = web.Application()
        app.router.add_post("/webhook", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        endpoint.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/webhook"
        try:
            return await endpoint.request(json={}, method="post")
        finally:
            await runner.cleanup()

    endpoint = EndpointConfig("http://127.0.0.1:1/webhook")
    assert asyncio.run(serve_and_call(endpoint)) == {"ok": True}
    assert asyncio.run(serve_and_call(endpoint)) == {"ok": True}
