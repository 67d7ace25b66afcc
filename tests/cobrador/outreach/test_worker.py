"""The outreach worker on a real ledger (SQLite and PostgreSQL), with an injected clock."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cobrador.ledger import commands, messages
from cobrador.ledger.db import session_scope
from cobrador.ledger.models import Installment, Message, Payment, PaymentPlan, Promise
from cobrador.ledger.models_outreach import OutreachJob
from cobrador.outreach import decisions, dry_run, run_once, sent_messages
from tests.cobrador.outreach.conftest import Book, at

MONDAY = dt.date(2026, 11, 23)


def run(book: Book, when: str, worker: str = "w1"):
    return run_once(at(when), database_url=book.url, sender="local", worker_id=worker, sleep=lambda _: None)


def test_first_notice_waits_for_the_window_in_the_debtors_zone(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=MONDAY + dt.timedelta(days=10))
    assert run(book, "2026-11-23T06:59:00-06:00").sent == 0  # Mexico City has no DST: UTC-6
    assert book.sent(account) == []
    assert run(book, "2026-11-23T07:00:00-06:00").sent == 1
    (record,) = sent_messages(book.url)
    assert record.kind == "first_notice" and record.account_reference == "REF-00001"
    assert record.variables["amount"] == "$1,500.00 MXN"
    assert record.variables["collector"] == "Cobrador Servicios de Cobranza"
    assert record.variables["complaints"] == "CONDUSEF 55 5340 0999"
    assert record.variables["pay_how"] == "https://pay.example/REF-00001"
    assert record.template_sid.startswith("HX")
    with session_scope(book.url) as session:
        (outbox,) = session.execute(select(Message).where(Message.direction == "outbound")).scalars()
        assert outbox.status == "queued" and outbox.template_sid == record.template_sid
        assert outbox.body.startswith("Hola María, te escribe Cobrador Servicios de Cobranza en nombre de MX Presta")
        assert "Responde BAJA" in outbox.body


def test_us_windows_follow_daylight_saving(book: Book) -> None:
    us = book.creditor("US", window=("08:00", "21:00"), disclosure=True)
    # Due Monday 2 November: DST ended on Sunday 1 November (PDT UTC-7 -> PST UTC-8).
    account = book.account(us, due=dt.date(2026, 11, 2), tz="America/Los_Angeles", language="en")
    assert run(book, "2026-10-30T14:59:00+00:00").sent == 0  # 07:59 PDT
    assert run(book, "2026-10-30T15:00:00+00:00").sent == 1  # 08:00 PDT
    (notice,) = sent_messages(book.url)
    assert notice.variables["collector"] == "Cobrador Servicios de Cobranza, a debt collector"
    assert run(book, "2026-11-02T15:30:00+00:00").sent == 0  # 07:30 PST: a day earlier this was 08:30
    assert run(book, "2026-11-02T16:00:00+00:00").sent == 1  # 08:00 PST
    assert book.sent(account) == ["first_notice", "due"]
    assert run(book, "2026-11-03T05:00:00+00:00").sent == 0  # 21:00 PST: the window has closed


def test_pre_due_reminder_and_no_reminders_before_the_first_notice(book: Book) -> None:
    mx = book.creditor()
    early = book.account(mx, due=MONDAY + dt.timedelta(days=3))
    run(book, "2026-11-20T08:00:00-06:00")  # Friday: D-6 for `early`
    late = book.account(mx, due=MONDAY - dt.timedelta(days=5))  # imported on Monday, its D+5
    run(book, "2026-11-23T08:00:00-06:00")  # Monday: its D-3, and `late` imported at its D+5
    assert book.sent(early) == ["first_notice", "pre_due"]
    assert book.sent(late) == ["first_notice"]  # the D+3 overdue day passed before it: never sent
    run(book, "2026-11-24T08:00:00-06:00")
    run(book, "2026-11-25T08:00:00-06:00")
    assert book.sent(late) == ["first_notice", "overdue"]  # D+7
    run(book, "2026-11-26T08:00:00-06:00")
    assert book.sent(early) == ["first_notice", "pre_due", "due"]


def test_the_first_notice_day_reminder_goes_after_it(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=MONDAY + dt.timedelta(days=3))  # D-3 is today
    run(book, "2026-11-23T08:00:00-06:00")
    assert book.sent(account) == ["first_notice"]  # reminders are planned once the notice is out
    run(book, "2026-11-23T08:30:00-06:00")
    assert book.sent(account) == ["first_notice", "pre_due"]


@pytest.mark.parametrize(
    ("block", "outcome", "reason"),
    [
        ("opt_out", "cancelled", "opted_out"),
        ("wrong_number", "cancelled", "wrong_number"),
        ("no_opt_in", "held", "no_opt_in"),
        ("dispute", "held", "disputed"),
        ("escalation", "held", "open_escalation"),
        ("claim", "held", "claim_pending"),
    ],
)
def test_standing_blocks_hold_or_cancel_and_say_why(book: Book, block: str, outcome: str, reason: str) -> None:
    mx = book.creditor()
    kwargs = {"opt_in": None} if block == "no_opt_in" else {}
    job_account = book.account(mx, due=MONDAY + dt.timedelta(days=10), **kwargs)
    with session_scope(book.url) as session:
        from cobrador.ledger.models import Account, Debtor

        row = session.get(Account, job_account)
        phone = session.get(Debtor, row.debtor_id).phone
        if block == "opt_out":
            commands.record_opt_out(session, phone, keyword="BAJA")
        elif block == "wrong_number":
            commands.mark_wrong_number(session, phone)
        elif block == "dispute":
            commands.open_dispute(session, job_account, "no es mi deuda", phone)
        elif block == "escalation":
            commands.escalate(session, phone, "complaint", "me molestan", account_id=job_account)
        elif block == "claim":
            commands.record_payment_claim(session, job_account, amount=Decimal("100"), paid_on=MONDAY)
    assert run(book, "2026-11-23T09:00:00-06:00").sent == 0
    assert book.sent(job_account) == []
    (kind, got_outcome, got_reason) = book.log(job_account)[-1]
    assert (kind, got_outcome, got_reason) == ("first_notice", outcome, reason)
    if outcome == "held":
        # Held jobs are looked at again later, not dropped.
        (job,) = [j for j in book.jobs(job_account) if j.kind == "first_notice"]
        assert job.status == "pending"


def test_an_open_escalation_holds_until_it_is_resolved(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=MONDAY + dt.timedelta(days=10))
    with session_scope(book.url) as session:
        from cobrador.ledger.models import Account, Debtor

        phone = session.get(Debtor, session.get(Account, account).debtor_id).phone
        escalation_id, _ = commands.escalate(session, phone, "request_agent", "quiero una persona")
    run(book, "2026-11-23T09:00:00-06:00")
    assert book.sent(account) == []
    with session_scope(book.url) as session:
        commands.resolve_escalation(session, escalation_id)
    run(book, "2026-11-23T09:59:00-06:00")
    assert book.sent(account) == []  # held jobs are re-checked every hour
    run(book, "2026-11-23T10:00:00-06:00")
    assert book.sent(account) == ["first_notice"]
    # The hold was logged once, not at every re-check, and its end shows as the send.
    assert book.log(account) == [("first_notice", "held", "open_escalation"), ("first_notice", "sent", "allowed")]


def test_the_cap_defers_to_when_an_attempt_leaves_the_week(book: Book) -> None:
    mx = book.creditor(cap=2)
    account = book.account(mx, due=dt.date(2026, 11, 24), tz="America/Mexico_City")
    run(book, "2026-11-21T10:00:00-06:00")  # Saturday: first notice (1)
    run(book, "2026-11-24T10:00:00-06:00")  # Tuesday: due reminder (2)
    assert book.sent(account) == ["first_notice", "due"]
    with session_scope(book.url) as session:
        session.add(
            Payment(
                account_id=account, amount=Decimal("100.00"), paid_on=dt.date(2026, 11, 24),
                created_at=at("2026-11-24T10:30:00-06:00"),
            )
        )  # fmt: skip
    run(book, "2026-11-24T11:00:00-06:00")  # a thank-you would be the third in 7 days
    assert book.sent(account) == ["first_notice", "due"]
    kind, outcome, reason = book.log(account)[-1]
    assert (kind, outcome, reason) == ("thank_you", "deferred", "cap_reached")
    (thanks,) = [j for j in book.jobs(account) if j.kind == "thank_you"]
    assert thanks.not_before.replace(tzinfo=dt.timezone.utc) == at("2026-11-28T10:00:00-06:00")  # first + 7 days
    run(book, "2026-11-28T09:59:00-06:00")
    assert "thank_you" not in book.sent(account)
    run(book, "2026-11-28T10:00:00-06:00")
    assert book.sent(account)[-1] == "thank_you"


def test_a_deferred_reminder_is_superseded_by_the_next_and_old_ones_expire(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 26))
    run(book, "2026-11-20T09:00:00-06:00")  # first notice
    with session_scope(book.url) as session:
        from cobrador.ledger.models import Account, Debtor

        phone = session.get(Debtor, session.get(Account, account).debtor_id).phone
        escalation_id, _ = commands.escalate(session, phone, "complaint", "queja")
    run(book, "2026-11-23T09:00:00-06:00")  # D-3 held by the escalation
    run(book, "2026-11-26T09:00:00-06:00")  # D0 due: D-3 superseded, D0 held
    with session_scope(book.url) as session:
        commands.resolve_escalation(session, escalation_id)
    run(book, "2026-11-26T10:00:00-06:00")  # the hourly re-check of held jobs
    assert book.sent(account) == ["first_notice", "due"]
    reasons = [(kind, outcome, reason) for kind, outcome, reason in book.log(account)]
    assert ("pre_due", "cancelled", "superseded") in reasons
    # A reminder nobody could send for more than 3 days expires.
    with session_scope(book.url) as session:
        escalation_id, _ = commands.escalate(session, phone, "complaint", "otra queja")
    run(book, "2026-11-29T09:00:00-06:00")  # D+3 held
    run(book, "2026-12-03T09:00:00-06:00")  # D+3 now 4 days old: expired; D+7 held
    with session_scope(book.url) as session:
        commands.resolve_escalation(session, escalation_id)
    run(book, "2026-12-03T10:00:00-06:00")
    assert book.sent(account) == ["first_notice", "due", "overdue"]
    assert ("overdue", "cancelled", "expired") in book.log(account)
    (late,) = [j for j in book.jobs(account) if j.kind == "overdue" and j.status == "sent"]
    assert late.due_on == dt.date(2026, 12, 3)


def test_promise_reminder_then_broken_promise(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20))
    run(book, "2026-11-20T09:00:00-06:00")
    with session_scope(book.url) as session:
        promise_id = commands.record_promise(session, account, Decimal("500.00"), dt.date(2026, 11, 25))
        session.get(Promise, promise_id).created_at = at("2026-11-20T12:00:00-06:00")  # made Friday
    run(book, "2026-11-23T09:00:00-06:00")  # D+3: no overdue reminder while a promise is pending
    run(book, "2026-11-24T09:00:00-06:00")  # the eve
    assert book.sent(account) == ["first_notice", "promise_reminder"]
    (reminder,) = [r for r in sent_messages(book.url) if r.kind == "promise_reminder"]
    assert reminder.variables["promise_amount"] == "$500.00 MXN"
    assert reminder.variables["promise_date"] == "miércoles 25 de noviembre"
    run(book, "2026-11-26T09:00:00-06:00")  # the day after, unpaid
    assert book.sent(account)[-1] == "promise_broken"
    with session_scope(book.url) as session:
        assert session.execute(select(Promise.status)).scalar_one() == "broken"


def test_a_kept_promise_gets_no_broken_promise_message(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20))
    run(book, "2026-11-20T09:00:00-06:00")
    with session_scope(book.url) as session:
        promise_id = commands.record_promise(session, account, Decimal("500.00"), dt.date(2026, 11, 25))
        promise = session.get(Promise, promise_id)
        promise.created_at = at("2026-11-20T12:00:00-06:00")
        promise.status = "kept"  # what the payments import does
    run(book, "2026-11-26T09:00:00-06:00")
    assert "promise_broken" not in book.sent(account)


def test_instalment_reminders_the_day_before_each(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20), balance="900.00")
    run(book, "2026-11-20T09:00:00-06:00")
    with session_scope(book.url) as session:
        plan_id = commands.record_plan(
            session, account, "weekly", [Decimal("300")] * 3,
            [dt.date(2026, 11, 27), dt.date(2026, 12, 4), dt.date(2026, 12, 11)],
        )  # fmt: skip
        session.get(PaymentPlan, plan_id).created_at = at("2026-11-20T12:00:00-06:00")
    for day in range(21, 31):
        run(book, f"2026-11-{day:02d}T09:00:00-06:00")
    for day in range(1, 12):
        run(book, f"2026-12-{day:02d}T09:00:00-06:00")
    assert book.sent(account) == ["first_notice"] + ["installment_reminder"] * 3
    numbers = [r.variables["installment_number"] for r in sent_messages(book.url) if r.kind == "installment_reminder"]
    assert numbers == ["1", "2", "3"]


def test_one_thank_you_per_payment(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20))
    run(book, "2026-11-20T09:00:00-06:00")
    with session_scope(book.url) as session:
        session.add(
            Payment(
                account_id=account, amount=Decimal("250.00"), paid_on=dt.date(2026, 11, 20),
                created_at=at("2026-11-20T09:30:00-06:00"),
            )
        )  # fmt: skip
    run(book, "2026-11-20T10:00:00-06:00")
    run(book, "2026-11-20T10:30:00-06:00")
    assert book.sent(account).count("thank_you") == 1
    (thanks,) = [r for r in sent_messages(book.url) if r.kind == "thank_you"]
    assert thanks.variables["payment_amount"] == "$250.00 MXN"


def test_a_second_pass_at_the_same_moment_sends_nothing(book: Book) -> None:
    mx = book.creditor()
    for _ in range(5):
        book.account(mx, due=MONDAY + dt.timedelta(days=10))
    assert run(book, "2026-11-23T09:00:00-06:00").sent == 5
    again = run(book, "2026-11-23T09:00:00-06:00")
    assert (again.planned, again.sent) == (0, 0)


def test_a_worker_that_died_mid_send_is_not_resent(book: Book) -> None:
    mx = book.creditor()
    account = book.account(mx, due=MONDAY + dt.timedelta(days=10))
    run(book, "2026-11-23T06:00:00-06:00")  # planned, not yet in the window
    with session_scope(book.url) as session:  # what a crash after claiming leaves behind
        job = session.execute(select(OutreachJob)).scalar_one()
        job.status, job.claimed_by, job.claimed_at = "claimed", "dead-worker", at("2026-11-23T07:00:00-06:00")
    report = run(book, "2026-11-23T07:30:00-06:00")
    assert (report.sent, report.unknown) == (0, 1)
    (job,) = book.jobs(account)
    assert job.status == "unknown"
    with session_scope(book.url) as session:
        assert session.execute(select(func.count()).select_from(Message)).scalar_one() == 0


def test_two_workers_at_once_send_every_job_exactly_once(book: Book) -> None:
    mx = book.creditor()
    accounts = [book.account(mx, due=MONDAY + dt.timedelta(days=10)) for _ in range(60)]
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        try:
            run(book, "2026-11-23T09:00:00-06:00", worker=name)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    sent = sent_messages(book.url)
    assert sorted(r.account_reference for r in sent) == sorted(f"REF-{n:05d}" for n in range(1, 61))
    with session_scope(book.url) as session:
        assert session.execute(select(func.count()).select_from(Message)).scalar_one() == len(accounts)


def test_dry_run_prints_and_changes_nothing(book: Book) -> None:
    mx = book.creditor()
    book.account(mx, due=MONDAY + dt.timedelta(days=10), phone="+525551230001")
    book.account(mx, due=MONDAY + dt.timedelta(days=10), tz="America/Tijuana", phone="+526641230002")
    lines = dry_run(at("2026-11-23T07:30:00-06:00"), database_url=book.url)
    assert any("first_notice" in line and "***0001 would send: allowed" in line for line in lines)
    assert any("***0002 scheduled 2026-11-23 07:00 PST" in line for line in lines)
    assert book.jobs() == [] and decisions(book.url) == []


def test_inbound_message_does_not_count_as_an_attempt(book: Book) -> None:
    mx = book.creditor(cap=1)
    account = book.account(mx, due=MONDAY + dt.timedelta(days=10), phone="+525551239999")
    with session_scope(book.url) as session:
        messages.record_inbound(session, "SM" + "1" * 32, "+525551239999", "hola", [])
    run(book, "2026-11-23T09:00:00-06:00")
    assert book.sent(account) == ["first_notice"]


def test_instalments_plan_rows_exist(book: Book) -> None:
    # Guard for the instalment test: the plan command stores one row per instalment.
    mx = book.creditor()
    account = book.account(mx, due=dt.date(2026, 11, 20), balance="600.00")
    with session_scope(book.url) as session:
        commands.record_plan(
            session, account, "weekly", [Decimal("300")] * 2, [dt.date(2026, 11, 27), dt.date(2026, 12, 4)]
        )
        assert session.execute(select(func.count()).select_from(Installment)).scalar_one() == 2
