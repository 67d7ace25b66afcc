"""The outcomes export on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from cobrador.ledger import commands, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.export import COLUMNS, inert, write_export
from cobrador.ledger.models import Account, Debtor, Escalation, Message, OptOut, PaymentClaim, PaymentPlan, Promise
from tests.cobrador.outreach.conftest import Book, at

UTC = dt.timezone.utc


@pytest.fixture
def book(ledger_url: str) -> Book:
    return Book(ledger_url)


def export(book: Book, since: str, until: str | None = None, creditor: str | None = None) -> list[dict[str, str]]:
    out = io.StringIO()
    with session_scope(book.url) as session:
        write_export(session, out, at(since), at(until) if until else None, creditor)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == COLUMNS
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows[1:]]


def stamp(book: Book, model, ident: int, when: str, column: str = "created_at") -> None:  # noqa: ANN001
    with session_scope(book.url) as session:
        setattr(session.get(model, ident), column, at(when))


def phone_of(book: Book, account_id: int) -> str:
    with session_scope(book.url) as session:
        return session.get(Debtor, session.get(Account, account_id).debtor_id).phone


def test_every_outcome_is_exported_once_in_time_order(book: Book) -> None:
    mx = book.creditor()
    first = book.account(mx, due=dt.date(2026, 11, 15), balance="900.00")
    second = book.account(mx, due=dt.date(2026, 11, 15), balance="400.00")
    phone, other = phone_of(book, first), phone_of(book, second)
    with session_scope(book.url) as session:
        promise = commands.record_promise(session, first, Decimal("300.00"), dt.date(2026, 11, 27))
        plan = commands.record_plan(
            session, second, "weekly", [Decimal("200")] * 2, [dt.date(2026, 11, 27), dt.date(2026, 12, 4)]
        )
        claim = commands.record_payment_claim(session, first, amount=Decimal("50"), reference="=HYPERLINK(1)")
        dispute, case = commands.open_dispute(session, second, "no es mía", other)
        opt_out, _ = commands.record_opt_out(session, other, keyword="BAJA")
        message = messages.record_outbound(session, phone, "Hola", template_sid="HX" + "0" * 32)
        messages.mark_outbound(session, message, "delivered", provider_sid="SM1")
    stamp(book, Promise, promise, "2026-11-23T10:00:00+00:00")
    stamp(book, PaymentPlan, plan, "2026-11-23T11:00:00+00:00")
    stamp(book, PaymentClaim, claim, "2026-11-23T12:00:00+00:00")
    stamp(book, Escalation, dispute, "2026-11-23T13:00:00+00:00")
    stamp(book, OptOut, opt_out, "2026-11-23T14:00:00+00:00")
    stamp(book, Message, message, "2026-11-23T15:00:00+00:00", "updated_at")
    rows = export(book, "2026-11-23T00:00:00+00:00", "2026-11-24T00:00:00+00:00")
    assert [r["event"] for r in rows] == ["promise", "plan", "payment_claim", "dispute", "opt_out", "message_delivered"]
    promise_row, plan_row, claim_row, dispute_row, opt_out_row, message_row = rows
    assert promise_row | {"occurred_at": ""} == {
        "event": "promise", "occurred_at": "", "creditor": "MX", "account_reference": "REF-00001", "phone": phone,
        "amount": "300.00", "currency": "MXN", "date": "2026-11-27", "status": "pending", "case_number": "",
        "detail": "by bot",
    }  # fmt: skip
    assert promise_row["occurred_at"] == "2026-11-23T10:00:00+00:00"
    assert (plan_row["amount"], plan_row["date"], plan_row["detail"]) == ("400.00", "2026-11-27", "2 x weekly; by bot")
    assert claim_row["detail"] == "'=HYPERLINK(1)"  # inert in a spreadsheet
    assert (dispute_row["case_number"], dispute_row["phone"]) == (case, other)
    assert (opt_out_row["phone"], opt_out_row["status"]) == (other, "active")
    assert (message_row["status"], message_row["detail"]) == ("delivered", "bot HX" + "0" * 32)
    assert "Hola" not in str(rows)  # no message bodies leave


def test_since_until_and_creditor_filters(book: Book) -> None:
    mx, us = book.creditor("MX"), book.creditor("US")
    mine, theirs = book.account(mx, due=dt.date(2026, 11, 15)), book.account(us, due=dt.date(2026, 11, 15))
    with session_scope(book.url) as session:
        early = commands.record_promise(session, mine, Decimal("100"), dt.date(2026, 11, 27))
        late = commands.record_promise(session, theirs, Decimal("100"), dt.date(2026, 11, 27))
    stamp(book, Promise, early, "2026-11-22T23:59:59+00:00")
    stamp(book, Promise, late, "2026-11-23T00:00:00+00:00")
    assert [r["creditor"] for r in export(book, "2026-11-23T00:00:00+00:00")] == ["US"]  # since is inclusive
    assert [r["creditor"] for r in export(book, "2026-11-22T00:00:00+00:00", "2026-11-23T00:00:00+00:00")] == ["MX"]
    assert [r["creditor"] for r in export(book, "2026-11-01T00:00:00+00:00", creditor="MX")] == ["MX"]


@pytest.mark.parametrize("cell", ["=1+1", "+52", "-3", "@SUM(A1)", "\tx"])
def test_formula_cells_are_made_inert(cell: str) -> None:
    assert inert(cell) == "'" + cell
    assert inert("REF-1") == "REF-1"


def test_the_command_line(book: Book, tmp_path) -> None:  # noqa: ANN001
    env = {**os.environ, "DATABASE_URL": book.url}
    base = [sys.executable, "-m", "cobrador", "export"]
    bad = subprocess.run([*base, "--since", "yesterday"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a date" in bad.stderr
    out = tmp_path / "out.csv"
    good = subprocess.run([*base, "--since", "2026-11-01", "--out", str(out)], env=env, capture_output=True, text=True)
    assert good.returncode == 0 and "0 events exported" in good.stderr
    assert out.read_text(encoding="utf-8").splitlines() == [",".join(COLUMNS)]
