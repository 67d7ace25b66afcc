"""The message log: every WhatsApp message in and out, with its status.

Inbound messages are stored before they are processed, keyed by the
provider's MessageSid (unique), so a replayed webhook is recognised and a
crash mid-turn leaves the message `received`/`processing`, to be processed
again after a restart. Outbound messages are stored before they are sent; in
local mode they stay `queued` in this table, which is the outbox the
simulator reads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, ContextManager, Iterable, Optional, Sequence

from sqlalchemy import Boolean, bindparam, select, text, update
from sqlalchemy.orm import Session

from cobrador.ledger.db import DirectUnit, direct_unit, get_engine
from cobrador.ledger.models import PENDING_INBOUND_SQL, UNSENT_OUTBOUND_SQL, Message, utcnow

INBOUND_PENDING = ("received", "processing")
# The condition of the index of pending messages, as it is written there: a
# query that states it literally is answered from that index, not the whole log.
PENDING_INBOUND = text(PENDING_INBOUND_SQL)
# Twilio's statuses in the order they happen; a late callback never moves a
# message backwards (a "sent" arriving after "delivered" is ignored).
_ORDER = {"queued": 0, "sending": 1, "sent": 2, "delivered": 3, "read": 4, "undelivered": 5, "failed": 5}


@dataclass(frozen=True)
class LoggedMessage:
    """A row of the message log, as plain values."""

    id: int
    phone: str
    direction: str
    provider_sid: Optional[str]
    body: str
    media: list[dict[str, Any]]
    status: str
    sender: str
    error_code: Optional[str]
    created_at: dt.datetime


def _view(row: Message) -> LoggedMessage:
    return LoggedMessage(
        row.id, row.phone, row.direction, row.provider_sid, row.body, list(row.media or []), row.status, row.sender,
        row.error_code, row.created_at,
    )  # fmt: skip


# The statements on the path of every message are SQL text, typed where
# SQLAlchemy converts values: SQLAlchemy 1.4 compiles an INSERT or UPDATE
# built from the model anew at every execution (it is not cached), which cost
# more than running it (the ingest's database work per message: 8 -> 3.5 ms
# of CPU). They do not refresh ORM objects already loaded in the session.
# The functions that run them take a session or a `db.DirectUnit` (the ingest
# and the channel run them on the DB-API connection itself: `db.direct_unit`).
# This one does nothing when the MessageSid is already stored (ON CONFLICT:
# PostgreSQL, and SQLite since 3.24).
_NOW = bindparam("now", type_=Message.__table__.c.updated_at.type)
_MEDIA = bindparam("media", type_=Message.__table__.c.media.type)
_INSERT_INBOUND = text(
    "INSERT INTO messages (debtor_id, phone, direction, provider_sid, body, media, status, sender,"
    " created_at, updated_at)"
    " VALUES ((SELECT id FROM debtors WHERE phone = :phone), :phone, 'inbound', :sid, :body, :media, :status,"
    " 'debtor', :now, :now)"
    " ON CONFLICT (provider_sid) DO NOTHING"
).bindparams(_MEDIA, _NOW)


def record_inbound(
    session: Session | DirectUnit,
    provider_sid: str,
    phone: str,
    body: str,
    media: Sequence[dict[str, Any]] = (),
    status: str = "received",
) -> bool:
    """Stores an inbound message once, in a single statement.

    Returns:
        True if it is new; False if that MessageSid was already stored (a
        replay, possibly a concurrent one), in which case nothing changes.
    """
    values = {
        "phone": phone,
        "sid": provider_sid,
        "body": body,
        "media": list(media),
        "status": status,
        "now": utcnow(),
    }
    return session.execute(_INSERT_INBOUND, values).rowcount == 1


_LANGUAGES = text("SELECT phone, language FROM debtors WHERE phone IN :phones").bindparams(
    bindparam("phones", expanding=True)
)


def languages(session: Session | DirectUnit, phones: Iterable[str]) -> dict[str, str]:
    """The language of each of these phones' debtors (unknown numbers are left out)."""
    return {phone: language for phone, language in session.execute(_LANGUAGES, {"phones": list(phones)})}


_SET_INBOUND_STATUS = text(
    "UPDATE messages SET status = :status, updated_at = :now WHERE provider_sid = :sid AND direction = 'inbound'"
).bindparams(_NOW)


_CLAIM = (
    "UPDATE messages SET status = 'processing', updated_at = :now"
    " WHERE provider_sid = :sid AND direction = 'inbound' AND status IN :statuses"
)
_CLAIM_INBOUND = text(_CLAIM).bindparams(_NOW, bindparam("statuses", expanding=True))
_CLAIM_UNCHANGED = text(_CLAIM + " AND updated_at < :since").bindparams(
    _NOW, bindparam("statuses", expanding=True), bindparam("since", type_=_NOW.type)
)


