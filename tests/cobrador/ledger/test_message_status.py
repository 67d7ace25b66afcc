"""The message log's status changes, each one statement: Twilio's delivery
callbacks never move a message backwards, an outcome changes only what it
gives, and a claim wins once. On SQLite and PostgreSQL, through a session and
through a `direct_unit` alike."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from cobrador.ledger import messages
from cobrador.ledger.db import direct_unit, session_scope
from cobrador.ledger.models import Message

UNITS = {"session": session_scope, "direct": direct_unit}


@pytest.fixture(params=sorted(UNITS))
def unit(request: pytest.FixtureRequest):  # noqa: ANN201
    return UNITS[request.param]


def _row(ledger_url: str, **where: object) -> Message:
    with session_scope(ledger_url) as session:
        return session.scalars(select(Message).filter_by(**where)).one()


def _outbound(ledger_url: str, sid: str) -> int:
    with session_scope(ledger_url) as session:
        message_id = messages.record_outbound(session, "+525550000001", "Hola", status="sending")
        messages.mark_outbound(session, message_id, "queued", provider_sid=sid)
    return message_id


def test_a_late_callback_never_moves_a_message_backwards(ledger_url: str, unit) -> None:  # noqa: ANN001
    sid = "SM" + "a" * 32
    _outbound(ledger_url, sid)

    def callback(status: str, code: str | None = None) -> bool:
        with unit(ledger_url) as session:
            return messages.apply_status_callback(session, sid, status, code)

    steps = [
        ("sent", None, True, "sent"),
        ("delivered", None, True, "delivered"),
        ("sent", None, False, "delivered"),  # late
        ("queued", None, False, "delivered"),
        ("read", None, True, "read"),
        ("read", None, True, "read"),  # a repeat: taken, nothing to change
        ("delivered", None, False, "read"),
        ("bogus", None, False, "read"),  # not one of Twilio's
        ("failed", "63016", True, "failed"),  # a failure always applies
        ("read", None, False, "failed"),
        ("undelivered", "30008", True, "undelivered"),
        ("undelivered", "30008", True, "undelivered"),  # a repeat, code and all
        ("undelivered", None, True, "undelivered"),
    ]
    for status, code, taken, now in steps:
        before = _row(ledger_url, provider_sid=sid)
        assert callback(status, code) is taken, (status, code)
        after = _row(ledger_url, provider_sid=sid)
        assert after.status == now, (status, code)
        changed = (before.status, before.error_code) != (after.status, after.error_code)
        assert (after.updated_at > before.updated_at) is changed, (status, code)
    assert _row(ledger_url, provider_sid=sid).error_code == "30008"
    with unit(ledger_url) as session:
        assert messages.apply_status_callback(session, "SMunknown", "delivered") is False
        assert messages.apply_status_callback(session, "SMunknown", "failed", "30003") is False
        assert messages.apply_status_callback(session, "SMunknown", "failed") is False


def test_a_failure_code_is_recorded_once_and_kept(ledger_url: str, unit) -> None:  # noqa: ANN001
    sid = "SM" + "b" * 32
    _outbound(ledger_url, sid)
    with unit(ledger_url) as session:
        assert messages.apply_status_callback(session, sid, "failed", "63016")
    with unit(ledger_url) as session:
        assert messages.apply_status_callback(session, sid, "failed")  # again, without a code: already so
    row = _row(ledger_url, provider_sid=sid)
    assert (row.status, row.error_code) == ("failed", "63016")


def test_an_outcome_changes_only_what_it_gives(ledger_url: str, unit) -> None:  # noqa: ANN001
    message_id = _outbound(ledger_url, "SM" + "c" * 32)
    with unit(ledger_url) as session:
        messages.mark_outbound(session, message_id, "failed", error_code="63016")
    row = _row(ledger_url, id=message_id)
    assert (row.status, row.provider_sid, row.error_code, row.template_sid) == (
        "failed", "SM" + "c" * 32, "63016", None,
    )  # fmt: skip
    with unit(ledger_url) as session:
        messages.mark_outbound(session, message_id, "queued", provider_sid="SM" + "d" * 32, template_sid="HX1")
    row = _row(ledger_url, id=message_id)
    assert (row.status, row.provider_sid, row.error_code, row.template_sid) == (
        "queued", "SM" + "d" * 32, "63016", "HX1",
    )  # fmt: skip
    with unit(ledger_url) as session:
        messages.mark_outbound(session, message_id, "sent", provider_sid="", error_code="", template_sid="")
    row = _row(ledger_url, id=message_id)
    assert (row.status, row.provider_sid, row.error_code, row.template_sid) == ("sent", "SM" + "d" * 32, "63016", "HX1")


def test_a_message_is_claimed_once_and_a_stale_claim_only_if_untouched(ledger_url: str, unit) -> None:  # noqa: ANN001
    with session_scope(ledger_url) as session:
        messages.record_inbound(session, "SMin", "+525550000001", "hola")
    with unit(ledger_url) as session:
        assert messages.claim_inbound(session, "SMin")
    with unit(ledger_url) as session:
        assert not messages.claim_inbound(session, "SMin")  # taken
    touched = _row(ledger_url, provider_sid="SMin").updated_at
    with unit(ledger_url) as session:
        assert not messages.claim_inbound(session, "SMin", messages.INBOUND_PENDING, touched)  # touched since? no
        assert messages.claim_inbound(session, "SMin", messages.INBOUND_PENDING, touched + dt.timedelta(seconds=1))
    assert _row(ledger_url, provider_sid="SMin").status == "processing"


def test_callbacks_held_for_one_round_trip_apply_as_one_by_one(ledger_url: str) -> None:
    """What the ingest applies (`record_status_callback` in a one-round-trip
    unit: on PostgreSQL the callbacks that came together go in one query):
    the same rules, alone or together, in the order they came."""
    sid = "SM" + "b" * 32
    message_id = _outbound(ledger_url, sid)
    steps = [("sent", "sent"), ("delivered", "delivered"), ("sent", "delivered"), ("bogus", "delivered")]
    steps += [("read", "read"), ("failed", "failed"), ("read", "failed")]
    for status, now in steps:
        with direct_unit(ledger_url, one_round_trip=True) as unit:
            messages.record_status_callback(unit, sid, status, "30008" if status == "failed" else None)
        assert _row(ledger_url, id=message_id).status == now, status
    other = "SM" + "c" * 32
    other_id = _outbound(ledger_url, other)
    with direct_unit(ledger_url, one_round_trip=True) as unit:  # together, late ones among them
        for status in ("sent", "read", "delivered", "sent"):
            messages.record_status_callback(unit, other, status)
        messages.mark_outbound(unit, message_id, "failed", error_code="63016")
    assert _row(ledger_url, id=other_id).status == "read"
    assert _row(ledger_url, id=message_id).error_code == "63016"  # the outcome held with the callbacks
    assert _row(ledger_url, id=message_id).status == "failed"
