"""Engines and sessions: created lazily, one engine per process and URL.

The action server forks workers after import, and a forked child must never
reuse its parent's pooled connections, so the engine cache is keyed by the
process id as well as the URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import select
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, InvalidatePoolError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import QueuePool
from sqlalchemy.sql.elements import TextClause

from cobrador.config import settings, switched_on

logger = logging.getLogger(__name__)
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
        connection.exec_driver_sql("BEGIN" if getattr(_begin, "deferred", False) else "BEGIN IMMEDIATE")


# Set while a unit of work runs optimistically (see `optimistic_unit`).
_begin = threading.local()
T = TypeVar("T")


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
            engine = create_engine(url, future=True, pool_size=conf.sql_pool_size, max_overflow=conf.sql_max_overflow)
            _check_on_checkout(engine)
        _engines[key] = engine
        return engine


# A pooled connection idle longer than this is pinged (a round trip) before
# it is used; one idle for less is only looked at (see `_check_on_checkout`).
PING_IF_IDLE_SECONDS = 10.0


def _check_on_checkout(engine: Engine) -> None:
    """Instead of SQLAlchemy's pre-ping (a round trip to the server before
    every unit of work: half of each one-round-trip unit's), a connection
    taken from the pool is checked without one: if the server closed it
    (restarted, or the backend was terminated: it sends an error and closes,
    so the idle socket has something to read) or sent it anything at all
    while idle, it is dropped and a new one made (the pool's other
    connections are looked at as they are taken). Only a connection idle for
    more than `PING_IF_IDLE_SECONDS` is pinged first, for what leaves
    nothing to read (a firewall or NAT that forgot it silently); one that
    fails the ping drops the whole pool, as SQLAlchemy's pre-ping does."""

    @event.listens_for(engine, "checkin")
    def _idle(dbapi_connection, record) -> None:  # noqa: ANN001
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection, record, proxy) -> None:  # noqa: ANN001
        since = record.info.get("idle_since")
        if since is None:  # new: just connected
            return
        if _has_input(dbapi_connection):
            raise DisconnectionError("the server closed or wrote to an idle pooled connection")
        if time.monotonic() - since > PING_IF_IDLE_SECONDS and not engine.dialect.do_ping(dbapi_connection):
            raise InvalidatePoolError("an idle pooled connection did not answer a ping")


def _has_input(dbapi_connection) -> bool:  # noqa: ANN001
    """Whether the connection's socket has anything to read (no wait); a
    connection already closed on this side counts as having something."""
    try:
        descriptor = dbapi_connection.fileno()
    except Exception:  # noqa: BLE001 - psycopg2's InterfaceError: closed
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


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


def _write_conflict(error: OperationalError) -> bool:
    message = str(error.orig).lower()
    return "database is locked" in message or "database table is locked" in message


def optimistic_unit(work: Callable[[Session], T], url: Optional[str] = None) -> T:
    """Runs `work(session)` as one unit of work that usually only reads.

    On SQLite an ordinary unit begins with BEGIN IMMEDIATE and so holds the
    database's one write lock from its first statement to its commit, even if
    it never writes: every such unit waits for, and holds up, every writer (the
    ingest storing messages, other actions). Here it first runs in a deferred
    transaction, a WAL snapshot that takes no lock: a unit that only reads
    never waits. If it does write and another connection wrote since its
    snapshot, SQLite refuses the upgrade ("database is locked"); nothing was
    written, so it is rolled back and `work` runs once more, under BEGIN
    IMMEDIATE, on fresh data. `work` must therefore be safe to run twice: no
    effect outside the session. On PostgreSQL it is one ordinary unit.
    """
    engine = get_engine(url)
    if engine.dialect.name != "sqlite":
        with session_scope(url) as session:
            return work(session)
    previous = getattr(_begin, "deferred", False)
    _begin.deferred = True
    try:
        with session_scope(url) as session:
            return work(session)
    except OperationalError as error:
        if not _write_conflict(error):
            raise
    finally:
        _begin.deferred = previous
    with session_scope(url) as session:
        return work(session)


