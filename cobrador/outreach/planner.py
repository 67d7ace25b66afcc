"""Planning: which business-initiated messages are due, as jobs in the ledger.

Planning is idempotent: every message has a dedupe key (the kind and the
account and date, or the promise, instalment or payment it is about), and a
key that exists is never inserted again, so any number of planners can run at
any time. Dates are the debtor's local dates; a job becomes sendable at the
start of the contact window on its date, and the worker decides then whether
it may go (cobrador.policy.contact).

What is planned, per account (the rules are in docs/outreach.md):
- `first_notice` once for every active account with a balance;
- `pre_due`/`due`/`overdue` on due date + each configured offset, once the
  first notice has gone out (days before it are skipped) and while there is no
  pending promise or active plan;
- `promise_reminder` the day before a pending promise, `promise_broken` the
  day after it, `installment_reminder` the day before each pending instalment;
- `thank_you` for each payment recorded in the last week.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Iterable, Optional
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from cobrador.ledger.models import Account, Creditor, Debtor, Installment, Payment, PaymentPlan, Promise
from cobrador.ledger.models_outreach import OutreachJob
from cobrador.outreach.config import OutreachConfig
from cobrador.policy.contact import ContactRules

REMINDER_KINDS = ("pre_due", "due", "overdue")
# Disputed accounts are planned too: their jobs are held (and logged) until the dispute is resolved.
COLLECTABLE = ("active", "disputed")
EXPIRES_AFTER_DAYS = 3  # reminders still unsent this many days after their date are cancelled
LOOKBACK_DAYS = 7  # broken promises and payments older than this are not followed up any more
_UTC = dt.timezone.utc


@cache
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=4096)
def rules_for(start: str, end: str, cap: int) -> ContactRules:
    return ContactRules.from_strings(start, end, cap)


def local_today(now: dt.datetime, timezone: str) -> dt.date:
    return now.astimezone(zone(timezone)).date()


def window_opens(day: dt.date, timezone: str, rules: ContactRules) -> dt.datetime:
    """The UTC moment the contact window opens on a local date."""
    return dt.datetime.combine(day, rules.window_start, tzinfo=zone(timezone)).astimezone(_UTC)


def reminder_kind(offset: int) -> str:
    return "pre_due" if offset < 0 else "due" if offset == 0 else "overdue"


@dataclass(frozen=True)
class _Account:
    id: int
    debtor_id: int
    due_date: dt.date
    timezone: str
    creditor_code: str
    rules: ContactRules
    collectable: bool  # active or disputed with a balance: collection messages are planned


@dataclass(frozen=True)
class _Planned:
    key: str
    kind: str
    account: _Account
    due_on: dt.date
    subject_id: Optional[int] = None


def plan(session: Session, now: dt.datetime, config: OutreachConfig) -> int:
    """Inserts the jobs that are due by `now` and do not exist yet; returns how many."""
    accounts = _accounts(session)
    if not accounts:
        return 0
    existing = _existing_keys(session, now)
    first_sent = _first_notices_sent(session)
    promises = _pending_promises(session)
    plans = _active_plans(session)
    promise_ended = _last_promise_resolution(session)
    planned: list[_Planned] = []
    for account in accounts.values():
        if not account.collectable:
            continue
        today = local_today(now, account.timezone)
        planned.append(_Planned(f"first_notice:{account.id}", "first_notice", account, today))
        sent_on = first_sent.get(account.id)
        if sent_on is None:
            continue  # nothing else before the first notice
        first_day = sent_on.astimezone(zone(account.timezone)).date()
        # After a promise ends (kept, broken, cancelled), reminders resume on
        # the next cadence day, never with the days it covered.
        ended = promise_ended.get(account.id)
        resume = (
            max(first_day, ended.astimezone(zone(account.timezone)).date() + dt.timedelta(days=1))
            if ended
            else first_day
        )
        offsets = config.for_creditor(account.creditor_code).reminders
        if account.id not in promises and account.id not in plans:
            for offset in offsets:
                day = account.due_date + dt.timedelta(days=offset)
                if resume <= day <= today and day >= today - dt.timedelta(days=EXPIRES_AFTER_DAYS):
                    kind = reminder_kind(offset)
                    planned.append(_Planned(f"{kind}:{account.id}:{day.isoformat()}", kind, account, day))
        for promise_id, due, created in promises.get(account.id, ()):
            created_day = created.astimezone(zone(account.timezone)).date()
            eve = due - dt.timedelta(days=1)
            if created_day < eve <= today <= due:
                planned.append(_Planned(f"promise_reminder:{promise_id}", "promise_reminder", account, eve, promise_id))
        for installment_id, due, created in plans.get(account.id, ()):
            created_day = created.astimezone(zone(account.timezone)).date()
            eve = due - dt.timedelta(days=1)
            if created_day < eve <= today <= due:
                key = f"installment_reminder:{installment_id}"
                planned.append(_Planned(key, "installment_reminder", account, eve, installment_id))
    planned.extend(_broken_promises(session, now, accounts))
    planned.extend(_thank_yous(session, now, accounts))
    new = [p for p in planned if p.key not in existing]
    _insert(session, new, now)
    return len(new)


def _accounts(session: Session) -> dict[int, _Account]:
    """Every account that may be written to about its debt, or thanked (any status)."""
    rows = session.execute(
        select(
            Account.id, Account.debtor_id, Account.due_date, Account.status, Account.balance, Debtor.timezone,
            Creditor.code, Creditor.contact_window_start, Creditor.contact_window_end,
            Creditor.max_attempts_per_7_days,
        )
        .join(Debtor, Debtor.id == Account.debtor_id)
        .join(Creditor, Creditor.id == Account.creditor_id)
    )  # fmt: skip
    return {
        account_id: _Account(
            account_id,
            debtor_id,
            due,
            timezone,
            code,
            rules_for(start, end, cap),
            status in COLLECTABLE and balance > 0,
        )
        for account_id, debtor_id, due, status, balance, timezone, code, start, end, cap in rows
    }


def _existing_keys(session: Session, now: dt.datetime) -> set[str]:
    horizon = (now - dt.timedelta(days=LOOKBACK_DAYS + EXPIRES_AFTER_DAYS + 2)).date()
    rows = session.execute(
        select(OutreachJob.dedupe_key).where(
            or_(
                OutreachJob.kind.in_(("first_notice", "promise_broken", "thank_you")),
                OutreachJob.due_on >= horizon,
            )
        )
    )
    return {key for (key,) in rows}


def _first_notices_sent(session: Session) -> dict[int, dt.datetime]:
    rows = session.execute(
        select(OutreachJob.account_id, OutreachJob.sent_at).where(
            OutreachJob.kind == "first_notice", OutreachJob.status == "sent"
        )
    )
    return {account_id: _aware(sent_at) for account_id, sent_at in rows}


def _pending_promises(session: Session) -> dict[int, list[tuple[int, dt.date, dt.datetime]]]:
    found: dict[int, list] = defaultdict(list)
    rows = session.execute(
        select(Promise.account_id, Promise.id, Promise.due_date, Promise.created_at).where(Promise.status == "pending")
    )
    for account_id, promise_id, due, created in rows:
        found[account_id].append((promise_id, due, _aware(created)))
    return found


def _last_promise_resolution(session: Session) -> dict[int, dt.datetime]:
    rows = session.execute(
        select(Promise.account_id, func.max(Promise.resolved_at))
        .where(Promise.status != "pending", Promise.resolved_at.isnot(None))
        .group_by(Promise.account_id)
    )
    return {account_id: _aware(resolved) for account_id, resolved in rows}


def _active_plans(session: Session) -> dict[int, list[tuple[int, dt.date, dt.datetime]]]:
    found: dict[int, list] = defaultdict(list)
    rows = session.execute(
        select(PaymentPlan.account_id, Installment.id, Installment.due_date, PaymentPlan.created_at)
        .join(Installment, Installment.plan_id == PaymentPlan.id)
        .where(PaymentPlan.status == "active", Installment.status == "pending")
    )
    for account_id, installment_id, due, created in rows:
        found[account_id].append((installment_id, due, _aware(created)))
    return found


def _broken_promises(session: Session, now: dt.datetime, accounts: dict[int, _Account]) -> Iterable[_Planned]:
    """The day after a promise that was not kept (still pending, or marked broken
    by the payments import), within the look-back."""
    oldest = (now - dt.timedelta(days=LOOKBACK_DAYS + 2)).date()
    rows = session.execute(
        select(Promise.id, Promise.account_id, Promise.due_date).where(
            Promise.status.in_(("pending", "broken")), Promise.due_date >= oldest
        )
    )
    for promise_id, account_id, due in rows:
        account = accounts.get(account_id)
        if account is None or not account.collectable:
            continue
        day_after = due + dt.timedelta(days=1)
        today = local_today(now, account.timezone)
        if today - dt.timedelta(days=LOOKBACK_DAYS) <= day_after <= today:
            yield _Planned(f"promise_broken:{promise_id}", "promise_broken", account, day_after, promise_id)


def _thank_yous(session: Session, now: dt.datetime, accounts: dict[int, _Account]) -> Iterable[_Planned]:
    since = now - dt.timedelta(days=LOOKBACK_DAYS)
    rows = session.execute(
        select(Payment.id, Payment.account_id, Payment.created_at).where(
            and_(Payment.created_at >= since, Payment.created_at <= now)
        )
    )
    for payment_id, account_id, created in rows:
        account = accounts.get(account_id)
        if account is not None:
            day = _aware(created).astimezone(zone(account.timezone)).date()
            yield _Planned(f"thank_you:{payment_id}", "thank_you", account, day, payment_id)


def _insert(session: Session, planned: list[_Planned], now: dt.datetime) -> None:
    """Inserts new jobs; a key another planner inserted meanwhile is skipped."""
    if not planned:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    rows = []
    for item in planned:
        opens = window_opens(item.due_on, item.account.timezone, item.account.rules)
        rows.append(
            {
                "dedupe_key": item.key, "kind": item.kind, "account_id": item.account.id,
                "debtor_id": item.account.debtor_id, "subject_id": item.subject_id, "due_on": item.due_on,
                "status": "pending", "not_before": opens, "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
    for start in range(0, len(rows), 5000):
        statement = insert(OutreachJob).on_conflict_do_nothing(index_elements=["dedupe_key"])
        session.execute(statement, rows[start : start + 5000])


def _aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes for timezone-aware columns: they are UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_UTC)
