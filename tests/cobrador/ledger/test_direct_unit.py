"""`direct_unit`: the message log's statements run on the DB-API connection
itself write the very rows a session writes, on SQLite and PostgreSQL; a unit
commits whole or not at all, fails with SQLAlchemy's exceptions, takes
SQLite's write lock up front, and never pools a connection the database dropped."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from cobrador.ledger import messages
from cobrador.ledger.db import direct_unit, get_engine, session_scope
from cobrador.ledger.models import Debtor, Message

PHONES = ["+525550000001", "+15550000002", "+525550000003"]  # the last one is no debtor's


def _debtors(ledger_url: str) -> None:
    with session_scope(ledger_url) as session:
        session.add(Debtor(phone=PHONES[0], name="Ana", language="es", timezone="America/Mexico_City"))
        session.add(Debtor(phone=PHONES[1], name="Bob", language="en", timezone="America/New_York"))


def _log(unit, prefix: str) -> tuple[list[bool], dict[str, str], list[int]]:  # noqa: ANN001
    """The ingest's statements for three inbound messages, a replay and their replies."""
    media = [{"url": "https://api.twilio.com/x/Media/ME1", "content_type": "image/jpeg"}]
    new = [
        messages.record_inbound(unit, f"{prefix}1", PHONES[0], "te pago el viernes ¡gracias! 🙏", [], "processing"),
        messages.record_inbound(unit, f"{prefix}2", PHONES[1], "", media, "received"),
        messages.record_inbound(unit, f"{prefix}3", PHONES[2], "x" * 5000, [], "received"),
        messages.record_inbound(unit, f"{prefix}1", PHONES[0], "a replay", [], "received"),
    ]
    found = messages.languages(unit, PHONES)
    ids = [
        messages.record_outbound(unit, PHONES[0], "Hola, Ana. Le escribe Cobrador.", media=media),
        messages.record_outbound(unit, PHONES[1], "Thank you!", sender="bot", status="sending"),
    ]
    messages.set_inbound_status(unit, f"{prefix}1", "processed")
    return new, found, ids


def _rows(ledger_url: str, prefix: str, ids: list[int]) -> list[tuple]:
    with session_scope(ledger_url) as session:
        inbound = session.scalars(
            select(Message).where(Message.provider_sid.like(f"{prefix}%")).order_by(Message.provider_sid)
        ).all()
        outbound = session.scalars(select(Message).where(Message.id.in_(ids)).order_by(Message.id)).all()
        return [
            (
                m.provider_sid and m.provider_sid.removeprefix(prefix), m.debtor_id, m.phone, m.direction, m.body,
                m.media, m.status, m.sender, m.template_sid, m.created_at.utcoffset(), m.created_at <= m.updated_at,
            )
            for m in [*inbound, *outbound]
        ]  # fmt: skip


def test_a_direct_unit_writes_the_rows_a_session_writes(ledger_url: str) -> None:
    _debtors(ledger_url)
    with session_scope(ledger_url) as session:
        by_session = _log(session, "SMs")
    with direct_unit(ledger_url) as unit:
        directly = _log(unit, "SMd")
    assert directly[0] == by_session[0] == [True, True, True, False]  # the replay changes nothing
    assert directly[1] == by_session[1] == {PHONES[0]: "es", PHONES[1]: "en"}
    assert _rows(ledger_url, "SMd", directly[2]) == _rows(ledger_url, "SMs", by_session[2])
    assert len(_rows(ledger_url, "SMd", directly[2])) == 5
    if ledger_url.startswith("sqlite"):  # stored alike, byte for byte where the values are alike
        db = sqlite3.connect(ledger_url.removeprefix("sqlite:///"))
        shapes = db.execute(
            "SELECT substr(provider_sid, 1, 3), typeof(created_at), length(created_at), media FROM messages"
            " WHERE direction = 'inbound' ORDER BY substr(provider_sid, 4)"
        ).fetchall()
        assert [s[1:] for s in shapes[0::2]] == [s[1:] for s in shapes[1::2]]
        db.close()