class DirectResult:
    """What a statement run by a `DirectUnit` gave, as much of SQLAlchemy's
    result as the message log's statements use."""

    def __init__(self, cursor) -> None:  # noqa: ANN001 - a DB-API cursor
        self.cursor = cursor
        self.rowcount = cursor.rowcount
        self.lastrowid = getattr(cursor, "lastrowid", None)

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.cursor.fetchall())

    def scalar_one(self):  # noqa: ANN201
        rows = self.cursor.fetchall()
        if len(rows) != 1:
            raise ValueError(f"one row expected, {len(rows)} came")
        return rows[0][0]


class DirectUnit:
    """A unit of work on the pooled DB-API connection itself (`direct_unit`),
    for the message log's statements on every WhatsApp message's path (the
    store, claims, the end of a turn, send outcomes, delivery callbacks). It
    runs SQL text (`sqlalchemy.text`, IN lists expanded as SQLAlchemy does)
    compiled once per dialect, with the values converted by the very bind processors
    SQLAlchemy would use (JSON, dates), so the rows are the same; what it
    skips is the Session's and the Connection's bookkeeping around each
    statement, which cost two to three times the statements themselves. A
    statement's result is read before the next statement runs (they share
    the cursor)."""

    def __init__(
        self,
        engine: Engine,
        cursor,  # noqa: ANN001 - a DB-API cursor
        one_round_trip: bool = False,
        prepared: Optional[set[str]] = None,
    ) -> None:
        self.engine = engine
        self.cursor = cursor
        # PostgreSQL: the names of the statements the connection has prepared
        # (`_prepared`); None: statements go as they are.
        self.prepared = prepared
        self.preparing: list[str] = []  # the statements this unit prepares (their text)
        # `direct_unit(one_round_trip=True)` on PostgreSQL: statements held
        # (`defer`) until the unit's one `execute` or its end, then sent together.
        self.held: Optional[list[bytes]] = [] if one_round_trip else None
        self.sent = False

    def get_bind(self) -> Engine:
        return self.engine

    def defer(self, clause: TextClause, params: dict) -> None:
        """Runs a statement whose result is not read. In a one-round-trip
        unit it is held, to go to the server with the unit's `execute` or at
        its end; otherwise it runs now."""
        if self.held is None:
            self.execute(clause, params)
            return
        if self.sent:
            raise RuntimeError("this unit went to the server in one round trip: nothing can follow it")
        sql, values = self._statement(clause, params)
        self.held.append(self.cursor.mogrify(sql, values))

    def flush(self) -> None:
        """Sends what is held (the end of a one-round-trip unit)."""
        if self.held:
            self.sent = True
            self.cursor.execute(b";".join(self.held))
            self.held = []

    def execute(self, clause: TextClause, params: dict) -> DirectResult:
        if self.held is not None:  # one round trip: what is held, then this, in one go
            self.defer(clause, params)
            self.flush()
            return DirectResult(self.cursor)
        sql, values = self._statement(clause, params)
        self.cursor.execute(sql, values)
        return DirectResult(self.cursor)

    def _statement(self, clause: TextClause, params: dict) -> tuple[str, Any]:
        """What to send for `clause`: the statement itself, or on PostgreSQL
        the EXECUTE of its prepared form (preceded, the first time on this
        connection, by its PREPARE)."""
        sql, values = self._bound(clause, params)
        if self.prepared is None:
            return sql, values
        found = _prepared(sql)
        if found is None:
            return sql, values
        name, body, execute = found
        if name in self.prepared:
            return execute, values
        # Counted as prepared before it goes: if the unit fails, the
        # connection's prepared statements are dropped and the count cleared
        # (`direct_unit`), so it never holds a name the server does not.
        self.prepared.add(name)
        self.preparing.append(sql)
        return f"PREPARE {name} AS {body}; {execute}", values

    def _bound(self, clause: TextClause, params: dict) -> tuple[str, Any]:
        """The SQL of `clause` for this connection and its values (a list for
        a positional paramstyle, a dict for a named one)."""
        sql, names, processors, expanding = _compiled(clause, self.engine.dialect)
        values = {name: processors[name](params[name]) if name in processors else params[name] for name in params}
        for name in expanding:  # an IN list: one placeholder per value, as SQLAlchemy renders it
            items = list(params[name])
            if not items:
                raise ValueError(f"an empty IN list ({name}): nothing to look for")
            if name in processors:
                items = [processors[name](item) for item in items]
            token = f"__[POSTCOMPILE_{name}]"
            if names is not None:
                sql = sql.replace(token, ", ".join("?" * len(items)))
                values[name] = items
            else:
                sql = sql.replace(token, ", ".join(f"%({name}_{n})s" for n in range(len(items))))
                values.update((f"{name}_{n}", item) for n, item in enumerate(items))
        if names is not None:  # positional paramstyle (SQLite's qmark): an IN list's values where it stands
            positional = []
            for name in names:
                if name in expanding:
                    positional.extend(values[name])
                else:
                    positional.append(values[name])
            return sql, positional
        return sql, values


