"""Portfolio import: validation row by row, upsert, idempotence."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from cobrador.cli import main
from cobrador.ledger.creditors import load_creditors
from cobrador.ledger.db import session_scope
from cobrador.ledger.importer import REQUIRED_COLUMNS, ImportFileError, import_portfolio
from cobrador.ledger.models import Account, Debtor

DEMO_CREDITORS = Path(__file__).resolve().parents[3] / "demo" / "creditors.yml"
COLUMNS = list(REQUIRED_COLUMNS) + ["account_last4", "birth_year", "product", "whatsapp_opt_in_at", "status"]
GOOD = {
    "creditor": "amigo",
    "account_reference": "AM-0002",
    "phone": "+52 55 5000 0101",
    "name": "María  López",
    "language": "es",
    "timezone": "America/Mexico_City",
    "currency": "MXN",
    "original_amount": "12,000.00",
    "balance": "4850.5",
    "due_date": "2026-11-10",
    "balance_as_of": "2026-11-20",
    "account_last4": "",
    "birth_year": "1986",
    "product": "Préstamo",
    "whatsapp_opt_in_at": "2026-03-02T10:15:00-06:00",
    "status": "",
}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({**GOOD, **row})
    return path


@pytest.fixture
def creditors(session) -> None:
    load_creditors(session, DEMO_CREDITORS)
    session.commit()


def run_import(path: Path):
    with session_scope() as session:
        return import_portfolio(session, path)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"creditor": "nope"}, "unknown creditor 'nope'"),
        ({"phone": "12345"}, "phone '12345' is not a valid number"),
        ({"phone": ""}, "missing phone"),
        ({"name": "", "balance": ""}, "missing name, balance"),
        ({"language": "fr"}, "language 'fr' must be es or en"),
        ({"timezone": "Mexico/Nowhere"}, "timezone 'Mexico/Nowhere' is not an IANA time zone"),
        ({"timezone": "CST"}, "timezone 'CST' is not an IANA time zone"),
        ({"currency": "EUR"}, "currency 'EUR' must be one of MXN, USD"),
        ({"balance": "1.234,50"}, "balance '1.234,50' is not an amount like 1500.00"),
        ({"balance": "-10"}, "balance '-10' is not an amount like 1500.00"),
        ({"balance": "10.505"}, "balance '10.505' is not an amount like 1500.00"),
        ({"balance": "1e5"}, "balance '1e5' is not an amount like 1500.00"),
        ({"original_amount": "abc"}, "original_amount 'abc' is not an amount like 1500.00"),
        ({"due_date": "10/11/2026"}, "due_date '10/11/2026' is not a date YYYY-MM-DD"),
        ({"due_date": "2026-02-30"}, "due_date '2026-02-30' is not a date YYYY-MM-DD"),
        ({"balance_as_of": "ayer"}, "balance_as_of 'ayer' is not a date YYYY-MM-DD"),
        ({"account_reference": "AM 1"}, "account_reference 'AM 1' must be 1-64 letters, digits or ._/-"),
        ({"account_reference": "AM-X", "account_last4": ""}, "account_last4 must be 4 digits"),
        ({"account_last4": "12a4"}, "account_last4 must be 4 digits"),
        ({"birth_year": "86"}, "birth_year '86' is not a year"),
        ({"status": "frozen"}, "status 'frozen' must be one of active, disputed, paid, closed"),
        ({"whatsapp_opt_in_at": "2026-03-02"}, "whatsapp_opt_in_at '2026-03-02' needs a UTC offset"),
        ({"whatsapp_opt_in_at": "marzo"}, "whatsapp_opt_in_at 'marzo' is not an ISO date-time"),
    ],
)
def test_bad_rows_are_reported_with_line_and_reason(tmp_path, creditors, change, reason) -> None:
    path = write_csv(tmp_path / "p.csv", [{"account_reference": "AM-0001"}, change, {"account_reference": "AM-0003"}])
    report = run_import(path)
    assert [e.line for e in report.errors] == [3]
    assert report.errors[0].reason.startswith(reason)
    assert report.accounts_created == 2
    with session_scope() as session:
        assert session.execute(select(func.count(Account.id))).scalar_one() == 2


def test_good_row_is_normalised(tmp_path, creditors) -> None:
    report = run_import(write_csv(tmp_path / "p.csv", [{"account_reference": "AM-100231"}]))
    assert report.errors == []
    with session_scope() as session:
        account = session.execute(select(Account)).scalar_one()
        assert account.balance == Decimal("4850.50")
        assert account.original_amount == Decimal("12000.00")
        assert account.last4 == "0231"
        assert account.status == "active"
        assert account.due_date == dt.date(2026, 11, 10)
        debtor = account.debtor
        assert (debtor.phone, debtor.name, debtor.birth_year) == ("+525550000101", "María López", 1986)
        opt_in = (
            debtor.whatsapp_opt_in_at.replace(tzinfo=dt.timezone.utc)
            if debtor.whatsapp_opt_in_at.tzinfo is None
            else debtor.whatsapp_opt_in_at
        )
        assert opt_in == dt.datetime(2026, 3, 2, 16, 15, tzinfo=dt.timezone.utc)


def test_reimport_changes_nothing_and_changes_are_applied(tmp_path, creditors) -> None:
    rows = [{"account_reference": f"AM-{i:04d}", "phone": f"+5255500001{i:02d}"} for i in range(10)]
    path = write_csv(tmp_path / "p.csv", rows)
    first = run_import(path)
    assert (first.accounts_created, first.debtors_created) == (10, 10)
    second = run_import(path)
    assert (second.accounts_created, second.accounts_updated, second.accounts_unchanged) == (0, 0, 10)
    assert (second.debtors_created, second.debtors_updated) == (0, 0)

    rows[3]["balance"] = "100.00"
    rows[4]["name"] = "Nuevo Nombre"
    third = run_import(write_csv(tmp_path / "p2.csv", rows))
    assert (third.accounts_updated, third.accounts_unchanged, third.debtors_updated) == (1, 9, 1)
    with session_scope() as session:
        assert session.execute(select(Account.balance).where(Account.reference == "AM-0003")).scalar_one() == Decimal(
            "100.00"
        )


def test_one_debtor_with_several_accounts(tmp_path, creditors) -> None:
    report = run_import(
        write_csv(tmp_path / "p.csv", [{"account_reference": "AM-0001"}, {"account_reference": "AM-0002"}])
    )
    assert (report.accounts_created, report.debtors_created) == (2, 1)
    with session_scope() as session:
        assert session.execute(select(func.count(Debtor.id))).scalar_one() == 1


def test_duplicate_account_in_one_file_is_rejected(tmp_path, creditors) -> None:
    report = run_import(write_csv(tmp_path / "p.csv", [{"account_reference": "AM-0001"}] * 2))
    assert [(e.line, e.reason) for e in report.errors] == [(3, "duplicate account AM-0001 (first on line 2)")]


def test_import_never_withdraws_an_opt_in(tmp_path, creditors) -> None:
    run_import(write_csv(tmp_path / "p.csv", [{"account_reference": "AM-0001"}]))
    report = run_import(write_csv(tmp_path / "p2.csv", [{"account_reference": "AM-0001", "whatsapp_opt_in_at": ""}]))
    assert report.debtors_updated == 0
    with session_scope() as session:
        assert session.execute(select(Debtor.whatsapp_opt_in_at)).scalar_one() is not None


def test_missing_columns_reject_the_file(tmp_path, creditors) -> None:
    path = tmp_path / "p.csv"
    path.write_text("creditor,phone\namigo,+525550000101\n", encoding="utf-8")
    with pytest.raises(ImportFileError, match="missing columns: account_reference"):
        run_import(path)


def test_cli_exit_codes_and_report(tmp_path, creditors, capsys) -> None:
    good = write_csv(tmp_path / "good.csv", [{"account_reference": "AM-0001"}])
    assert main(["import-portfolio", str(good), "--no-progress"]) == 0
    assert "1 rows: 1 imported, 0 rejected" in capsys.readouterr().out

    bad = write_csv(tmp_path / "bad.csv", [{"account_reference": "AM-0002"}, {"currency": "EUR"}])
    assert main(["import-portfolio", str(bad), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "line 3: currency 'EUR' must be one of MXN, USD" in captured.err
    assert "2 rows: 1 imported, 1 rejected" in captured.out

    assert main(["import-portfolio", str(tmp_path / "missing.csv"), "--no-progress"]) == 2