def set_inbound_status(session: Session | DirectUnit, provider_sid: str, status: str) -> None:
    session.execute(_SET_INBOUND_STATUS, {"status": status, "sid": provider_sid, "now": utcnow()})


def claim_inbound(
    session: Session | DirectUnit,
    provider_sid: str,
    from_statuses: Sequence[str] = ("received",),
    unchanged_since: Optional[dt.datetime] = None,
) -> bool:
    """Marks an inbound message `processing` if it is still in one of
    `from_statuses`; True for the one caller that wins it. This is what keeps a
    message from being answered twice when it reaches the bot by two ways (the
    ingest's forward and the sweep of stale messages)."""
    values = {"sid": provider_sid, "statuses": list(from_statuses), "now": utcnow()}
    if unchanged_since is None:
        return session.execute(_CLAIM_INBOUND, values).rowcount == 1
    # A stale claim is taken over only if nobody touched it since.
    return session.execute(_CLAIM_UNCHANGED, {**values, "since": unchanged_since}).rowcount == 1


_KEEP_CLAIMS = text(
    "UPDATE messages SET updated_at = :now"
    " WHERE provider_sid IN :sids AND direction = 'inbound' AND status = 'processing'"
).bindparams(_NOW, bindparam("sids", expanding=True))


def keep_claims(session: Session, provider_sids: Sequence[str]) -> int:
    """Touches the claims a live process still holds on these inbound messages
    (those still `processing`), so no sweep takes them for a dead process's;
    how many it touched."""
    if not provider_sids:
        return 0
    return session.execute(_KEEP_CLAIMS, {"sids": list(provider_sids), "now": utcnow()}).rowcount


def release_inbound(session: Session, provider_sid: str) -> None:
    """Back to `received` a message claimed for a turn that never started."""
    session.execute(
        update(Message)
        .where(Message.provider_sid == provider_sid, Message.direction == "inbound", Message.status == "processing")
        .values(status="received", updated_at=utcnow())
    )


def stale_inbound(session: Session, status: str, older_than: dt.datetime, limit: int = 100) -> list[LoggedMessage]:
    """Inbound messages left in `status` since before `older_than`, oldest first:
    `received` ones never picked up (a forward the ingest could not deliver),
    `processing` ones whose turn never finished (an ingest that died holding them)."""
    rows = session.execute(
        select(Message)
        .where(PENDING_INBOUND, Message.status == status, Message.updated_at < older_than)
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    ).scalars()
    return [_view(r) for r in rows]


def pending_inbound(session: Session) -> list[LoggedMessage]:
    """Inbound messages stored but not processed (a crash or a restart), oldest first."""
    rows = session.execute(select(Message).where(PENDING_INBOUND).order_by(Message.created_at, Message.id)).scalars()
    return [_view(r) for r in rows]


def latest_processed_inbound(session: Session, last: int) -> list[LoggedMessage]:
    """Each phone's latest processed inbound message among the log's `last`
    messages (in and out, newest first): read backwards along the primary key,
    so it costs the same whatever the log's size."""
    rows = session.execute(select(Message).order_by(Message.id.desc()).limit(last)).scalars()
    seen: set[str] = set()
    latest = []
    for row in rows:
        if row.direction == "inbound" and row.status == "processed" and row.phone not in seen:
            seen.add(row.phone)
            latest.append(_view(row))
    return latest


UNSENT_OUTBOUND = text(UNSENT_OUTBOUND_SQL)
# The same condition as the unsent index's (one constant, no values in it).
_TOUCH_UNSENT = f"UPDATE messages SET updated_at = :now WHERE id = :id AND {UNSENT_OUTBOUND_SQL}"  # noqa: S608
_CLAIM_UNSENT = text(_TOUCH_UNSENT + " AND updated_at < :since").bindparams(_NOW, bindparam("since", type_=_NOW.type))


def unsent_outbound(session: Session, older_than: dt.datetime, limit: int = 100) -> list[LoggedMessage]:
    """Replies logged to be sent through Twilio (`sending`, no SID) and not
    touched since `older_than`: a crash stopped their sending. Oldest first."""
    rows = session.execute(
        select(Message).where(UNSENT_OUTBOUND, Message.updated_at < older_than).order_by(Message.id).limit(limit)
    ).scalars()
    return [_view(r) for r in rows]


