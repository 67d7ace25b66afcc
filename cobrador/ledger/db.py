"""Engines and sessions: created lazily, one engine per process and URL.

The action server forks workers after import, and a forked child must never
reuse its parent's pooled connections, so the engine cache is keyed by the
process id as well as the URL.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool

from cobrador.config import settings

_lock = threading.Lock()
_engines: dict[tuple[int, str], Engine] = {}
_factories: weakref.WeakKeyDictionary[Engine, sessionmaker] = weakref.WeakKeyDictionary()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite opens transactions lazily, at the first write: a unit of work
    # that reads and then writes fails at once with "database is locked" when
    # another connection wrote in between (the busy timeout does not apply to
    # that lock upgrade). So SQLAlchemy drives the transactions itself, and
    # each starts with BEGIN IMMEDIATE: concurrent writers wait their turn
    # (busy_timeout) instead of failing, and SAVEPOINTs work.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets the console read while the bot writes; foreign keys are off
        # by default in SQLite.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # noqa: ANN001
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def get_engine(url: Optional[str] = None) -> Engine:
    """The engine for `url` (default: `DATABASE_URL`) in this process.

    Args:
        url: a SQLAlchemy URL; `None` means the configured database.

    Returns:
        A 2.0-style (`future=True`) engine, created on first use.
    """
    conf = settings()
    url = url or conf.database_url
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            options: dict = {"connect_args": {"check_same_thread": False, "timeout": 10}}
            if parsed.database and parsed.database != ":memory:":
                # SQLAlchemy 1.4 gives file databases a NullPool: a new
                # connection and its PRAGMAs for every unit of work, about
                # 1.5 ms each on this hardware, most of the ingest's cost per
                # message. Pooled connections are safe across threads here
                # (check_same_thread off, one transaction per connection) and
                # never cross a fork (engines are per process).
                options.update(poolclass=QueuePool, pool_size=conf.sql_pool_size, max_overflow=conf.sql_max_overflow)
            engine = create_engine(url, future=True, **options)
            _configure_sqlite(engine)
        else:
            engine = create_engine(
                url,
                future=True,
                pool_size=conf.sql_pool_size,
                max_overflow=conf.sql_max_overflow,
                pool_pre_ping=True,
            )
        _engines[key] = engine
        return engine


def dispose_engines() -> None:
    """Closes every engine of this process (tests, shutdown)."""
    with _lock:
        for (pid, _), engine in list(_engines.items()):
            if pid == os.getpid():
                engine.dispose()
        _engines.clear()


def _factory(engine: Engine) -> sessionmaker:
    # A sessionmaker builds a Session subclass of its own: one per engine,
    # not one per unit of work.
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories.setdefault(engine, sessionmaker(bind=engine, future=True, expire_on_commit=False))
    return factory


@contextmanager
def session_scope(url: Optional[str] = None) -> Iterator[Session]:
    """One unit of work: commits on success, rolls back on any error.

    Args:
        url: database URL; `None` means the configured database.

    Yields:
        A fresh `Session` bound to the process's engine.
    """
    session = _factory(get_engine(url))()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