def test_in_lists_are_expanded_as_a_session_expands_them(ledger_url: str) -> None:
    _debtors(ledger_url)
    many = [f"+5255600{n:05d}" for n in range(70)] + PHONES
    with session_scope(ledger_url) as session:
        by_session = messages.languages(session, many)
    with direct_unit(ledger_url) as unit:  # an IN list beside other parameters, on either side of them
        assert messages.languages(unit, many) == by_session == {PHONES[0]: "es", PHONES[1]: "en"}
        assert messages.languages(unit, PHONES[:1]) == {PHONES[0]: "es"}
        messages.record_inbound(unit, "SMlist", PHONES[0], "hola")
        assert messages.claim_inbound(unit, "SMlist", messages.INBOUND_PENDING)
    with pytest.raises(ValueError, match="empty IN list"), direct_unit(ledger_url) as unit:
        messages.languages(unit, [])


def test_a_unit_that_fails_leaves_nothing_and_fails_as_sqlalchemy_does(ledger_url: str) -> None:
    _debtors(ledger_url)
    with pytest.raises(RuntimeError), direct_unit(ledger_url) as unit:
        messages.record_inbound(unit, "SMgone", PHONES[0], "hola")
        raise RuntimeError("the caller failed")
    with pytest.raises(IntegrityError), direct_unit(ledger_url) as unit:
        messages.record_inbound(unit, "SMgone2", PHONES[0], "hola")
        unit.execute(text("INSERT INTO debtors (phone) VALUES (:phone)"), {"phone": PHONES[0]})  # NOT NULLs, unique
    with session_scope(ledger_url) as session:
        assert session.scalars(select(Message.provider_sid)).all() == []
    with direct_unit(ledger_url) as unit:  # the pool's connections are fine
        assert messages.record_inbound(unit, "SMgone", PHONES[0], "hola")


def test_on_sqlite_a_direct_unit_holds_the_write_lock_from_its_start(sqlite_url: str) -> None:
    get_engine(sqlite_url)
    with session_scope(sqlite_url) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    other = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
    with direct_unit(sqlite_url):
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # let go at its end
    other.execute("ROLLBACK")
    other.close()