def claim_unsent(session: Session, message_id: int, older_than: dt.datetime) -> Optional[dt.datetime]:
    """Takes an unsent reply for sending, if nobody touched it since `older_than`
    (so of two sweeps, or a sweep and a slow send, only one sends it). Returns
    the claim's time (the reply's new `updated_at`, see `renew_sending`), or
    None when it was not taken."""
    now = utcnow()
    values = {"id": message_id, "now": now, "since": older_than}
    return now if session.execute(_CLAIM_UNSENT, values).rowcount == 1 else None


_RENEW_SENDING = text(_TOUCH_UNSENT + " AND updated_at = :touched").bindparams(
    _NOW, bindparam("touched", type_=_NOW.type)
)


def renew_sending(session: Session, message_ids: Sequence[int], touched: dt.datetime) -> tuple[list[int], dt.datetime]:
    """Keeps replies a sender still holds from the resend sweep, which takes
    those untouched for a while: touches each one that nobody touched since
    `touched` (this sender's last touch, when it logged, claimed or renewed
    them). A reply a sweep claimed meanwhile carries the sweep's touch and is
    left to it. Returns the ids renewed and the new touch."""
    now = utcnow()
    renewed = [
        message_id
        for message_id in message_ids
        if session.execute(_RENEW_SENDING, {"id": message_id, "now": now, "touched": touched}).rowcount == 1
    ]
    return renewed, now


_OUTBOUND = (
    "INSERT INTO messages (debtor_id, phone, direction, body, media, status, sender, template_sid,"
    " created_at, updated_at)"
    " VALUES ((SELECT id FROM debtors WHERE phone = :phone), :phone, 'outbound', :body, :media, :status, :sender,"
    " :template, :now, :now)"
)
_INSERT_OUTBOUND = text(_OUTBOUND).bindparams(_MEDIA, _NOW)
_INSERT_OUTBOUND_RETURNING = text(_OUTBOUND + " RETURNING id").bindparams(_MEDIA, _NOW)


def record_outbound(
    session: Session | DirectUnit,
    phone: str,
    body: str,
    *,
    sender: str = "bot",
    media: Sequence[dict[str, Any]] = (),
    status: str = "queued",
    template_sid: Optional[str] = None,
    now: Optional[dt.datetime] = None,
) -> int:
    """Stores an outbound message before it is sent (at `now`, default the
    current time); returns its id."""
    values = {
        "phone": phone, "body": body, "media": list(media), "status": status, "sender": sender,
        "template": template_sid, "now": now or utcnow(),
    }  # fmt: skip
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(_INSERT_OUTBOUND_RETURNING, values).scalar_one())
    return int(session.execute(_INSERT_OUTBOUND, values).lastrowid)  # SQLite before 3.35 has no RETURNING


# The store of inbound messages that came together and the end of turns that
# ended together, each as one statement on PostgreSQL (data-modifying CTEs,
# which SQLite lacks), run by `db.direct_unit(one_round_trip=True)` as its own
# transaction: one round trip to the server, where the same unit as separate
# statements took a round trip for each, plus BEGIN and COMMIT (the end of a
# turn with two replies: five). The rows are those of `record_inbound`,
# `record_outbound` and `set_inbound_status` (tests/cobrador/ledger/
# test_direct_unit.py compares them column by column). A statement is made
# for each number of rows (up to `_MANY_ROWS`, so few are ever made) and
# compiled once; larger batches take the statement-by-statement way.
_MANY_ROWS = 64
_many_statements: dict[tuple[str, int], Any] = {}


def one_statement(bind: Any, rows: int) -> bool:
    """Whether `store_inbound_many` or `finish_turns_many` of `rows` rows (the
    messages stored, the replies logged) is one statement on this engine
    (PostgreSQL; turns that ended without a reply take the statements one by
    one)."""
    return bind.dialect.name == "postgresql" and 0 < rows <= _MANY_ROWS


def batch_unit(rows: int, url: Optional[str] = None) -> ContextManager[DirectUnit]:
    """The unit for `store_inbound_many` or `finish_turns_many` of `rows`
    rows: one round trip (`direct_unit(one_round_trip=True)`) when that is
    one statement, otherwise a unit of the statements one by one."""
    return direct_unit(url, one_round_trip=one_statement(get_engine(url), rows))


