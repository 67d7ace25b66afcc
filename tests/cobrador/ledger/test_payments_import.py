"""The payments reconciliation import on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from cobrador.ledger import commands
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Account, Installment, Payment, PaymentClaim, PaymentPlan, Promise
from cobrador.ledger.payments import ImportFileError, import_payments
from tests.cobrador.outreach.conftest import Book, at

TODAY = dt.date(2026, 11, 24)
HEADER = "creditor,account_reference,amount,paid_on,external_reference,method\n"


@pytest.fixture
def book(ledger_url: str) -> Book:
    return Book(ledger_url)


def csv_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "payments.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def apply(book: Book, path: Path, today: dt.date = TODAY):
    with session_scope(book.url) as session:
        return import_payments(session, path, today=today)


def get(book: Book, model, ident):  # noqa: ANN001
    with session_scope(book.url) as session:
        row = session.get(model, ident)
        session.expunge(row)
        return row


def test_payments_lower_the_balance_and_reimporting_changes_nothing(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20), balance="1500.00")
    path = csv_file(tmp_path, "MX,REF-00001,500.00,2026-11-21,TX-1,SPEI", 'MX,REF-00001,"1,000",2026-11-22,TX-2,')
    report = apply(book, path)
    assert (report.rows, report.applied, report.errors) == (2, 2, [])
    assert report.totals == {"MXN": Decimal("1500.00")} and report.accounts_paid_off == 1
    row = get(book, Account, account)
    assert (row.balance, row.status) == (Decimal("0.00"), "paid")
    again = apply(book, path)
    assert (again.applied, again.already_applied) == (0, 2)
    with session_scope(book.url) as session:
        assert len(session.execute(select(Payment)).all()) == 2


def test_bad_rows_are_reported_with_their_line_and_the_good_ones_applied(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    book.account(mx, due=dt.date(2026, 11, 20))
    path = csv_file(
        tmp_path,
        "MX,REF-00001,100.00,2026-11-21,TX-1,",  # line 2: fine
        "MX,REF-99999,100.00,2026-11-21,TX-2,",  # unknown account
        "ZZ,REF-00001,100.00,2026-11-21,TX-3,",  # unknown creditor
        "MX,REF-00001,-5,2026-11-21,TX-4,",  # negative
        "MX,REF-00001,0,2026-11-21,TX-5,",  # zero
        "MX,REF-00001,10.001,2026-11-21,TX-6,",  # three decimals
        "MX,REF-00001,100,2026-11-25,TX-7,",  # in the future
        "MX,REF-00001,100,21/11/2026,TX-8,",  # not ISO
        "MX,REF-00001,100,2026-11-21,,",  # no reference
        "MX,REF-00001,100.00,2026-11-21,TX-1,",  # duplicate of line 2
    )
    report = apply(book, path)
    reasons = {e.line: e.reason for e in report.errors}
    assert report.applied == 1 and sorted(reasons) == list(range(3, 12))
    assert "unknown account 'REF-99999'" in reasons[3]
    assert "creditor 'ZZ'" in reasons[4]
    assert "not an amount" in reasons[5] and "more than zero" in reasons[6] and "not an amount" in reasons[7]
    assert "after today" in reasons[8] and "not a date" in reasons[9]
    assert "missing external_reference" in reasons[10]
    assert "duplicate payment TX-1 (first on line 2)" in reasons[11]


def test_a_file_without_the_required_columns_is_refused(book: Book, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("creditor,amount\nMX,100\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="missing columns: account_reference, paid_on, external_reference"):
        apply(book, path)


def test_overpayment_is_applied_to_zero_and_reported(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20), balance="300.00")
    report = apply(book, csv_file(tmp_path, "MX,REF-00001,350.00,2026-11-21,TX-1,"))
    assert get(book, Account, account).balance == Decimal("0.00")
    (warning,) = report.warnings
    assert warning.line == 2 and "50.00 more than the balance" in warning.reason


def test_disputed_and_closed_accounts_keep_their_status(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    disputed = book.account(mx, due=dt.date(2026, 11, 20), balance="300.00", status="disputed")
    closed = book.account(mx, due=dt.date(2026, 11, 20), balance="300.00", status="closed")
    report = apply(book, csv_file(tmp_path, "MX,REF-00001,300,2026-11-21,TX-1,", "MX,REF-00002,300,2026-11-21,TX-2,"))
    assert get(book, Account, disputed).status == "disputed" and get(book, Account, disputed).balance == 0
    assert get(book, Account, closed).status == "closed" and get(book, Account, closed).balance == Decimal("300.00")
    assert [("disputed" in w.reason, "closed" in w.reason) for w in report.warnings] == [(True, False), (False, True)]


def test_instalments_are_paid_in_order_and_a_partial_one_stays_pending(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20), balance="900.00")
    with session_scope(book.url) as session:
        plan_id = commands.record_plan(
            session, account, "weekly", [Decimal("300")] * 3,
            [dt.date(2026, 11, 27), dt.date(2026, 12, 4), dt.date(2026, 12, 11)],
        )  # fmt: skip
    report = apply(book, csv_file(tmp_path, "MX,REF-00001,450,2026-11-21,TX-1,"))
    assert report.installments_paid == 1
    with session_scope(book.url) as session:
        statuses = [i.status for i in session.execute(select(Installment).order_by(Installment.seq)).scalars()]
    assert statuses == ["paid", "pending", "pending"]
    apply(book, csv_file(tmp_path, "MX,REF-00001,450,2026-11-22,TX-2,"))
    assert get(book, PaymentPlan, plan_id).status == "completed"


@pytest.mark.parametrize(
    ("paid_on", "amount", "today", "expected"),
    [
        ("2026-11-25", "500", dt.date(2026, 11, 26), "kept"),  # on the promised date
        ("2026-11-24", "500", dt.date(2026, 11, 25), "kept"),  # early
        ("2026-11-26", "500", dt.date(2026, 11, 26), "broken"),  # a day late
        ("2026-11-25", "499.99", dt.date(2026, 11, 26), "broken"),  # a cent short
        ("2026-11-24", "200", dt.date(2026, 11, 25), "pending"),  # short, but the date has not passed
        ("2026-11-19", "500", dt.date(2026, 11, 26), "broken"),  # paid before the promise was made
    ],
)
def test_promises_kept_or_broken(book: Book, tmp_path: Path, paid_on: str, amount: str, today, expected) -> None:  # noqa: ANN001
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 15), balance="2000.00")
    with session_scope(book.url) as session:
        promise_id = commands.record_promise(session, account, Decimal("500.00"), dt.date(2026, 11, 25))
        session.get(Promise, promise_id).created_at = at("2026-11-20T10:00:00-06:00")
    apply(book, csv_file(tmp_path, f"MX,REF-00001,{amount},{paid_on},TX-1,"), today=today)
    assert get(book, Promise, promise_id).status == expected


def test_a_matching_payment_confirms_the_claim(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 15), balance="2000.00")
    with session_scope(book.url) as session:
        matching = commands.record_payment_claim(session, account, amount=Decimal("700.00"))
        other = commands.record_payment_claim(session, account, amount=Decimal("100.00"))
    report = apply(book, csv_file(tmp_path, "MX,REF-00001,700,2026-11-21,TX-1,"))
    assert report.claims_confirmed == 1
    assert get(book, PaymentClaim, matching).status == "confirmed"
    assert get(book, PaymentClaim, other).status == "pending"


def test_the_command_line(book: Book, tmp_path: Path) -> None:
    mx = book.creditor()
    book.account(mx, due=dt.date(2026, 11, 15), balance="2000.00")
    path = csv_file(tmp_path, "MX,REF-00001,700,2026-11-21,TX-1,", "MX,REF-00001,x,2026-11-21,TX-2,")
    env = {**os.environ, "DATABASE_URL": book.url}
    command = [sys.executable, "-m", "cobrador", "import-payments", str(path), "--today", "2026-11-24"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "line 3: amount 'x' is not an amount" in done.stderr
    assert "2 rows: 1 applied (700.00 MXN)" in done.stdout
    missing = subprocess.run([*command[:4], str(tmp_path / "nope.csv")], env=env, capture_output=True, text=True)
    assert missing.returncode == 2
