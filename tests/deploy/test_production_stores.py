"""The production endpoints (PostgreSQL tracker store, Redis lock store) work
for real with Rasa 3.6, configured only through environment variables."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import urlparse

import pytest
from rasa.core.lock_store import LockStore, RedisLockStore
from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
from rasa.core.utils import AvailableEndpoints
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def production_env(postgres_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    pg = urlparse(postgres_url)
    redis = urlparse(redis_url)
    tracker_db = f"rasa_tracker_{uuid.uuid4().hex[:8]}"
    for key, value in {
        "ACTION_SERVER_URL": "http://127.0.0.1:5055/webhook",
        "RASA_TRACKER_DB_HOST": pg.hostname,
        "RASA_TRACKER_DB_PORT": str(pg.port or 5432),
        "RASA_TRACKER_DB_USER": pg.username or "postgres",
        "RASA_TRACKER_DB_PASSWORD": pg.password or "",
        "RASA_TRACKER_DB_NAME": tracker_db,
        "REDIS_HOST": redis.hostname,
        "REDIS_PORT": str(redis.port or 6379),
        "REDIS_DB": redis.path.lstrip("/") or "0",
        "REDIS_PASSWORD": "",
    }.items():
        monkeypatch.setenv(key, value)
    yield tracker_db
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres_url.split("?")[0].rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{tracker_db}" WITH (FORCE)'))
    admin.dispose()


def test_tracker_store_on_postgresql_and_lock_store_on_redis(production_env: str) -> None:
    endpoints = AvailableEndpoints.read_endpoints(str(ROOT / "endpoints.production.yml"))
    domain = Domain.load(str(ROOT / "domain.yml"))

    store = TrackerStore.create(endpoints.tracker_store, domain)
    assert isinstance(store, SQLTrackerStore)
    assert store.engine.dialect.name == "postgresql"
    tracker = DialogueStateTracker.from_events(
        "+525550000101", [UserUttered("¡hola! ¿cuánto debo? 🙏"), SlotSet("language", "es")]
    )

    async def round_trip() -> DialogueStateTracker:
        await store.save(tracker)
        return await store.retrieve("+525550000101")

    loaded = asyncio.run(round_trip())
    assert loaded.latest_message.text == "¡hola! ¿cuánto debo? 🙏"
    assert loaded.get_slot("language") == "es"
    store.engine.dispose()

    lock_store = LockStore.create(endpoints.lock_store)
    assert isinstance(lock_store, RedisLockStore)

    first = lock_store.get_or_create_lock("+525550000101")
    ticket = first.issue_ticket(30)
    lock_store.save_lock(first)
    second = LockStore.create(endpoints.lock_store).get_lock("+525550000101")
    # Another replica reading Redis sees the same lock, held by that ticket.
    assert (ticket, second.now_serving, second.is_locked(ticket + 1)) == (0, 0, True)
    lock_store.red.flushdb()