_MANY_INBOUND = (
    "WITH new AS (INSERT INTO messages (debtor_id, phone, direction, provider_sid, body, media, status, sender,"
    " created_at, updated_at) VALUES <rows> ON CONFLICT (provider_sid) DO NOTHING RETURNING provider_sid, phone)"
    " SELECT provider_sid, (SELECT language FROM debtors WHERE debtors.phone = new.phone) FROM new",
    "((SELECT id FROM debtors WHERE phone = :phone_<n>), :phone_<n>, 'inbound', :sid_<n>, :body_<n>, :media_<n>,"
    " :status_<n>, 'debtor', :now, :now)",
)
# A single INSERT ... VALUES takes its ids from the sequence in the order of
# its rows: sorted, they are the replies' in order.
_MANY_OUTBOUND = (
    "WITH replies AS (INSERT INTO messages (debtor_id, phone, direction, body, media, status, sender, template_sid,"
    " created_at, updated_at) VALUES <rows> RETURNING id),"
    " processed AS (UPDATE messages SET status = 'processed', updated_at = :now"
    " WHERE provider_sid IN :sids AND direction = 'inbound')"
    " SELECT id FROM replies ORDER BY id",
    "((SELECT id FROM debtors WHERE phone = :phone_<n>), :phone_<n>, 'outbound', :body_<n>, :media_<n>, :status,"
    " :sender_<n>, NULL, :now, :now)",
)


def _many(kind: str, rows: int) -> Any:
    """The statement of `kind` (inbound, outbound) for `rows` rows, made once."""
    found = _many_statements.get((kind, rows))
    if found is None:
        statement, row = _MANY_INBOUND if kind == "inbound" else _MANY_OUTBOUND
        sql = statement.replace("<rows>", ", ".join(row.replace("<n>", str(n)) for n in range(rows)))
        binds = [_NOW, *(bindparam(f"media_{n}", type_=_MEDIA.type) for n in range(rows))]
        if kind == "outbound":
            binds.append(bindparam("sids", expanding=True))
        found = _many_statements[(kind, rows)] = text(sql).bindparams(*binds)
    return found


def store_inbound_many(
    session: Session | DirectUnit,
    inbound: Sequence[tuple[str, str, str, Sequence[dict[str, Any]], str]],
    languages_of: Iterable[str] = (),
) -> tuple[list[bool], dict[str, Optional[str]]]:
    """`record_inbound` for each (sid, phone, body, media, status): whether
    each was new (a MessageSid seen before, or earlier in `inbound`, is not),
    and the debtor's language of each new one among `languages_of` (None: no
    debtor has that number). On PostgreSQL, one statement."""
    wanted = set(languages_of)
    if not one_statement(session.get_bind(), len(inbound)):
        new = [record_inbound(session, *item) for item in inbound]
        phones = {item[1] for item, is_new in zip(inbound, new, strict=True) if is_new and item[0] in wanted}
        found = languages(session, phones) if phones else {}
        return new, {
            item[0]: found.get(item[1]) for item, n in zip(inbound, new, strict=True) if n and item[0] in wanted
        }
    values: dict[str, Any] = {"now": utcnow()}
    for n, (sid, phone, body, media, status) in enumerate(inbound):
        values.update({f"sid_{n}": sid, f"phone_{n}": phone, f"body_{n}": body, f"media_{n}": list(media)})
        values[f"status_{n}"] = status
    stored = dict(session.execute(_many("inbound", len(inbound)), values))
    new, seen = [], set()
    for sid, *_ in inbound:
        new.append(sid in stored and sid not in seen)
        seen.add(sid)
    return new, {sid: language for sid, language in stored.items() if sid in wanted}


def finish_turns_many(
    session: Session | DirectUnit,
    turns: Sequence[tuple[str, Sequence[tuple[str, str, Sequence[dict[str, Any]], str]]]],
    status: str = "queued",
    now: Optional[dt.datetime] = None,
) -> list[list[int]]:
    """For each (sid, replies), the replies (phone, body, media, sender)
    logged with `status` (`record_outbound`) and the inbound message marked
    processed (`set_inbound_status`); each turn's reply ids, in order. On
    PostgreSQL, one statement."""
    now = now or utcnow()
    rows = [reply for _, replies in turns for reply in replies]
    if not one_statement(session.get_bind(), len(rows)):
        logged = []
        for sid, replies in turns:
            logged.append(
                [
                    record_outbound(session, phone, body, sender=sender, media=media, status=status, now=now)
                    for phone, body, media, sender in replies
                ]
            )
            set_inbound_status(session, sid, "processed")
        return logged
    values: dict[str, Any] = {"now": now, "status": status, "sids": [sid for sid, _ in turns]}
    for n, (phone, body, media, sender) in enumerate(rows):
        values.update({f"phone_{n}": phone, f"body_{n}": body, f"media_{n}": list(media), f"sender_{n}": sender})
    ids = [int(row[0]) for row in session.execute(_many("outbound", len(rows)), values)]
    if len(ids) != len(rows):
        raise RuntimeError(f"{len(rows)} replies logged, {len(ids)} ids came back")
    logged, start = [], 0
    for _, replies in turns:
        logged.append(ids[start : start + len(replies)])
        start += len(replies)
    return logged


