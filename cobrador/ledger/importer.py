"""Portfolio import: the creditor's CSV of debtors and debts into the ledger.

Every row is validated on its own; bad rows are reported with their line
number and reason and the good ones are imported. Rows are upserted by
(creditor, account reference) and debtors by phone, comparing values first,
so importing the same file twice changes nothing.

The column format is documented in the README ("Portfolio CSV").
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence
from zoneinfo import available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from cobrador.ledger.models import ACCOUNT_STATUSES, CURRENCIES, LANGUAGES, Account, Creditor, Debtor
from cobrador.ledger.phones import InvalidPhone, to_e164

REQUIRED_COLUMNS = (
    "creditor",
    "account_reference",
    "phone",
    "name",
    "language",
    "timezone",
    "currency",
    "original_amount",
    "balance",
    "due_date",
    "balance_as_of",
)
OPTIONAL_COLUMNS = ("account_last4", "birth_year", "product", "whatsapp_opt_in_at", "status")
_AMOUNT = re.compile(r"^(\d{1,3}(,\d{3})+|\d+)(\.\d{1,2})?$")
_REFERENCE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
_CENT = Decimal("0.01")
_MAX_AMOUNT = Decimal("999999999999.99")


class ImportFileError(ValueError):
    """The file as a whole cannot be read (missing columns, not CSV)."""


@dataclass
class RowError:
    """One rejected row."""

    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import did, row by row."""

    rows: int = 0
    accounts_created: int = 0
    accounts_updated: int = 0
    accounts_unchanged: int = 0
    debtors_created: int = 0
    debtors_updated: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        """Rows that passed validation."""
        return self.rows - len(self.errors)


@dataclass(frozen=True)
class _Row:
    line: int
    creditor_id: int
    reference: str
    debtor: dict
    account: dict


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def parse_amount(text: str, column: str) -> Decimal:
    text = text.strip()
    if not _AMOUNT.match(text):
        raise ValueError(f"{column} {text!r} is not an amount like 1500.00")
    try:
        value = Decimal(text.replace(",", "")).quantize(_CENT)
    except InvalidOperation as exc:  # pragma: no cover - the regex prevents it
        raise ValueError(f"{column} {text!r} is not an amount") from exc
    if value > _MAX_AMOUNT:
        raise ValueError(f"{column} {text!r} is too large")
    return value