# Per statement (module constants, so their ids stay theirs: each entry
# keeps its statement alive) and dialect.
_compiled_cache: dict[tuple[int, str], tuple[TextClause, str, Optional[list[str]], dict[str, Callable], set[str]]] = {}


def _compiled(clause: TextClause, dialect) -> tuple[str, Optional[list[str]], dict[str, Callable], set[str]]:  # noqa: ANN001
    """The SQL of `clause` for `dialect`, its parameters' order (None for a
    named paramstyle), their bind processors (an IN list's: of each value)
    and the names of its IN lists, made once."""
    key = (id(clause), dialect.name)
    found = _compiled_cache.get(key)
    if found is None:
        compiled = clause.compile(dialect=dialect)
        processors = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                processors[name] = processor
        expanding = {name for name, bind in compiled.binds.items() if bind.expanding}
        names = list(compiled.positiontup) if compiled.positional else None
        found = _compiled_cache[key] = (clause, compiled.string, names, processors, expanding)
    return found[1:]


# PostgreSQL parses and plans every statement it is sent as text anew: for
# the message log's statements that is half the server's work (pgbench, one
# client: storing a message 0.24 ms a transaction sent as text, 0.13 ms
# prepared; the end of a turn 0.31 against 0.13). So a `DirectUnit` sends
# each of its statements as the EXECUTE of a prepared statement of its
# connection, prepared (PREPARE, in the same round trip) the first time the
# connection runs it. A prepared statement lives as long as its session, and
# is not undone by a rollback; a pooler that hands one client's transactions
# to different server sessions (PgBouncer's transaction mode) breaks that:
# there, set COBRADOR_PG_PREPARE=off. Statements are named after a digest of
# their text; at most `PREPARED_MAX` different ones per process (IN lists
# of every length make new texts), after which the others go as text.
PREPARED_MAX = 1000
_prepared_forms: dict[str, Optional[tuple[str, str, str]]] = {}
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _prepared(sql: str) -> Optional[tuple[str, str, str]]:
    """For `sql` in psycopg2's named paramstyle: its statement's name, the
    PREPARE's body ($1, $2 ... in the order the parameters first appear) and
    the EXECUTE (with the same named parameters); None to send it as text."""
    found = _prepared_forms.get(sql)
    if found is None and sql not in _prepared_forms:
        if len(_prepared_forms) >= PREPARED_MAX:
            return None
        order: list[str] = []

        def number(match: re.Match) -> str:
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = _PLACEHOLDER.sub(number, sql)  # a literal % stays %%: the PREPARE goes through psycopg2's formatting
        name = "cobrador_" + hashlib.sha1(body.encode("utf-8")).hexdigest()[:20]  # noqa: S324 - a name, not a secret
        arguments = ", ".join(f"%({parameter})s" for parameter in order)
        found = _prepared_forms[sql] = (name, body, f"EXECUTE {name}({arguments})" if order else f"EXECUTE {name}")
    return found


def prepared_statements_on() -> bool:
    """Whether units on PostgreSQL use prepared statements (COBRADOR_PG_PREPARE, on by default)."""
    return switched_on("COBRADOR_PG_PREPARE")


