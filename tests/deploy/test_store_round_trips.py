"""Rasa's tracker and lock stores where production keeps them, on another host
(cobrador.rasa_fixes): a turn's tracker read is one round trip to PostgreSQL
and its save one, its lock and release two to Redis, and the stores' calls
wait on a thread, leaving Rasa's one event loop free for the other turns
meanwhile.

The other host is PostgreSQL or Redis on this machine behind a
`devstack.SlowLink`, which counts the round trips and can stretch them."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.utils.endpoints import EndpointConfig
from sqlalchemy import create_engine, text

import cobrador.nlu.classifier  # noqa: F401 - what installs the fixes in a Rasa process
from cobrador import rasa_fixes
from cobrador.devstack import SlowLink, open_tracker_store, redis_locks, sql_trackers

DOMAIN = Domain.load(str(Path(__file__).resolve().parents[2] / "domain.yml"))
PHONE = "+525550001234"
SLOW = 0.02  # seconds each way, when a round trip is to be seen from the event loop


@pytest.fixture
def postgres_server(postgres_url: str) -> tuple[str, int]:
    server = urlsplit(postgres_url)
    return server.hostname or "127.0.0.1", server.port or 5432


@pytest.fixture
def tracker_store_behind(postgres_server: tuple[str, int]):
    """Opens Rasa's SQL tracker store (a fresh database) through a link; drops the databases after."""
    made: list[tuple[object, str]] = []

    def open_through(link: SlowLink):
        name = f"round_trips_{uuid.uuid4().hex[:8]}"
        store = open_tracker_store(
            sql_trackers(Path("unused.db"), f"postgresql://postgres@127.0.0.1:{link.port}", name), DOMAIN
        )
        made.append((store, name))
        return store

    yield open_through
    host, port = postgres_server
    admin = create_engine(f"postgresql://postgres@{host}:{port}/postgres", isolation_level="AUTOCOMMIT")
    for store, name in made:
        store.engine.dispose()
        autocommit = getattr(store, "_cobrador_autocommit", None)
        if autocommit is not None:
            autocommit.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _lock_store_behind(redis_url: str) -> tuple[SlowLink, RedisLockStore]:
    """Rasa's Redis lock store (as endpoints.production.yml makes it) through a link to the test Redis."""
    server = urlsplit(redis_url)
    link = SlowLink((server.hostname or "127.0.0.1", server.port or 6379))
    store = LockStore.create(EndpointConfig.from_dict(redis_locks(f"redis://127.0.0.1:{link.port}{server.path}")))
    assert isinstance(store, RedisLockStore)
    return link, store


def _session_start() -> list:
    return [ActionExecuted("action_session_start"), SessionStarted(), ActionExecuted("action_listen")]


def _turn(n: int) -> list:
    return [
        UserUttered(f"te pago el viernes {n} 🙏", message_id=f"SM{n}"),
        ActionExecuted("action_cobrador_turn"),
        BotUttered("Anotado: el viernes."),
        SlotSet("language", "es"),
        ActionExecuted("action_listen"),
    ]


def test_a_turns_tracker_read_is_one_round_trip_and_its_save_one(postgres_server, tracker_store_behind) -> None:
    """Rasa's code reads in three (BEGIN, the SELECT, ROLLBACK) and saves in
    four (BEGIN, the count, the insert, COMMIT); with the fix the statements
    run each on its own, the save of a tracker the store read needs no count,
    and the tracker comes back whole. One the store did not read (a copy) is
    counted first: two."""
    link = SlowLink(postgres_server)
    store = tracker_store_behind(link)
    start, turns = _session_start(), [_turn(n) for n in range(3)]

    async def converse() -> tuple[list[int], list[int], DialogueStateTracker]:
        tracker = DialogueStateTracker(PHONE, DOMAIN.slots)
        for event in start:
            tracker.update(event)
        await store.save(tracker)  # the first connections are set up here
        reads, saves = [], []
        for n, turn in enumerate(turns):
            before = link.sent
            tracker = await store.retrieve(PHONE)
            reads.append(link.sent - before)
            if n == len(turns) - 1:
                tracker = tracker.copy()  # not read by the store: its stored events are counted
            for event in turn:
                tracker.update(event)
            before = link.sent
            await store.save(tracker)
            saves.append(link.sent - before)
        return reads, saves, await store.retrieve(PHONE)

    try:
        reads, saves, tracker = asyncio.run(converse())
    finally:
        link.close()
    assert reads == [1, 1, 1] and saves == [1, 1, 2]
    expected = start[1:] + [event for turn in turns for event in turn]  # from the SessionStarted on, as Rasa reads
    assert [e.as_dict() for e in tracker.events] == [e.as_dict() for e in expected]


