"""Fixes to Rasa 3.6.21 itself, applied in every process that loads a Cobrador model.

Rasa imports `cobrador.nlu.classifier` wherever it loads our model (`rasa run`,
`rasa test`, `rasa shell`), and that module calls `apply()`; no launch command
has to change. Each fix keeps Rasa's behaviour and only removes waste.

* **The action server's answer is validated against a schema compiled once.**
  `RemoteAction._validate_action_result` calls `jsonschema.validate`, which
  first checks the *schema* against the JSON Schema 2020-12 meta-schema, on
  every custom action, every turn. Profiled under load (py-spy on the Rasa
  server, 30 concurrent conversations) that meta-schema check was 60% of the
  Rasa process's CPU. The schema is a constant, so it is checked once here and
  every answer is still validated against it, with the same error (and message)
  when the action server sends something malformed.
* **The usual answers skip the schema walk, never the check.** Validating an
  answer against that schema still took a sixth of Rasa's CPU a turn: each
  event is tried against all 23 alternatives of a `oneOf`. An answer whose
  every event is one of the kinds whose whole schema is a few types (a slot
  set, an executed action, a bot message, ...), checked here directly, is
  valid by that schema; any other answer (a user message, entities, anything
  unknown or malformed) is validated by jsonschema exactly as before, with
  its error. The shortcut is installed only for the schema it was written
  against (its digest), so a Rasa whose schema changed validates everything.
* **An event's class is found by its name in a table.** Every event read back
  from the tracker store (the whole conversation, every turn) went through
  `Event.resolve_by_type`, which walks all of `Event`'s subclasses, asking
  `inspect.isabstract` of each, to find the one with that name: 24% of the
  Rasa process's CPU once the fix above was in. The table holds what that walk
  returns (the first class with the name, in the same order); a name it does
  not hold walks the subclasses again, so a class defined later is still found
  and an unknown name fails as before.
* **The SQL tracker store runs its three statements as plain SQL.** Every
  turn, `SQLTrackerStore` reads the session's events back (to rebuild the
  tracker), counts them and appends the new ones (on save). It built each
  query anew through the ORM (the latest-session subquery, its cache key),
  loaded each event as an ORM object of six columns to use its `data` alone,
  counted through a subquery of all those columns, and inserted each event
  through the ORM's unit of work: with the trackers in the SQL store (as
  deployed), half of Rasa's CPU per turn went to the tracker store. The same
  statements (the sender's events from the latest SessionStarted on, in id
  order; their count; one insert of the new events, in order) are now SQL
  text built once and one executemany, on SQLite and PostgreSQL (other
  databases keep Rasa's code): the same rows in, the same events out, in
  about 40 % of the CPU (`bench/tracker_store.py`).
* **Calls to the action server keep their connection.** `EndpointConfig.request`
  made a new aiohttp session, and with it a new TCP connection (and a new
  connection for the action server's Sanic to set up), for every custom
  action, every turn. The calls now share one session per endpoint and event
  loop, with Rasa's headers, token, timeout and errors; an idle connection is
  dropped after `KEEP_IDLE_SECONDS` (2), before a server's keep-alive (5 s in
  Sanic) closes it under a request. An endpoint with a CA file is called
  Rasa's own way.
* **A conversation's lock held by another turn is looked at again soon.** Rasa
  takes a debtor's lock for each turn and, finding it held, looks again a
  whole second later. The WhatsApp ingest sends a turn's replies on before
  Rasa saves the tracker, and the debtor's next message right after; with
  several replicas (the Redis lock store of the production endpoints) that
  next turn can reach another replica while the first still holds the lock
  for its save, a few milliseconds, and it waited the second out (0.98 s in
  tests/deploy/test_lock_wait.py). Now the looks are `LOCK_FIRST_LOOK_SECONDS`
  (10 ms) apart, doubling up to the caller's wait (Rasa's second), so a long
  turn costs the lock store no more lookups than before; the tickets' order
  and the error when a lock is gone are Rasa's.
* **A Redis lock is changed in one transaction.** Rasa's Redis lock store
  reads a conversation's lock, changes it (a ticket issued, one let go) and
  writes it back in separate commands, so two replicas changing one lock at
  once undid each other: a replica letting go of a debtor's lock after its
  save, while another took a ticket for the debtor's next turn (as above),
  deleted the new ticket with the lock (that turn failed with LockError) or
  wrote the old ticket back (that turn waited for it to expire, a minute):
  163–166 of 200 such pairs in tests/deploy/test_lock_wait.py. Issuing,
  letting go and dropping expired tickets are now each one script that Redis
  runs whole (`_LOCK_SCRIPT`: Rasa's ticket rules, key and format, so a
  replica on stock code reads what it writes and the other way round), one
  round trip instead of two to four: a turn's lock and release took 0.48 ms
  instead of 0.91–1.07 (Redis on this machine). The script that issues a
  turn's ticket also returns the lock as it wrote it, the look Rasa took
  next with a GET of its own: a turn's lock and release are two round trips,
  not three.
* **On PostgreSQL, a turn's tracker read is one round trip and its save one.**
  Rasa reads in a transaction (BEGIN, the SELECT, ROLLBACK) and saves in
  another (BEGIN, the count, the insert, COMMIT). A single statement is a
  transaction of its own, and the count was no more bound to the insert in
  Rasa's transaction (READ COMMITTED locks nothing it reads; the
  conversation's lock keeps other saves away), so they run on a pool of
  autocommit connections of their own: one round trip to read, one to save
  (the insert of every new event is one statement, psycopg2's
  execute_values; over `ONE_INSERT_ROWS` events at once, Rasa's transaction).
  The count, which tells the save which of the tracker's events the store
  holds already, is skipped when the store itself read the tracker or last
  saved it: it knows then (`STORED_EVENTS`: how many of the tracker's events,
  from its first, the store holds; under the conversation's lock nobody else
  adds any). A tracker made otherwise (a new conversation, a copy, one
  rebuilt from events) is counted as before, and so is one that keeps only
  its last events (`max_event_history`). (Counting also went wrong for a
  tracker that began a new session and was saved twice: the second count
  starts at the new SessionStarted, while the tracker's events start at the
  old one, so old events were appended again; Rasa's turns save once, but a
  tracker the store knows no longer can.) Not when Rasa is to check a
  `POSTGRESQL_SCHEMA` in every session.
* **A store on another host is waited for on a thread.** Rasa calls its
  tracker store (SQLAlchemy) and its Redis lock store (redis-py) from its one
  event loop, synchronously: every round trip of a turn stopped every other
  turn in flight. With PostgreSQL and Redis a round trip away, as in
  production, that was most of a turn's time on the loop. Those calls now
  run on a thread (`asyncio.to_thread`) when the store is on another host,
  and on the loop when it is on this one (a thread's hand-over costs more
  than a local round trip): `COBRADOR_STORES_OFF_LOOP` (`auto`, `yes`, `no`).
  A ticket's release still happens if the turn is cancelled meanwhile: the
  call, once on its thread, runs to its end.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

T = TypeVar("T")

_applied = False


def apply() -> None:
    """Installs the fixes (idempotent)."""
    global _applied
    if _applied:
        return
    from jsonschema import exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    kind = validators.validator_for(schema)
    kind.check_schema(schema)  # what jsonschema.validate did on every call, now once
    validator = kind(schema)

    known = _digest(schema) == SCHEMA_DIGEST

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        if known and plainly_valid(result):
            return True
        error = exceptions.best_match(validator.iter_errors(result))  # as jsonschema.validate
        if error is not None:
            error.message += (
                f". Failed to validate Action server response from API, "
                f"make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise error
        return True

    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
    _event_classes_by_name()
    _tracker_store_as_sql()
    _endpoint_connections_kept()
    _lock_looked_at_sooner()
    _redis_locks_changed_atomically()
    _applied = True


# The digest of RemoteAction.action_response_format_spec() in Rasa 3.6.21,
# the schema `plainly_valid` was written against.
SCHEMA_DIGEST = "fb650e99afd82f1c650004526571ec7bc95a81aa36aaf6a899a6e9e212b166be"

# Events whose alternative in the schema's oneOf is their name alone.
_NAME_ONLY = frozenset(
    {
        "user_featurization", "cancel_reminder", "reminder", "action_execution_rejected", "form_validation",
        "loop_interrupted", "form", "active_loop", "reset_slots", "resume", "pause", "followup", "export",
        "restart", "undo", "rewind", "bot", "session_started", "agent",
    }
)  # fmt: skip
_ACTION_FIELDS = (("policy", str), ("name", str), ("action_text", str))


def _digest(schema: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(schema, sort_keys=True).encode()).hexdigest()


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)  # JSON Schema: a bool is no number


def _plain_event(event: Any) -> bool:
    """True only if `event` is valid by the schema's EVENT_SCHEMA, checked by
    hand for the kinds whose alternative is a few types; False for all else
    (which is then validated by the schema itself)."""
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return False
    if "timestamp" in event and event["timestamp"] is not None and not _number(event["timestamp"]):
        return False
    if "metadata" in event and event["metadata"] is not None and not isinstance(event["metadata"], dict):
        return False
    # The alternatives' "event" consts differ, so exactly one can match: this one.
    kind = event["event"]
    if kind in _NAME_ONLY:
        return True
    if kind == "slot":
        return isinstance(event.get("name"), str) and "value" in event
    if kind == "action":
        for field, kind_of in _ACTION_FIELDS:
            if event.get(field) is not None and not isinstance(event[field], kind_of):
                return False
        if event.get("confidence") is not None and not _number(event["confidence"]):
            return False
        return "hide_rule_turn" not in event or isinstance(event["hide_rule_turn"], bool)
    return False  # a user message, entities, or an unknown kind: the schema decides


def plainly_valid(result: Any) -> bool:
    """True only if the action server's answer is valid by Rasa's schema
    (objects, an `events` array of plain events, a `responses` array of
    objects); False means "ask the schema", not "invalid"."""
    if not isinstance(result, dict):
        return False
    events = result.get("events", [])
    responses = result.get("responses", [])
    return (
        isinstance(events, list)
        and isinstance(responses, list)
        and all(isinstance(response, dict) for response in responses)
        and all(_plain_event(event) for event in events)
    )


def _event_classes_by_name() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    stock = Event.resolve_by_type
    table: dict[str, type] = {}

    def resolve_by_type(type_name: str, default: Optional[type] = None) -> Optional[type]:
        found = table.get(type_name)
        if found is not None:
            return found
        for kind in all_subclasses(Event):  # the stock walk, kept in a table
            table.setdefault(kind.type_name, kind)
        if type_name in table:
            return table[type_name]
        return stock(type_name, default)  # "topic", the default, or Rasa's ValueError

    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign]


# At most this many events are appended in one INSERT without a transaction
# around it: SQLAlchemy 1.4 hands psycopg2's execute_values pages of 1,000
# rows, and more would be several statements.
ONE_INSERT_ROWS = 1000

# The attribute a tracker the SQL store read or saved carries: how many of
# its events, from its first, the store holds (see `_tracker_store_as_sql`).
STORED_EVENTS = "_cobrador_stored_events"

# Where Rasa's tracker and lock stores do their I/O: "auto" (on a thread when
# the store is on another host, on the event loop when it is on this one),
# "yes" (always on a thread) or "no" (always on the loop, as Rasa does).
STORES_OFF_LOOP = "COBRADOR_STORES_OFF_LOOP"
_LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def io_off_loop(host: Optional[str]) -> bool:
    """Whether a store at `host` (None: a file, or a Unix socket) is called
    from a thread rather than from Rasa's event loop (`STORES_OFF_LOOP`)."""
    import os

    setting = os.environ.get(STORES_OFF_LOOP, "auto").strip().lower()
    if setting in ("yes", "true", "1", "on"):
        return True
    if setting in ("no", "false", "0", "off"):
        return False
    return host is not None and host.lower() not in _LOCAL_HOSTS and not host.startswith("/")