# Only what is given changes (a NULL keeps the column's value).
_MARK_OUTBOUND = text(
    "UPDATE messages SET status = :status, provider_sid = COALESCE(:sid, provider_sid),"
    " error_code = COALESCE(:error, error_code), template_sid = COALESCE(:template, template_sid), updated_at = :now"
    " WHERE id = :id"
).bindparams(_NOW)


def mark_outbound(
    session: Session | DirectUnit,
    message_id: int,
    status: str,
    *,
    provider_sid: Optional[str] = None,
    error_code: Optional[str] = None,
    template_sid: Optional[str] = None,
) -> None:
    """Records what happened to an outbound message (sent with an SID, or failed)."""
    values = {
        "id": message_id, "status": status, "sid": provider_sid or None, "error": error_code or None,
        "template": template_sid or None, "now": utcnow(),
    }  # fmt: skip
    _unread(session, _MARK_OUTBOUND, values)


def _unread(session: Session | DirectUnit, clause: Any, values: dict[str, Any]) -> None:
    """A statement whose result is not read: held by a one-round-trip unit
    (`DirectUnit.defer`), to go with the unit's others in one round trip."""
    if isinstance(session, DirectUnit):
        session.defer(clause, values)
    else:
        session.execute(clause, values)


def known_sids(session: Session, provider_sids: Iterable[str]) -> set[str]:
    """Those of `provider_sids` the message log already holds."""
    sids = list(provider_sids)
    if not sids:
        return set()
    return set(session.execute(select(Message.provider_sid).where(Message.provider_sid.in_(sids))).scalars())


# A status applies unless the message is further along (by `_ORDER`; a
# message in none of its statuses, such as an inbound one, counts as before
# them all), except a failure, which always does. A status (and error code)
# it has already changes nothing, not even `updated_at`.
_RANK = "CASE status " + " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in _ORDER.items()) + " ELSE -1 END"
_STATUS_CALLBACK = text(
    "UPDATE messages SET status = :status, error_code = COALESCE(:error, error_code), updated_at = :now"  # noqa: S608
    f" WHERE provider_sid = :sid AND ({_RANK} <= :rank OR :failure)"  # constants only
    " AND (status <> :status"
    " OR (CAST(:error AS VARCHAR(20)) IS NOT NULL AND (error_code IS NULL OR error_code <> :error)))"
).bindparams(_NOW, bindparam("failure", type_=Boolean()))
_IN_STATUS = text(
    "SELECT 1 FROM messages WHERE provider_sid = :sid AND status = :status"
    " AND (CAST(:error AS VARCHAR(20)) IS NULL OR error_code = :error)"
)


def _callback(provider_sid: str, status: str, error_code: Optional[str]) -> dict[str, Any]:
    return {
        "sid": provider_sid, "status": status, "error": error_code or None, "rank": _ORDER[status],
        "failure": status in ("failed", "undelivered"), "now": utcnow(),
    }  # fmt: skip


def record_status_callback(
    session: Session | DirectUnit, provider_sid: str, status: str, error_code: Optional[str] = None
) -> None:
    """`apply_status_callback` without reading whether the message took it
    (what the ingest applies: a one-round-trip unit holds the statement)."""
    if status in _ORDER:
        _unread(session, _STATUS_CALLBACK, _callback(provider_sid, status, error_code))


def apply_status_callback(
    session: Session | DirectUnit, provider_sid: str, status: str, error_code: Optional[str] = None
) -> bool:
    """A delivery status from Twilio, in one statement; returns whether the
    message takes it (one already so counts, with nothing to change). A late
    callback never moves a message backwards: a "sent" after "delivered" is
    ignored; "failed" and "undelivered" always apply."""
    if status not in _ORDER:
        return False
    values = _callback(provider_sid, status, error_code)
    if session.execute(_STATUS_CALLBACK, values).rowcount == 1:
        return True
    # Nothing changed: the message is already so, further along, or not there.
    found = session.execute(_IN_STATUS, {"sid": provider_sid, "status": status, "error": error_code or None})
    return any(True for _ in found)


def conversation(session: Session, phone: str, after_id: int = 0, limit: int = 200) -> list[LoggedMessage]:
    """The messages of one phone, oldest first, after message id `after_id`."""
    rows = session.execute(
        select(Message).where(Message.phone == phone, Message.id > after_id).order_by(Message.id).limit(limit)
    ).scalars()
    return [_view(r) for r in rows]
