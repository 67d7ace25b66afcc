"""Payments import: the creditor's reconciliation file into the ledger.

`python -m cobrador import-payments FILE.csv`. Each row is one payment the
creditor confirms it received. Rows are validated one by one like the
portfolio import (bad rows reported with their line and reason, the good ones
applied in one transaction); a payment is identified by its account and the
creditor's `external_reference`, so importing a file again applies nothing
twice. Applying a payment lowers the balance (an account reaching zero is
`paid`), pays instalments of the active plan in order, keeps or breaks
promises and confirms matching payment claims. The thank-you message is the
outreach worker's: it plans one for every new payment row.

The column format is in docs/payments-and-export.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable, Iterable, Optional

from sqlalchemy import select
from sqlalchemy.orm import Session

from cobrador.ledger.importer import ImportFileError, RowError, parse_amount, parse_date, read_rows
from cobrador.ledger.models import Account, Creditor, Debtor, Payment, PaymentClaim, PaymentPlan, Promise, utcnow

REQUIRED_COLUMNS = ("creditor", "account_reference", "amount", "paid_on", "external_reference")
_EXTERNAL = re.compile(r"^[^\x00-\x1f]{1,120}$")
_ZERO = Decimal("0.00")

__all__ = ["ImportFileError", "PaymentReport", "import_payments"]


@dataclass
class PaymentReport:
    """What an import did."""

    rows: int = 0
    applied: int = 0
    already_applied: int = 0
    errors: list[RowError] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    totals: dict[str, Decimal] = field(default_factory=dict)  # currency -> amount applied
    promises_kept: int = 0
    promises_broken: int = 0
    installments_paid: int = 0
    plans_completed: int = 0
    accounts_paid_off: int = 0
    claims_confirmed: int = 0


@dataclass(frozen=True)
class _Row:
    line: int
    account_id: int
    amount: Decimal
    paid_on: dt.date
    external_reference: str
    method: Optional[str]


def import_payments(
    session: Session,
    path: Path,
    *,
    today: dt.date,
    progress_factory: Optional[Callable[[Iterable], Iterable]] = None,
    now: Optional[dt.datetime] = None,
) -> PaymentReport:
    """Applies a reconciliation CSV to the ledger.

    Args:
        session: an open unit of work; the caller commits.
        path: the CSV (UTF-8, header row).
        today: the date of the import (payments cannot be later; promises
            due before it and not covered are broken).
        progress_factory: optional wrapper of the row iterator (a progress bar).
        now: when the payments are recorded (default: the clock; tests and
            simulations pass theirs).

    Raises:
        ImportFileError: the header lacks required columns.
    """
    report = PaymentReport()
    accounts = _accounts_by_reference(session)
    known = {tuple(row) for row in session.execute(select(Payment.account_id, Payment.external_reference))}
    rows: list[_Row] = []
    seen: dict[tuple[int, str], int] = {}
    iterator = read_rows(path, REQUIRED_COLUMNS)
    if progress_factory is not None:
        iterator = progress_factory(iterator)
    for line, raw in iterator:
        report.rows += 1
        try:
            row = _parse(raw, line, accounts, today)
        except ValueError as exc:
            report.errors.append(RowError(line, str(exc)))
            continue
        key = (row.account_id, row.external_reference)
        if key in seen:
            report.errors.append(
                RowError(line, f"duplicate payment {row.external_reference} (first on line {seen[key]})")
            )
            continue
        seen[key] = line
        if key in known:
            report.already_applied += 1
            continue
        rows.append(row)
    by_account: dict[int, list[_Row]] = defaultdict(list)
    for row in rows:
        by_account[row.account_id].append(row)
    for account_id, payments in by_account.items():
        _apply(session, session.get(Account, account_id), payments, today, now or utcnow(), report)
    report.applied = len(rows)
    return report


def _accounts_by_reference(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(Creditor.code, Account.reference, Account.id).join(Creditor, Creditor.id == Account.creditor_id)
    )
    return {(code, reference): account_id for code, reference, account_id in rows}


def _parse(raw: dict[str, str], line: int, accounts: dict[tuple[str, str], int], today: dt.date) -> _Row:
    get = lambda column: (raw.get(column) or "").strip()  # noqa: E731
    missing = [column for column in REQUIRED_COLUMNS if not get(column)]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    account_id = accounts.get((get("creditor"), get("account_reference")))
    if account_id is None:
        raise ValueError(f"unknown account {get('account_reference')!r} of creditor {get('creditor')!r}")
    amount = parse_amount(get("amount"), "amount")
    if amount <= 0:
        raise ValueError("amount must be more than zero")
    paid_on = parse_date(get("paid_on"), "paid_on")
    if paid_on > today:
        raise ValueError(f"paid_on {paid_on.isoformat()} is after today ({today.isoformat()})")
    external = get("external_reference")
    if not _EXTERNAL.match(external):
        raise ValueError("external_reference must be 1-120 printable characters")
    method = get("method")[:40] or None
    return _Row(line, account_id, amount, paid_on, external, method)


def _apply(
    session: Session, account: Account, payments: list[_Row], today: dt.date, now: dt.datetime, report: PaymentReport
) -> None:
    for row in payments:
        session.add(
            Payment(
                account_id=account.id, amount=row.amount, paid_on=row.paid_on,
                external_reference=row.external_reference, method=row.method, created_at=now,
            )
        )  # fmt: skip
        report.totals[account.currency] = report.totals.get(account.currency, _ZERO) + row.amount
    session.flush()
    received = sum((row.amount for row in payments), _ZERO)
    last_line = payments[-1].line
    if account.status == "closed":
        report.warnings.append(RowError(last_line, f"account {account.reference} is closed: payment recorded only"))
        return
    if received > account.balance:
        report.warnings.append(
            RowError(last_line, f"account {account.reference}: {received - account.balance} more than the balance")
        )
    account.balance = max(_ZERO, account.balance - received)
    if account.status == "disputed":
        report.warnings.append(RowError(last_line, f"account {account.reference} is disputed: status unchanged"))
    elif account.balance == _ZERO and account.status == "active":
        account.status = "paid"
        report.accounts_paid_off += 1
    _pay_installments(session, account, received, now, report)
    _settle_promises(session, account, today, now, report)
    _confirm_claims(session, account, payments, now, report)


def _pay_installments(session: Session, account: Account, money: Decimal, now: dt.datetime, report) -> None:  # noqa: ANN001
    """New money pays the active plan's pending instalments in due order; a
    partly covered instalment stays pending (no partial allocation is kept)."""
    plan = session.execute(
        select(PaymentPlan).where(PaymentPlan.account_id == account.id, PaymentPlan.status == "active")
    ).scalar_one_or_none()
    if plan is None:
        return
    for installment in sorted(plan.installments, key=lambda i: (i.due_date, i.seq)):
        if installment.status != "pending":
            continue
        if money < installment.amount and account.balance > _ZERO:
            break
        money = max(_ZERO, money - installment.amount)
        installment.status, installment.paid_at = "paid", now
        report.installments_paid += 1
    if all(i.status == "paid" for i in plan.installments):
        plan.status = "completed"
        report.plans_completed += 1


def _settle_promises(session: Session, account: Account, today: dt.date, now: dt.datetime, report) -> None:  # noqa: ANN001
    """Kept: payments made on or before its date, since it was made, cover it.
    Broken: its date has passed (before today) and they do not."""
    promises = session.execute(
        select(Promise).where(Promise.account_id == account.id, Promise.status == "pending")
    ).scalars()
    payments = session.execute(select(Payment.paid_on, Payment.amount).where(Payment.account_id == account.id)).all()
    timezone = session.execute(select(Debtor.timezone).where(Debtor.id == account.debtor_id)).scalar_one()
    for promise in promises:
        made_on = _local_date(promise.created_at, timezone)
        paid = sum((amount for paid_on, amount in payments if made_on <= paid_on <= promise.due_date), _ZERO)
        if paid >= promise.amount or account.balance == _ZERO:
            promise.status, promise.resolved_at = "kept", now
            report.promises_kept += 1
        elif promise.due_date < today:
            promise.status, promise.resolved_at = "broken", now
            report.promises_broken += 1


def _confirm_claims(session: Session, account: Account, payments: list[_Row], now: dt.datetime, report) -> None:  # noqa: ANN001
    amounts = [row.amount for row in payments]
    claims = session.execute(
        select(PaymentClaim).where(PaymentClaim.account_id == account.id, PaymentClaim.status == "pending")
    ).scalars()
    for claim in claims:
        if account.balance == _ZERO or (claim.amount is not None and claim.amount in amounts):
            if claim.amount in amounts:
                amounts.remove(claim.amount)
            claim.status, claim.resolved_at = "confirmed", now
            report.claims_confirmed += 1


def _local_date(moment: dt.datetime, timezone: str) -> dt.date:
    from zoneinfo import ZoneInfo

    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(ZoneInfo(timezone)).date()