def test_a_database_that_cannot_be_reached_fails_as_sqlalchemy_does(tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(OperationalError), direct_unit("postgresql://postgres@127.0.0.1:1/nothing"):
        pass
    with pytest.raises(OperationalError), direct_unit(f"sqlite:///{tmp_path}"):  # a folder
        pass


def test_a_connection_the_database_dropped_mid_unit_is_not_pooled_again(postgres_url: str) -> None:
    get_engine(postgres_url).dispose()
    admin = create_engine(postgres_url, future=True, isolation_level="AUTOCOMMIT")
    with session_scope(postgres_url) as session:
        session.execute(text("CREATE TABLE t (x INTEGER)"))
    with pytest.raises(DBAPIError) as failure, direct_unit(postgres_url) as unit:
        pid = unit.execute(text("SELECT pg_backend_pid()"), {}).scalar_one()
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        unit.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": 1})
    assert failure.value.connection_invalidated
    with direct_unit(postgres_url) as unit:  # a new connection, not the dead one
        assert unit.execute(text("SELECT pg_backend_pid()"), {}).scalar_one() != pid
        unit.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": 2})
    with session_scope(postgres_url) as session:
        assert session.execute(text("SELECT x FROM t")).scalars().all() == [2]
    admin.dispose()


def test_a_batch_stored_and_finished_in_one_statement_writes_the_rows_of_the_statements_one_by_one(
    ledger_url: str,
) -> None:
    """What the ingest stores for messages that came together, and logs for
    turns that ended together: on PostgreSQL one statement each, the same rows
    as the statements one by one (the replay of a stored MessageSid, and of one
    earlier in the same batch, change nothing; the languages are those of the
    claimed new messages' debtors; the reply ids come back per turn, in order)."""
    _debtors(ledger_url)
    media = [{"url": "https://api.twilio.com/x/Media/ME1", "content_type": "image/jpeg"}]

    def batch(prefix: str) -> list[tuple]:
        return [
            (f"{prefix}1", PHONES[0], "te pago el viernes ¡gracias! 🙏", [], "processing"),
            (f"{prefix}2", PHONES[1], "", media, "processing"),
            (f"{prefix}3", PHONES[2], "x" * 5000, [], "processing"),
            (f"{prefix}1", PHONES[0], "a replay in the same batch", [], "received"),
            (f"{prefix}0", PHONES[0], "a replay of a stored one", [], "processing"),
            (f"{prefix}4", PHONES[1], "not claimed", [], "received"),
        ]

    def turns(prefix: str) -> list[tuple]:
        return [
            (f"{prefix}1", [(PHONES[0], "Hola, Ana.", [], "bot"), (PHONES[0], "Su saldo es $1,200.", media, "bot")]),
            (f"{prefix}2", [(PHONES[1], "Thank you!", [], "agent")]),
            (f"{prefix}3", [(PHONES[2], "¿Con quién hablo?", [], "bot")]),
        ]

    results = {}
    for prefix in ("SMs", "SMd"):
        with session_scope(ledger_url) as session:
            messages.record_inbound(session, f"{prefix}0", PHONES[0], "stored before")
        claimed = [sid for sid, *_, status in batch(prefix) if status == "processing"]
        if prefix == "SMs":  # the statements one by one, in a session
            with session_scope(ledger_url) as session:
                new = [messages.record_inbound(session, *item) for item in batch(prefix)]
                found = messages.languages(session, PHONES)
                ids = []
                for sid, replies in turns(prefix):
                    ids.append([messages.record_outbound(session, p, b, media=m, sender=w) for p, b, m, w in replies])
                    messages.set_inbound_status(session, sid, "processed")
            languages = {sid: found.get(phone) for sid, phone, *_ in batch(prefix)[:3]}
        else:
            with messages.batch_unit(len(batch(prefix)), ledger_url) as unit:
                new, languages = messages.store_inbound_many(unit, batch(prefix), claimed)
            with messages.batch_unit(4, ledger_url) as unit:
                ids = messages.finish_turns_many(unit, turns(prefix))
        results[prefix] = (new, languages, ids)
    assert results["SMd"][0] == results["SMs"][0] == [True, True, True, False, False, True]
    assert results["SMs"][1] == {"SMs1": "es", "SMs2": "en", "SMs3": None}
    assert results["SMd"][1] == {"SMd1": "es", "SMd2": "en", "SMd3": None}  # SMd4 is not claimed
    assert [len(i) for i in results["SMd"][2]] == [2, 1, 1]
    flat = [i for turn in results["SMd"][2] for i in turn]
    assert flat == sorted(flat)
    assert _rows(ledger_url, "SMd", flat) == _rows(ledger_url, "SMs", [i for t in results["SMs"][2] for i in t])
    with session_scope(ledger_url) as session:  # each id is its reply's
        bodies = dict(session.execute(select(Message.id, Message.body).where(Message.id.in_(flat))).all())
    assert [bodies[i] for i in flat] == [body for _, replies in turns("x") for _, body, _, _ in replies]


def test_a_one_round_trip_unit_commits_whole_or_not_at_all_and_refuses_what_would_follow(ledger_url: str) -> None:
    _debtors(ledger_url)
    postgres = ledger_url.startswith("postgresql")
    with session_scope(ledger_url) as session:
        ids = [messages.record_outbound(session, PHONES[0], "Hola", status="sending")]
    with direct_unit(ledger_url, one_round_trip=True) as unit:  # held, then sent with the one statement read
        messages.mark_outbound(unit, ids[0], "queued", provider_sid="SMheld")  # (SQLite: as in any unit)
        if postgres:
            assert unit.held  # not sent yet
        assert messages.record_inbound(unit, "SMone", PHONES[0], "hola")
        if postgres:
            with pytest.raises(RuntimeError, match="one round trip"):
                messages.record_inbound(unit, "SMtwo", PHONES[0], "hola")
            with pytest.raises(RuntimeError, match="one round trip"):
                messages.mark_outbound(unit, ids[0], "failed")
    # (on PostgreSQL the refusals above came after the unit's round trip: it committed)
    assert _row_status(ledger_url, "SMheld") == "queued" and _row_status(ledger_url, "SMone") == "received"
    with pytest.raises(IntegrityError), direct_unit(ledger_url, one_round_trip=True) as unit:
        messages.mark_outbound(unit, ids[0], "sent")  # held
        unit.defer(text("INSERT INTO debtors (phone) VALUES (:phone)"), {"phone": PHONES[0]})  # NOT NULLs, unique
    assert _row_status(ledger_url, "SMheld") == "queued"  # the whole round trip is one transaction
    with pytest.raises(IntegrityError), messages.batch_unit(2, ledger_url) as unit:  # the second row breaks NOT NULL
        messages.store_inbound_many(unit, [("SMok", PHONES[0], "hola", [], "received"), ("SMbad", None, "", [], "x")])
    with pytest.raises(RuntimeError), direct_unit(ledger_url) as unit:  # the pooled connections commit at the end
        messages.record_inbound(unit, "SMlater", PHONES[0], "hola")
        raise RuntimeError("the caller failed")
    with session_scope(ledger_url) as session:
        assert not {"SMok", "SMbad", "SMlater"} & set(session.scalars(select(Message.provider_sid)).all())


def _row_status(ledger_url: str, sid: str) -> str:
    with session_scope(ledger_url) as session:
        return session.scalars(select(Message.status).where(Message.provider_sid == sid)).one()


def _backend(url: str, unit=direct_unit) -> int:  # noqa: ANN001
    with unit(url) as session:
        return session.execute(text("SELECT pg_backend_pid()"), {}).scalar_one()


def test_a_pooled_connection_whose_backend_is_gone_is_replaced_before_use_without_a_ping(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without SQLAlchemy's pre-ping (a round trip before every unit), a
    connection the server closed while it sat in the pool (a restart, a
    terminated backend) is still never handed out: the next unit, through a
    session or directly, runs on a new one, and no ping went to the server."""
    get_engine(postgres_url).dispose()
    pings = []
    dialect = type(get_engine(postgres_url).dialect)
    monkeypatch.setattr(dialect, "do_ping", lambda self, connection: pings.append(connection) or True)
    admin = create_engine(postgres_url, future=True, isolation_level="AUTOCOMMIT")
    for unit in (direct_unit, session_scope):
        first = _backend(postgres_url, unit)
        assert _backend(postgres_url, unit) == first  # pooled, warm: used as it is
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            connection.execute(text("SELECT pg_sleep(0.2)"))  # the FATAL message and the close reach the client
        assert _backend(postgres_url, unit) != first
    assert pings == []
    admin.dispose()


def test_a_connection_idle_for_long_is_pinged_and_one_that_fails_the_ping_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What leaves nothing to read (a firewall that forgot the connection
    silently) is caught by a ping, sent only after `PING_IF_IDLE_SECONDS`."""
    from cobrador.ledger import db

    get_engine(postgres_url).dispose()
    first = _backend(postgres_url)
    monkeypatch.setattr(db, "_has_input", lambda connection: False)  # as if the socket told nothing
    admin = create_engine(postgres_url, future=True, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    monkeypatch.setattr(db, "PING_IF_IDLE_SECONDS", 0.0)
    second = _backend(postgres_url)  # pinged, found dead, replaced
    assert second != first
    monkeypatch.setattr(db, "PING_IF_IDLE_SECONDS", 3600.0)
    assert _backend(postgres_url) == second  # not pinged, fine
    admin.dispose()


def test_a_pooled_connection_closed_on_this_side_is_replaced(postgres_url: str) -> None:
    get_engine(postgres_url).dispose()
    with direct_unit(postgres_url) as unit:
        first = unit.execute(text("SELECT pg_backend_pid()"), {}).scalar_one()
        pooled = unit.cursor.connection
    pooled.close()  # closed by psycopg2 while in the pool, which does not know
    assert _backend(postgres_url) != first


def _prepared_here(unit) -> dict[str, int]:  # noqa: ANN001
    """The statements the unit's connection has prepared, and how often each ran."""
    unit.cursor.execute(
        "SELECT name, generic_plans + custom_plans FROM pg_prepared_statements WHERE name LIKE 'cobrador%%'"
    )
    return dict(unit.cursor.fetchall())


def _store(url: str, sid: str) -> None:
    with messages.batch_unit(1, url) as unit:
        assert messages.store_inbound_many(unit, [(sid, PHONES[0], "hola", [], "received")]) == ([True], {})


def _pg_ledger(postgres_url: str) -> str:
    from cobrador.ledger.models import Base

    Base.metadata.create_all(get_engine(postgres_url))
    get_engine(postgres_url).dispose()  # one connection, new
    _debtors(postgres_url)
    return postgres_url


def test_on_postgresql_a_units_statements_are_prepared_once_per_connection(postgres_url: str) -> None:
    """Each statement is prepared the first time a connection runs it, then
    executed as prepared: the server parses and plans it once, not every time."""
    ledger_url = _pg_ledger(postgres_url)
    for n in range(3):
        _store(ledger_url, f"SMp{n}")
    with direct_unit(ledger_url) as unit:
        messages.set_inbound_status(unit, "SMp0", "processed")
        ran = _prepared_here(unit)
    # The store (one statement for one message) and the status: each prepared once, the store run three times.
    assert sorted(ran.values()) == [1, 3]
    with direct_unit(ledger_url) as unit:
        assert unit.execute(text("SELECT count(*) FROM messages WHERE status = 'processed'"), {}).scalar_one() == 1
        assert sorted(_prepared_here(unit).values()) == [1, 1, 3]


def test_a_failed_unit_drops_the_connections_prepared_statements_and_the_next_prepares_again(
    postgres_url: str,
) -> None:
    """A rollback keeps what was prepared, so the connection's prepared
    statements are dropped with it (whether the unit failed before or after
    its PREPARE went); the connection's next unit prepares what it needs. One
    dropped behind the unit's back fails that unit only."""
    get_engine(postgres_url).dispose()
    with session_scope(postgres_url) as session:
        session.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    insert = text("INSERT INTO t (x) VALUES (:x)")
    with direct_unit(postgres_url) as unit:
        unit.execute(insert, {"x": 1})
        pid = unit.execute(text("SELECT pg_backend_pid()"), {}).scalar_one()
    with pytest.raises(IntegrityError), direct_unit(postgres_url) as unit:
        unit.execute(insert, {"x": 2})
        unit.execute(insert, {"x": 1})  # taken
    with pytest.raises(RuntimeError), direct_unit(postgres_url) as unit:
        unit.execute(insert, {"x": 3})
        raise RuntimeError("the caller failed")
    with direct_unit(postgres_url) as unit:
        assert _prepared_here(unit) == {}
        unit.execute(insert, {"x": 4})
        assert unit.execute(text("SELECT pg_backend_pid()"), {}).scalar_one() == pid  # the same connection
        unit.cursor.execute("DEALLOCATE ALL")  # as a pooler that hands the session to another client would
    with pytest.raises(DBAPIError, match="does not exist"), direct_unit(postgres_url) as unit:
        unit.execute(insert, {"x": 5})
    with direct_unit(postgres_url) as unit:
        unit.execute(insert, {"x": 6})
    # A one-round-trip unit (autocommit: its rollback is no transaction's) likewise.
    with pytest.raises(IntegrityError), direct_unit(postgres_url, one_round_trip=True) as unit:
        unit.defer(insert, {"x": 1})
    with direct_unit(postgres_url) as unit:
        assert _prepared_here(unit) == {}
        unit.execute(insert, {"x": 7})
    with session_scope(postgres_url) as session:
        assert session.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 4, 6, 7]


def test_a_statement_the_server_cannot_prepare_fails_once_then_goes_as_text(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A parameter whose type the server cannot tell (a statement's bug):
    the unit that found it fails; the statement goes as text from then on."""
    from cobrador.ledger import db

    monkeypatch.setattr(db, "_prepared_forms", {})
    get_engine(postgres_url).dispose()
    untyped = text("SELECT :x IS NULL")
    with pytest.raises(DBAPIError, match="could not determine data type"), direct_unit(postgres_url) as unit:
        unit.execute(untyped, {"x": None})
    with direct_unit(postgres_url) as unit:
        assert unit.execute(untyped, {"x": None}).scalar_one() is True
        assert unit.execute(untyped, {"x": 1}).scalar_one() is False
        assert _prepared_here(unit) == {}


def test_prepared_statements_can_be_switched_off(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """COBRADOR_PG_PREPARE=off (for a pooler in transaction mode): every statement goes as text."""
    monkeypatch.setenv("COBRADOR_PG_PREPARE", "off")
    ledger_url = _pg_ledger(postgres_url)
    _store(ledger_url, "SMo1")
    with direct_unit(ledger_url) as unit:
        messages.set_inbound_status(unit, "SMo1", "processed")
        assert _prepared_here(unit) == {}


def test_the_prepared_form_numbers_each_parameter_once_and_keeps_literal_percents(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cobrador.ledger import db

    monkeypatch.setattr(db, "_prepared_forms", {})  # the process's own forms untouched
    name, body, execute = db._prepared("SELECT %(a)s, %(b)s, %(a)s, 'x%%' WHERE y = %(c)s")
    assert body == "SELECT $1, $2, $1, 'x%%' WHERE y = $3"
    assert execute == f"EXECUTE {name}(%(a)s, %(b)s, %(c)s)"
    assert db._prepared("SELECT 1")[2] == f"EXECUTE {db._prepared('SELECT 1')[0]}"
    assert db._prepared("SELECT %(a)s") != db._prepared("SELECT %(a)s, 2")  # named after their text
    monkeypatch.setattr(db, "_prepared_forms", {})
    monkeypatch.setattr(db, "PREPARED_MAX", 1)
    assert db._prepared("SELECT 2") is not None
    assert db._prepared("SELECT 3") is None  # past the cap: sent as text