def test_a_turns_lock_and_release_are_two_round_trips_to_redis(redis_url: str) -> None:
    """Rasa's code takes three (a ticket, a look at the lock, its release); the
    ticket's script returns the lock it wrote, which is that look."""
    link, store = _lock_store_behind(redis_url)

    async def turns() -> list[int]:
        async with store.lock(PHONE):  # the connection and the script set up
            pass
        counted = []
        for _ in range(3):
            before = link.sent
            async with store.lock(PHONE) as lock:
                assert lock.conversation_id == PHONE and len(lock.tickets) == 1  # the lock as written
            counted.append(link.sent - before)
        return counted

    try:
        counted = asyncio.run(turns())
    finally:
        link.close()
    assert counted == [2, 2, 2]


async def _ticks_during(call) -> tuple[int, float]:  # noqa: ANN001
    """How often a 2 ms ticker on the event loop ran while `call()` was awaited, and how long it took."""
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    running = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    before, started = ticks, time.monotonic()
    await call()
    during, took = ticks - before, time.monotonic() - started
    running.cancel()
    return during, took


@pytest.mark.parametrize("off_loop", ["yes", "no"])
def test_the_tracker_stores_wait_is_on_a_thread_when_it_is_off_the_loop(
    off_loop: str, postgres_server, tracker_store_behind, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(rasa_fixes.STORES_OFF_LOOP, off_loop)
    link = SlowLink(postgres_server)
    store = tracker_store_behind(link)

    async def measure() -> list[tuple[int, float]]:
        tracker = DialogueStateTracker(PHONE, DOMAIN.slots)
        for event in _session_start():
            tracker.update(event)
        await store.save(tracker)
        await store.retrieve(PHONE)  # connections set up before the link slows down
        link.delay = SLOW
        for event in _turn(0):
            tracker.update(event)
        return [await _ticks_during(lambda: store.retrieve(PHONE)), await _ticks_during(lambda: store.save(tracker))]

    try:
        measured = asyncio.run(measure())
    finally:
        link.close()
    for ticks, took in measured:
        assert took >= 2 * SLOW  # the round trips were slow
        if off_loop == "yes":
            assert ticks >= 5, measured  # the loop ran on meanwhile
        else:
            assert ticks <= 1, measured  # Rasa's way: the loop waited with the call


@pytest.mark.parametrize("off_loop", ["yes", "no"])
def test_the_redis_lock_stores_wait_is_on_a_thread_when_it_is_off_the_loop(
    off_loop: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(rasa_fixes.STORES_OFF_LOOP, off_loop)
    link, store = _lock_store_behind(redis_url)

    async def locked() -> None:
        async with store.lock(PHONE):
            pass

    async def measure() -> tuple[int, float]:
        await locked()  # the connection set up before the link slows down
        link.delay = SLOW
        return await _ticks_during(locked)

    try:
        ticks, took = asyncio.run(measure())
    finally:
        link.close()
    assert took >= 2 * 2 * SLOW  # a ticket (and a look at the lock), a release
    assert ticks >= 10 if off_loop == "yes" else ticks <= 1, (ticks, took)


def test_a_turn_cancelled_while_it_holds_the_lock_lets_its_ticket_go(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled, and cancelled again while its release waits on a thread, the
    turn's ticket still goes: the next turn has the lock at once, not after
    the ticket's lifetime."""
    monkeypatch.setenv(rasa_fixes.STORES_OFF_LOOP, "yes")
    link, store = _lock_store_behind(redis_url)

    async def scenario() -> float:
        inside = asyncio.Event()

        async def turn() -> None:
            async with store.lock(PHONE):
                inside.set()
                await asyncio.sleep(60)

        held = asyncio.create_task(turn())
        await inside.wait()
        link.delay = SLOW
        held.cancel()
        await asyncio.sleep(0.005)  # its release is on its way to Redis
        held.cancel()
        with pytest.raises(asyncio.CancelledError):
            await held
        started = time.monotonic()
        async with store.lock(PHONE, wait_time_in_seconds=1):
            return time.monotonic() - started

    try:
        waited = asyncio.run(asyncio.wait_for(scenario(), 10))
    finally:
        link.close()
    assert waited < 1.0


@pytest.mark.parametrize(
    "host, setting, off",
    [
        ("db.internal", None, True),
        ("10.0.3.7", "auto", True),
        ("127.0.0.1", None, False),
        ("localhost", None, False),
        ("::1", None, False),
        (None, None, False),  # a SQLite file
        ("/var/run/postgresql", None, False),  # a Unix socket
        ("127.0.0.1", "yes", True),
        ("db.internal", "no", False),
    ],
)
def test_a_store_is_called_off_the_loop_when_it_is_on_another_host(
    host, setting, off, monkeypatch: pytest.MonkeyPatch
) -> None:
    if setting is None:
        monkeypatch.delenv(rasa_fixes.STORES_OFF_LOOP, raising=False)
    else:
        monkeypatch.setenv(rasa_fixes.STORES_OFF_LOOP, setting)
    assert rasa_fixes.io_off_loop(host) is off