async def off_loop(store: Any, host: Optional[str], function: Callable[..., T], *args: Any) -> T:
    """`function(*args)`, the I/O of `store` (at `host`): on a thread if it is
    to be off the loop (`io_off_loop`, decided once per store), else right here."""
    import asyncio

    off = getattr(store, "_cobrador_off_loop", None)
    if off is None:
        off = store._cobrador_off_loop = io_off_loop(host)
    if off:
        return await asyncio.to_thread(function, *args)
    return function(*args)


async def lock_io(store: Any, function: Callable[..., T], *args: Any) -> T:
    """A call of a lock store that goes to Redis (`off_loop`); any other
    store's (in memory) runs right here."""
    from rasa.core.lock_store import RedisLockStore

    if not isinstance(store, RedisLockStore):
        return function(*args)
    return await off_loop(store, store.red.connection_pool.connection_kwargs.get("host"), function, *args)


def _tracker_store_as_sql() -> None:
    import itertools
    import json
    import os

    import sqlalchemy as sa
    from rasa.core.constants import POSTGRESQL_SCHEMA
    from rasa.core.tracker_store import SQLTrackerStore, create_engine_kwargs
    from rasa.shared.core.events import SessionStarted
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.shared.nlu.constants import INTENT_NAME_KEY

    table = SQLTrackerStore.SQLEvent.__table__
    # Rasa's `_event_query` for the latest session, in SQL: the sender's events
    # from the latest SessionStarted on (all of them if there is none).
    latest = (
        f"FROM {table.name}, (SELECT max(timestamp) AS session_start FROM {table.name}"  # noqa: S608 - constants
        f" WHERE sender_id = :sender AND type_name = '{SessionStarted.type_name}') AS latest"
        f" WHERE {table.name}.sender_id = :sender"
        f" AND ({table.name}.timestamp >= latest.session_start OR latest.session_start IS NULL)"
    )
    read_latest = sa.text(f"SELECT {table.name}.data {latest} ORDER BY {table.name}.id")
    read_all = sa.text(f"SELECT data FROM {table.name} WHERE sender_id = :sender ORDER BY id")  # noqa: S608
    count_latest = sa.text(f"SELECT count({table.name}.id) {latest}")
    insert = table.insert()
    stock_retrieve, stock_additional_events, stock_save = (
        SQLTrackerStore._retrieve, SQLTrackerStore._additional_events, SQLTrackerStore.save,
    )  # fmt: skip

    def ours(store: SQLTrackerStore) -> bool:
        return store.engine.dialect.name in ("sqlite", "postgresql")  # the SQL above is theirs; others: Rasa's

    def autocommit(store: SQLTrackerStore) -> Any:
        # Where each statement runs on its own (decided once per store): on
        # PostgreSQL, unless Rasa is to check a schema in each session first,
        # a pool of its own, made as Rasa makes the store's (a connection that
        # went back to Rasa's pool after autocommit would cost a round trip to
        # set its isolation back); otherwise None, Rasa's sessions.
        if not hasattr(store, "_cobrador_autocommit"):
            url, found = store.engine.url, None
            if store.engine.dialect.name == "postgresql" and not os.environ.get(POSTGRESQL_SCHEMA):
                found = sa.create_engine(url, isolation_level="AUTOCOMMIT", **create_engine_kwargs(url))
            store._cobrador_autocommit = found
        return store._cobrador_autocommit

    async def _retrieve(
        self: SQLTrackerStore, sender_id: str, fetch_events_from_all_sessions: bool
    ) -> Optional[DialogueStateTracker]:
        if not ours(self):
            return await stock_retrieve(self, sender_id, fetch_events_from_all_sessions)
        query = read_all if fetch_events_from_all_sessions else read_latest
        events = await off_loop(self, self.engine.url.host, read_events, self, query, sender_id)
        if self.domain and len(events) > 0:
            tracker = DialogueStateTracker.from_dict(sender_id, events, self.domain.slots)
            setattr(tracker, STORED_EVENTS, len(events))  # (a tracker keeping only its last ones: `known_stored`)
            return tracker
        return None

    def read_events(self: SQLTrackerStore, query: Any, sender_id: str) -> list:
        engine = autocommit(self)
        if engine is not None:  # the one SELECT, no BEGIN before it nor ROLLBACK after
            with engine.connect() as connection:
                return [json.loads(data) for (data,) in connection.execute(query, {"sender": sender_id})]
        with self.session_scope() as session:
            return [json.loads(data) for (data,) in session.execute(query, {"sender": sender_id})]

    def _additional_events(self: SQLTrackerStore, session: Any, tracker: DialogueStateTracker) -> Any:
        if not ours(self):
            return stock_additional_events(self, session, tracker)
        stored = known_stored(tracker)
        if stored is None:
            stored = session.execute(count_latest, {"sender": tracker.sender_id}).scalar()
        return itertools.islice(tracker.events, stored, len(tracker.events))

    async def save(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        if not ours(self):
            return await stock_save(self, tracker)
        await self.stream_events(tracker)
        await off_loop(self, self.engine.url.host, write_events, self, tracker)

    def rows_of(events: Any, sender_id: str) -> list[dict[str, Any]]:
        rows = []
        for event in events:
            data = event.as_dict()
            rows.append(
                {
                    "sender_id": sender_id,
                    "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": data.get("parse_data", {}).get("intent", {}).get(INTENT_NAME_KEY),
                    "action_name": data.get("name"),
                    "data": json.dumps(data),
                }
            )
        return rows

    def known_stored(tracker: DialogueStateTracker) -> Optional[int]:
        """How many of the tracker's events (from its first) the store holds,
        if the store read or saved this tracker; None: they are to be counted."""
        known = getattr(tracker, STORED_EVENTS, None)
        if not isinstance(known, int) or tracker.events.maxlen is not None or not 0 <= known <= len(tracker.events):
            return None
        return known

    def write_events(self: SQLTrackerStore, tracker: DialogueStateTracker) -> None:
        engine = autocommit(self)
        if engine is not None:
            # One INSERT of every new event (psycopg2's execute_values: one
            # statement, so all or none), its own transaction, after the count
            # of those stored only when the store did not read or save this
            # tracker itself: one round trip (or two) instead of four. The
            # count and the insert were no more bound together in Rasa's
            # transaction (READ COMMITTED locks nothing read); the
            # conversation's lock keeps other saves of this tracker away.
            with engine.connect() as connection:
                stored = known_stored(tracker)
                if stored is None:
                    stored = connection.execute(count_latest, {"sender": tracker.sender_id}).scalar()
                rows = rows_of(itertools.islice(tracker.events, stored, None), tracker.sender_id)
                if len(rows) <= ONE_INSERT_ROWS:
                    if rows:
                        connection.execute(insert, rows)
                    setattr(tracker, STORED_EVENTS, len(tracker.events))
                    return
        with self.session_scope() as session:  # SQLite (on this machine: no round trips); or many events at once
            rows = rows_of(self._additional_events(session, tracker), tracker.sender_id)
            if rows:
                session.execute(insert, rows)
            session.commit()
        setattr(tracker, STORED_EVENTS, len(tracker.events))

    SQLTrackerStore._retrieve = _retrieve  # type: ignore[method-assign]
    SQLTrackerStore._additional_events = _additional_events  # type: ignore[method-assign]
    SQLTrackerStore.save = save  # type: ignore[method-assign]


# Seconds an idle connection to an endpoint is kept: less than the servers'
# own keep-alive (Sanic, which the action server runs on, closes after 5 s;
# proxies later), so the client drops a connection before the server does
# and a request never goes out on one the server is closing.
KEEP_IDLE_SECONDS = 2.0


def _endpoint_connections_kept() -> None:
    import asyncio
    import atexit

    import aiohttp
    from rasa.utils.endpoints import ClientResponseError, EndpointConfig, concat_url

    stock_request = EndpointConfig.request
    # By the ids of the endpoint and the loop; the entry holds both (the loop
    # through its session), so neither id is reused while it is here.
    kept: dict[tuple[int, int], tuple[EndpointConfig, aiohttp.ClientSession]] = {}

    def session_of(config: EndpointConfig) -> aiohttp.ClientSession:
        """The endpoint's session on the running loop, made once (Rasa's own
        settings: headers, basic auth, timeout) with a connector that keeps
        idle connections `KEEP_IDLE_SECONDS`."""
        loop = asyncio.get_running_loop()
        key = (id(config), id(loop))
        found = kept.get(key)
        if found is not None and not found[1].closed:
            return found[1]
        for gone in [k for k, (_, session) in kept.items() if session._loop.is_closed()]:  # loops that ended
            shut(kept.pop(gone)[1])
        stock = config.session()  # Rasa's settings, read off the session it would make
        session = aiohttp.ClientSession(
            headers=stock.headers, auth=stock.auth, timeout=stock.timeout,
            connector=aiohttp.TCPConnector(keepalive_timeout=KEEP_IDLE_SECONDS),
        )  # fmt: skip
        stock._connector.close()  # made but never used: nothing to wait for
        kept[key] = (config, session)
        return session

    async def request(
        self: EndpointConfig,
        method: str = "post",
        subpath: Optional[str] = None,
        content_type: Optional[str] = "application/json",
        compress: bool = False,
        **kwargs: Any,
    ) -> Optional[Any]:
        if self.cafile:  # Rasa's own way, certificate and all
            return await stock_request(self, method, subpath, content_type, compress, **kwargs)
        headers = {"Content-Type": content_type} if content_type else {}
        headers.update(kwargs.pop("headers", {}))
        headers.update(self.headers or {})
        async with session_of(self).request(
            method,
            concat_url(self.url, subpath),
            headers=headers,
            params=self.combine_parameters(kwargs),
            compress=compress,
            ssl=None,
            **kwargs,
        ) as response:
            if response.status >= 400:
                raise ClientResponseError(response.status, response.reason, await response.content.read())
            try:
                return await response.json()
            except aiohttp.ContentTypeError:
                return None

    def shut(session: aiohttp.ClientSession) -> None:
        """Closes a kept session's connections at once (its loop may be gone)."""
        try:
            if session._connector is not None:
                session._connector.close()
        except Exception:  # noqa: BLE001, S110 - what is left goes with the process
            pass

    @atexit.register
    def _close() -> None:  # the process ends: its connections go with it, without a warning each
        for _, session in kept.values():
            shut(session)

    EndpointConfig.request = request  # type: ignore[method-assign]


# Seconds before a turn looks again at its conversation's lock, held by
# another turn; each look doubles it, up to Rasa's own wait (a second).
LOCK_FIRST_LOOK_SECONDS = 0.01


def _lock_looked_at_sooner() -> None:
    import asyncio
    import logging

    from rasa.core.lock_store import LockError, LockStore, TicketLock

    logger = logging.getLogger("rasa.core.lock_store")

    async def _acquire_lock(
        self: LockStore, conversation_id: str, ticket: int, wait_time_in_seconds: float
    ) -> TicketLock:
        delay = min(LOCK_FIRST_LOOK_SECONDS, wait_time_in_seconds)
        while True:
            lock = await lock_io(self, self.get_lock, conversation_id)  # looked up each time: it may have expired
            if not lock:
                break
            if not lock.is_locked(ticket):
                return lock
            logger.debug("Lock for conversation '%s' held; looking again in %s s.", conversation_id, delay)
            await asyncio.sleep(delay)
            delay = min(2 * delay, wait_time_in_seconds)
            await lock_io(self, self.update_lock, conversation_id)
        raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")

    LockStore._acquire_lock = _acquire_lock  # type: ignore[method-assign]


# One conversation's lock changed in Redis as one script, so no other client's
# change comes between reading and writing it. The lock is what Rasa's
# TicketLock.dumps() writes: {"conversation_id": ..., "tickets": [ticket, ...]},
# each ticket itself JSON, {"number": n, "expires": unix time}; a ticket has
# expired once the time (the caller's clock, as in Rasa) is past `expires`.
# ARGV: the change ("issue", "issue_look", "let_go" or "expire"), the time,
# the conversation's id, and the lifetime of a ticket to issue or the number
# of the one to let go. Returns the number issued (or 0); "issue_look" the
# number and the lock as written, the first look at it that Rasa's
# `LockStore.lock` takes right after issuing, without another round trip.
_LOCK_SCRIPT = """
local change, now, conversation = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local raw = redis.call('GET', KEYS[1])
local issue = change == 'issue' or change == 'issue_look'
if not raw and not issue then return 0 end
local tickets = {}
if raw then
  for _, text in ipairs(cjson.decode(raw)['tickets'] or {}) do
    local ticket = cjson.decode(text)
    if not (now > tonumber(ticket['expires'])) then table.insert(tickets, ticket) end
  end
end
local result = 0
if issue then
  local number = 0
  if #tickets > 0 then number = tickets[#tickets]['number'] + 1 end
  table.insert(tickets, {number = number, expires = now + tonumber(ARGV[4])})
  result = number
elseif change == 'let_go' then
  local kept = {}
  for _, ticket in ipairs(tickets) do
    if ticket['number'] ~= tonumber(ARGV[4]) then table.insert(kept, ticket) end
  end
  tickets = kept
  if #tickets == 0 then redis.call('DEL', KEYS[1]) return 0 end
end
local texts = {}
for _, ticket in ipairs(tickets) do
  local text = string.format('{"number": %d, "expires": %.17g}', ticket['number'], ticket['expires'])
  table.insert(texts, cjson.encode(text))
end
local lock = '{"conversation_id": ' .. cjson.encode(conversation)
lock = lock .. ', "tickets": [' .. table.concat(texts, ', ') .. ']}'
redis.call('SET', KEYS[1], lock)
if change == 'issue_look' then return {result, lock} end
return result
"""


def _redis_locks_changed_atomically() -> None:
    import contextlib
    import json
    import time
    from typing import AsyncIterator

    from rasa.core.lock import TicketLock
    from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore

    def script(store: RedisLockStore) -> Any:
        found = getattr(store, "_cobrador_lock_script", None)
        if found is None:
            found = store._cobrador_lock_script = store.red.register_script(_LOCK_SCRIPT)
        return found

    def change(store: RedisLockStore, conversation_id: str, how: str, value: float) -> Any:
        key = store.key_prefix + conversation_id
        return script(store)(keys=[key], args=[how, repr(time.time()), conversation_id, repr(value)])

    def issue_ticket(self: RedisLockStore, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        try:
            return int(change(self, conversation_id, "issue", float(lock_lifetime)))
        except Exception as error:  # noqa: BLE001 - as Rasa reports it
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def issue_and_look(store: RedisLockStore, conversation_id: str, lock_lifetime: float) -> tuple[int, TicketLock]:
        try:
            number, written = change(store, conversation_id, "issue_look", float(lock_lifetime))
        except Exception as error:  # noqa: BLE001 - as Rasa reports it
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error
        return int(number), TicketLock.from_dict(json.loads(written))

    def cleanup(self: RedisLockStore, conversation_id: str, ticket_number: int) -> None:
        change(self, conversation_id, "let_go", int(ticket_number))  # nobody left waiting: the lock goes

    def update_lock(self: RedisLockStore, conversation_id: str) -> None:
        change(self, conversation_id, "expire", 0)

    @contextlib.asynccontextmanager
    async def lock(
        self: RedisLockStore,
        conversation_id: str,
        lock_lifetime: float = LOCK_LIFETIME,
        wait_time_in_seconds: float = 1.0,
    ) -> AsyncIterator[Any]:
        # Rasa's LockStore.lock, each call to Redis through `lock_io`, the
        # ticket issued and the lock looked at in one. A ticket is let go even
        # if the turn is cancelled meanwhile: the call, once on its thread,
        # runs to its end.
        ticket, lock = await lock_io(self, issue_and_look, self, conversation_id, lock_lifetime)
        try:
            if lock.is_locked(ticket):  # another turn's first: Rasa's wait
                lock = await self._acquire_lock(conversation_id, ticket, wait_time_in_seconds)
            yield lock
        finally:
            await lock_io(self, self.cleanup, conversation_id, ticket)

    RedisLockStore.lock = lock  # type: ignore[method-assign]
    RedisLockStore.issue_ticket = issue_ticket  # type: ignore[method-assign]
    RedisLockStore.cleanup = cleanup  # type: ignore[method-assign]
    RedisLockStore.update_lock = update_lock  # type: ignore[method-assign]