def parse_date(text: str, column: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{column} {text!r} is not a date YYYY-MM-DD") from exc


def _opt_in(text: str) -> Optional[dt.datetime]:
    text = text.strip()
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"whatsapp_opt_in_at {text!r} is not an ISO date-time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"whatsapp_opt_in_at {text!r} needs a UTC offset")
    return moment.astimezone(dt.timezone.utc)


def _parse_row(raw: dict[str, str], line: int, creditors: dict[str, tuple[int, str]]) -> _Row:
    """Validates one CSV row; raises ValueError with the reason."""
    get = lambda column: (raw.get(column) or "").strip()  # noqa: E731
    missing = [column for column in REQUIRED_COLUMNS if not get(column)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    creditor = creditors.get(get("creditor"))
    if creditor is None:
        raise ValueError(f"unknown creditor {get('creditor')!r}")
    creditor_id, country = creditor
    reference = get("account_reference")
    if not _REFERENCE.match(reference):
        raise ValueError(f"account_reference {reference!r} must be 1-64 letters, digits or ._/-")
    try:
        phone = to_e164(get("phone"), country)
    except InvalidPhone:
        raise ValueError(f"phone {get('phone')!r} is not a valid number") from None
    language = get("language").lower()
    if language not in LANGUAGES:
        raise ValueError(f"language {get('language')!r} must be es or en")
    timezone = get("timezone")
    if timezone not in _zones():
        raise ValueError(f"timezone {timezone!r} is not an IANA time zone")
    currency = get("currency").upper()
    if currency not in CURRENCIES:
        raise ValueError(f"currency {get('currency')!r} must be one of {', '.join(CURRENCIES)}")
    original = parse_amount(get("original_amount"), "original_amount")
    balance = parse_amount(get("balance"), "balance")
    due_date = parse_date(get("due_date"), "due_date")
    as_of = parse_date(get("balance_as_of"), "balance_as_of")
    last4 = get("account_last4") or re.sub(r"\D", "", reference)[-4:]
    if not re.fullmatch(r"\d{4}", last4):
        raise ValueError("account_last4 must be 4 digits (or the reference must end in 4 digits)")
    birth_year: Optional[int] = None
    if get("birth_year"):
        if not re.fullmatch(r"(19|20)\d\d", get("birth_year")):
            raise ValueError(f"birth_year {get('birth_year')!r} is not a year")
        birth_year = int(get("birth_year"))
    status = get("status").lower() or ("paid" if balance == 0 else "active")
    if status not in ACCOUNT_STATUSES:
        raise ValueError(f"status {get('status')!r} must be one of {', '.join(ACCOUNT_STATUSES)}")
    name = " ".join(get("name").split())
    if len(name) > 200:
        raise ValueError("name is longer than 200 characters")
    return _Row(
        line=line,
        creditor_id=creditor_id,
        reference=reference,
        debtor={
            "phone": phone,
            "name": name,
            "language": language,
            "timezone": timezone,
            "birth_year": birth_year,
            "whatsapp_opt_in_at": _opt_in(get("whatsapp_opt_in_at")),
        },
        account={
            "last4": last4,
            "product": get("product") or None,
            "original_amount": original,
            "balance": balance,
            "currency": currency,
            "due_date": due_date,
            "balance_as_of": as_of,
            "status": status,
        },
    )


def read_rows(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of a UTF-8 CSV with the line each ends on; the header must have `required`."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [column.strip() for column in (reader.fieldnames or [])]
        missing = [column for column in required if column not in header]
        if missing:
            raise ImportFileError(f"{path}: missing columns: {', '.join(missing)}")
        reader.fieldnames = header
        for raw in reader:
            # The line where the row ends, which is where a person looks.
            yield reader.line_num, raw


def _same(current: object, wanted: object) -> bool:
    if isinstance(current, dt.datetime) and isinstance(wanted, dt.datetime):
        if current.tzinfo is None:  # SQLite returns naive UTC
            current = current.replace(tzinfo=dt.timezone.utc)
    return current == wanted


def _chunks(items: list, size: int = 900) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def import_portfolio(
    session: Session, path: Path, progress_factory: Optional[Callable[[Iterable], Iterable]] = None
) -> ImportReport:
    """Imports a portfolio CSV into the ledger.

    Args:
        session: an open unit of work; the caller commits.
        path: the CSV file (UTF-8, header row, columns as in the README).
        progress_factory: optional callable wrapping the row iterator (a
            progress bar such as `tqdm`).

    Returns:
        The counts and every rejected row with its line and reason.

    Raises:
        ImportFileError: when the header lacks required columns.
    """
    report = ImportReport()
    creditors = {
        code: (creditor_id, country)
        for creditor_id, code, country in session.execute(select(Creditor.id, Creditor.code, Creditor.country))
    }
    rows: list[_Row] = []
    seen: dict[tuple[int, str], int] = {}
    iterator = read_rows(path, REQUIRED_COLUMNS)
    if progress_factory is not None:
        iterator = progress_factory(iterator)
    for line, raw in iterator:
        report.rows += 1
        try:
            row = _parse_row(raw, line, creditors)
        except ValueError as exc:
            report.errors.append(RowError(line, str(exc)))
            continue
        key = (row.creditor_id, row.reference)
        if key in seen:
            report.errors.append(RowError(line, f"duplicate account {row.reference} (first on line {seen[key]})"))
            continue
        seen[key] = line
        rows.append(row)

    debtor_ids = _upsert_debtors(session, rows, report)
    _upsert_accounts(session, rows, debtor_ids, report)
    return report


def _upsert_debtors(session: Session, rows: list[_Row], report: ImportReport) -> dict[str, int]:
    # The last row for a phone wins, as in the creditor's own file.
    wanted = {row.debtor["phone"]: row.debtor for row in rows}
    existing: dict[str, Debtor] = {}
    for chunk in _chunks(list(wanted)):
        for debtor in session.execute(select(Debtor).where(Debtor.phone.in_(chunk))).scalars():
            existing[debtor.phone] = debtor
    inserts, updates = [], []
    for phone, values in wanted.items():
        current = existing.get(phone)
        if current is None:
            inserts.append(values)
            continue
        changed = {key: value for key, value in values.items() if not _same(getattr(current, key), value)}
        # An import never withdraws a recorded opt-in.
        if "whatsapp_opt_in_at" in changed and changed["whatsapp_opt_in_at"] is None:
            del changed["whatsapp_opt_in_at"]
        if changed:
            updates.append({"id": current.id, **changed})
    if inserts:
        session.bulk_insert_mappings(Debtor, inserts)
    if updates:
        session.bulk_update_mappings(Debtor, updates)
    report.debtors_created += len(inserts)
    report.debtors_updated += len(updates)
    ids = {phone: debtor.id for phone, debtor in existing.items()}
    new_phones = [values["phone"] for values in inserts]
    for chunk in _chunks(new_phones):
        for debtor_id, phone in session.execute(select(Debtor.id, Debtor.phone).where(Debtor.phone.in_(chunk))):
            ids[phone] = debtor_id
    return ids


def _upsert_accounts(session: Session, rows: list[_Row], debtor_ids: dict[str, int], report: ImportReport) -> None:
    existing: dict[tuple[int, str], dict] = {}
    columns = (
        [Account.id, Account.creditor_id, Account.reference, Account.debtor_id]
        + [getattr(Account, key) for key in rows[0].account]
        if rows
        else []
    )
    by_creditor: dict[int, list[str]] = {}
    for row in rows:
        by_creditor.setdefault(row.creditor_id, []).append(row.reference)
    for creditor_id, references in by_creditor.items():
        for chunk in _chunks(references):
            query = select(*columns).where(Account.creditor_id == creditor_id, Account.reference.in_(chunk))
            for record in session.execute(query).mappings():
                existing[(record["creditor_id"], record["reference"])] = dict(record)
    inserts, updates = [], []
    for row in rows:
        values = {**row.account, "debtor_id": debtor_ids[row.debtor["phone"]]}
        current = existing.get((row.creditor_id, row.reference))
        if current is None:
            inserts.append({**values, "creditor_id": row.creditor_id, "reference": row.reference})
            continue
        changed = {key: value for key, value in values.items() if not _same(current[key], value)}
        if changed:
            updates.append({"id": current["id"], **changed})
        else:
            report.accounts_unchanged += 1
    if inserts:
        session.bulk_insert_mappings(Account, inserts)
    if updates:
        session.bulk_update_mappings(Account, updates)
    report.accounts_created += len(inserts)
    report.accounts_updated += len(updates)
