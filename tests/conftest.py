"""Shared fixtures: a fresh ledger per test on SQLite and on PostgreSQL.

PostgreSQL and Redis are the production setup and are tested for real. On a
machine without them those tests skip with the reason; in CI (`CI=true`) a
missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import pytest
from sqlalchemy import create_engine, text

from cobrador.ledger.db import dispose_engines, get_engine, session_scope
from cobrador.ledger.models import Base
from tests.support import unavailable

os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/cobrador_test")
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")

_postgres_checked: dict[str, str] = {}


def _ensure_postgres_database() -> None:
    """Creates the test database once per run; records why it is unavailable."""
    if "status" in _postgres_checked:
        return
    base, _, name = POSTGRES_URL.rpartition("/")
    try:
        admin = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT", future=True)
        with admin.connect() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        _postgres_checked["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not here"
        _postgres_checked["status"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections see a fresh, empty PostgreSQL schema."""
    _ensure_postgres_database()
    if _postgres_checked["status"] != "ok":
        unavailable("PostgreSQL", _postgres_checked["status"])
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL, future=True)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"
    yield url
    dispose_engines()
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """A URL of a fresh SQLite file."""
    yield f"sqlite:///{tmp_path / 'ledger.db'}"
    dispose_engines()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database of each kind (tests run once per kind)."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def ledger_url(db_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database with the ledger schema, set as `DATABASE_URL`."""
    Base.metadata.create_all(get_engine(db_url))
    monkeypatch.setenv("DATABASE_URL", db_url)
    return db_url


@pytest.fixture
def session(ledger_url: str):
    """A unit of work on a fresh ledger; committed at the end of the test."""
    with session_scope(ledger_url) as session:
        yield session


@pytest.fixture
def redis_url() -> str:
    """A Redis database for tests (db 15), flushed before use."""
    try:
        import redis

        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except Exception as exc:  # noqa: BLE001
        unavailable("Redis", f"{type(exc).__name__}: {exc}")
    return REDIS_URL