_PREPARED = "cobrador_prepared"
# A PREPARE refused for a parameter whose type the server cannot tell from
# the statement (a bug of the statement's: tests run every one prepared): the
# statement goes as text from then on, and only the unit that found it fails.
_UNPREPARABLE = {"42P18", "42P08"}  # indeterminate_datatype, ambiguous_parameter


@contextmanager
def direct_unit(url: Optional[str] = None, one_round_trip: bool = False) -> Iterator[DirectUnit]:
    """One unit of work like `session_scope` (committed on success, rolled
    back on any error; on SQLite it begins with BEGIN IMMEDIATE), run as a
    `DirectUnit`. A failure of the database comes out as SQLAlchemy's
    exception (`sqlalchemy.exc.DBAPIError` and its kinds), as from a session,
    and a connection the database dropped is not given back to the pool.

    `one_round_trip`: on PostgreSQL the unit goes to the server in one
    round trip, where psycopg2 takes one for each statement plus BEGIN and
    COMMIT: the statements given to `DirectUnit.defer` are held and sent with
    the unit's one `execute` (the only statement whose result is read, the
    last) or at its end, as one query in autocommit, which the server runs
    as one transaction (several statements in one simple query are one): it
    is committed as that query runs, so the `execute` comes last and a
    statement after it is refused. Elsewhere (SQLite) a unit as any other."""
    engine = get_engine(url)
    dialect = engine.dialect
    connection = engine.raw_connection()  # a failure to connect is SQLAlchemy's already
    autocommit = one_round_trip and dialect.name == "postgresql"
    cursor = None
    unit: Optional[DirectUnit] = None
    prepared: Optional[set[str]] = None
    if dialect.name == "postgresql" and prepared_statements_on():
        prepared = connection.info.setdefault(_PREPARED, set())  # as long as the DB-API connection lives
    try:
        if autocommit:
            connection.dbapi_connection.autocommit = True
        cursor = connection.cursor()
        if dialect.name == "sqlite":
            cursor.execute("BEGIN IMMEDIATE")
        unit = DirectUnit(engine, cursor, autocommit, prepared)
        yield unit
        if autocommit:
            unit.flush()
        else:
            connection.commit()
    except dialect.dbapi.Error as error:
        disconnected = dialect.is_disconnect(error, connection.dbapi_connection, cursor)
        _roll_back(connection, disconnected, prepared)
        if unit is not None and unit.preparing and getattr(error, "pgcode", None) in _UNPREPARABLE:
            logger.error("a statement could not be prepared (%s); it goes as text: %s", error, unit.preparing)
            _prepared_forms.update((sql, None) for sql in unit.preparing)
        raise DBAPIError.instance(
            None, None, error, dialect.dbapi.Error, connection_invalidated=disconnected, dialect=dialect
        ) from error
    except BaseException:
        _roll_back(connection, False, prepared)
        raise
    finally:
        if cursor is not None:
            try:
                cursor.close()
            except dialect.dbapi.Error:
                pass
        if autocommit and connection.dbapi_connection is not None and not connection.dbapi_connection.closed:
            connection.dbapi_connection.autocommit = False  # as the pool's other users expect it
        connection.close()  # back to the pool (or gone, if invalidated)


def _roll_back(connection, disconnected: bool, prepared: Optional[set[str]] = None) -> None:  # noqa: ANN001
    """Rolls a failed unit back. On PostgreSQL, with prepared statements,
    the connection's are dropped as well (a rollback keeps them): the unit
    may have prepared some, or failed because one was missing (dropped by
    something else); the connection prepares them again as it needs them."""
    if disconnected:
        connection.invalidate()
        return
    try:
        connection.rollback()
        if prepared:
            prepared.clear()
            cursor = connection.cursor()
            try:
                cursor.execute("DEALLOCATE ALL")
                connection.rollback()  # DEALLOCATE is not undone by it: this ends the transaction it began
            finally:
                cursor.close()
    except Exception:  # noqa: BLE001 - the connection is unusable: not pooled again
        connection.invalidate()
