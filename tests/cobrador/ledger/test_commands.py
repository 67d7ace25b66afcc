"""Write-side commands: exact ledger effects, on SQLite and PostgreSQL."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cobrador.ledger.commands import (
    CASE_PREFIXES,
    LedgerError,
    escalate,
    mark_wrong_number,
    open_dispute,
    record_opt_out,
    record_payment_claim,
    record_plan,
    record_promise,
    resolve_escalation,
    set_language,
)
from cobrador.ledger.db import session_scope
from cobrador.ledger.lookups import find_debtor, is_paused, open_accounts, open_escalation
from cobrador.ledger.models import (
    ESCALATION_REASONS,
    Account,
    Creditor,
    Debtor,
    Escalation,
    Installment,
    OptOut,
    PaymentClaim,
    PaymentPlan,
    Promise,
)

PHONE = "+525550000101"
OTHER_PHONE = "+525550000102"
D = Decimal


def _ledger(session) -> dict[str, int]:
    """One creditor, one debtor with an active (1000.00) and a second (80.50) account."""
    creditor = Creditor(code="amigo", legal_name="Crédito Amigo SA", display_name="Amigo", collector_name="Cobrador")
    debtor = Debtor(phone=PHONE, name="Ana López")
    accounts = [
        Account(
            creditor=creditor,
            debtor=debtor,
            reference=reference,
            last4=reference[-4:],
            original_amount=D("5000.00"),
            balance=D(balance),
            currency="MXN",
            due_date=dt.date(2026, 10, 1),
            balance_as_of=dt.date(2026, 11, 20),
        )
        for reference, balance in (("AM-0001", "1000.00"), ("AM-0002", "80.50"))
    ]
    session.add_all(accounts)
    session.flush()
    return {"debtor": debtor.id, "account": accounts[0].id, "second": accounts[1].id}


def _promises(session, account_id: int) -> list[tuple[Decimal, dt.date, str, bool]]:
    return [
        (p.amount, p.due_date, p.status, p.resolved_at is not None)
        for p in session.execute(select(Promise).where(Promise.account_id == account_id).order_by(Promise.id)).scalars()
    ]


def _count(session, model) -> int:
    return session.execute(select(func.count(model.id))).scalar_one()


# Promises ------------------------------------------------------------------


def test_record_promise_supersedes_the_pending_one(session) -> None:
    ids = _ledger(session)
    first = record_promise(session, ids["account"], D("400.00"), dt.date(2026, 11, 28), source_message_sid="SM1")
    assert isinstance(first, int)
    row = session.get(Promise, first)
    assert (row.source_message_sid, row.created_by, row.status, row.resolved_at) == ("SM1", "bot", "pending", None)
    second = record_promise(session, ids["account"], D("1000.00"), dt.date(2026, 11, 30), created_by="agent:7")
    assert second != first
    assert _promises(session, ids["account"]) == [
        (D("400.00"), dt.date(2026, 11, 28), "cancelled", True),
        (D("1000.00"), dt.date(2026, 11, 30), "pending", False),
    ]
    assert session.get(Promise, second).created_by == "agent:7"
    # Another account's promise is untouched by this one.
    record_promise(session, ids["second"], D("80.50"), dt.date(2026, 12, 1))
    assert [p[2] for p in _promises(session, ids["account"])] == ["cancelled", "pending"]
    assert open_accounts(session, ids["debtor"])[0].pending_promise == (D("1000.00"), dt.date(2026, 11, 30))


def test_one_message_records_one_promise_plan_and_claim_however_often_its_turn_runs(session) -> None:
    """A message's turn that runs again (Rasa died before saving it, or gave
    up on an action that then committed) finds what it recorded the first time."""
    ids = _ledger(session)
    promise = record_promise(session, ids["account"], D("400.00"), dt.date(2026, 11, 28), source_message_sid="SM1")
    again = record_promise(session, ids["account"], D("400.00"), dt.date(2026, 11, 28), source_message_sid="SM1")
    assert again == promise
    assert _promises(session, ids["account"]) == [(D("400.00"), dt.date(2026, 11, 28), "pending", False)]
    schedule = ([D("500.00"), D("500.00")], [dt.date(2026, 12, 1), dt.date(2026, 12, 8)])
    plan = record_plan(session, ids["account"], "weekly", *schedule, source_message_sid="SM2")
    assert record_plan(session, ids["account"], "weekly", *schedule, source_message_sid="SM2") == plan
    assert _count(session, PaymentPlan) == 1 and _count(session, Installment) == 2
    assert session.get(PaymentPlan, plan).status == "active"
    # The promise of the earlier message stays cancelled by the plan: its
    # message running again changes nothing either.
    assert (
        record_promise(session, ids["account"], D("400.00"), dt.date(2026, 11, 28), source_message_sid="SM1") == promise
    )
    assert session.get(Promise, promise).status == "cancelled" and session.get(PaymentPlan, plan).status == "active"
    claim = record_payment_claim(session, ids["account"], amount=D("500.00"), source_message_sid="SM3")
    assert record_payment_claim(session, ids["account"], amount=D("500.00"), source_message_sid="SM3") == claim
    assert _count(session, PaymentClaim) == 1
    # Other messages (or none: an agent, the REST channel) record anew, and
    # a message is matched on its own account only.
    assert record_payment_claim(session, ids["account"], amount=D("500.00"), source_message_sid="SM4") != claim
    assert record_payment_claim(session, ids["account"], amount=D("500.00")) != claim
    assert record_payment_claim(session, ids["second"], amount=D("80.50"), source_message_sid="SM3") != claim
    assert _count(session, PaymentClaim) == 4
    second = record_promise(session, ids["account"], D("100.00"), dt.date(2026, 11, 30))
    assert record_promise(session, ids["account"], D("100.00"), dt.date(2026, 11, 30)) != second


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        (D("0"), "must be positive"),
        (D("-5.00"), "must be positive"),
        (D("1000.01"), "above the balance 1000.00"),
        (D("10.005"), "fractions of a cent"),
        (10.0, "must be a Decimal, not float"),
        ("10.00", "must be a Decimal, not str"),
        (True, "must be a Decimal, not bool"),
        (D("NaN"), "not a valid amount"),
    ],
)
def test_record_promise_rejects_bad_amounts(session, amount, message: str) -> None:
    ids = _ledger(session)
    with pytest.raises(LedgerError, match=message):
        record_promise(session, ids["account"], amount, dt.date(2026, 11, 28))
    assert _count(session, Promise) == 0


def test_record_promise_accepts_int_and_whole_balance(session) -> None:
    ids = _ledger(session)
    promise = record_promise(session, ids["account"], 1000, dt.date(2026, 11, 28))
    assert session.get(Promise, promise).amount == D("1000.00")


def test_record_promise_on_unknown_or_disputed_account(session) -> None:
    ids = _ledger(session)
    with pytest.raises(LedgerError, match="no account with id 999"):
        record_promise(session, 999, D("1.00"), dt.date(2026, 11, 28))
    with pytest.raises(LedgerError, match="must be a date"):
        record_promise(session, ids["account"], D("1.00"), dt.datetime(2026, 11, 28, 12))
    open_dispute(session, ids["account"], "no es mía", PHONE)
    with pytest.raises(LedgerError, match="AM-0001: it is disputed"):
        record_promise(session, ids["account"], D("1.00"), dt.date(2026, 11, 28))
    assert _count(session, Promise) == 0


# Plans ---------------------------------------------------------------------


def test_record_plan_writes_instalments_and_cancels_previous_agreements(session) -> None:
    ids = _ledger(session)
    promise = record_promise(session, ids["account"], D("500.00"), dt.date(2026, 11, 28))
    first = record_plan(
        session,
        ids["account"],
        "weekly",
        [D("500.00"), D("500.00")],
        [dt.date(2026, 12, 1), dt.date(2026, 12, 8)],
    )
    dates = [dt.date(2026, 12, 15), dt.date(2027, 1, 15), dt.date(2027, 2, 15)]
    second = record_plan(
        session,
        ids["account"],
        "monthly",
        [D("333.33"), D("333.33"), D("333.34")],
        dates,
        source_message_sid="SM9",
        created_by="agent:2",
    )
    plan = session.get(PaymentPlan, second)
    assert (plan.total_amount, plan.discount_amount, plan.frequency, plan.status) == (
        D("1000.00"),
        D("0.00"),
        "monthly",
        "active",
    )
    assert (plan.source_message_sid, plan.created_by) == ("SM9", "agent:2")
    rows = session.execute(select(Installment).where(Installment.plan_id == second).order_by(Installment.seq)).scalars()
    assert [(i.seq, i.due_date, i.amount, i.status) for i in rows] == [
        (1, dates[0], D("333.33"), "pending"),
        (2, dates[1], D("333.33"), "pending"),
        (3, dates[2], D("333.34"), "pending"),
    ]
    assert session.get(PaymentPlan, first).status == "cancelled"
    assert session.get(Promise, promise).status == "cancelled"
    assert session.get(Promise, promise).resolved_at is not None
    # The balance does not move: a plan is an agreement, not a payment.
    assert session.get(Account, ids["account"]).balance == D("1000.00")
    assert open_accounts(session, ids["debtor"])[0].active_plan_next == (D("333.33"), dt.date(2026, 12, 15))


def test_record_plan_with_settlement_discount(session) -> None:
    ids = _ledger(session)
    plan_id = record_plan(
        session,
        ids["account"],
        "biweekly",
        [D("450.00"), D("450.00")],
        [dt.date(2026, 12, 1), dt.date(2026, 12, 15)],
        discount=D("100.00"),
    )
    plan = session.get(PaymentPlan, plan_id)
    assert (plan.total_amount, plan.discount_amount) == (D("900.00"), D("100.00"))
    assert plan.total_amount + plan.discount_amount == session.get(Account, ids["account"]).balance


def test_record_plan_single_instalment(session) -> None:
    ids = _ledger(session)
    plan_id = record_plan(session, ids["second"], "monthly", [D("80.50")], [dt.date(2026, 12, 1)])
    assert [(i.seq, i.amount) for i in session.get(PaymentPlan, plan_id).installments] == [(1, D("80.50"))]


DEC1, DEC8, DEC15 = dt.date(2026, 12, 1), dt.date(2026, 12, 8), dt.date(2026, 12, 15)


@pytest.mark.parametrize(
    ("frequency", "amounts", "dates", "discount", "message"),
    [
        ("weekly", [], [], D("0"), "at least one instalment"),
        ("weekly", [D("500.00"), D("500.00")], [DEC1], D("0"), r"\(2 amounts, 1 dates\)"),
        ("weekly", [D("1000.00")], [DEC1, DEC8], D("0"), r"\(1 amounts, 2 dates\)"),
        ("weekly", [D("500.00"), D("500.00")], [DEC8, DEC1], D("0"), "strictly increasing"),
        ("weekly", [D("500.00"), D("500.00")], [DEC1, DEC1], D("0"), "strictly increasing"),
        ("weekly", [D("500.00"), D("499.99")], [DEC1, DEC8], D("0"), "plan total 999.99 plus discount 0.00"),
        ("weekly", [D("500.00"), D("500.01")], [DEC1, DEC8], D("0"), "must equal the balance 1000.00"),
        ("weekly", [D("450.00"), D("450.00")], [DEC1, DEC8], D("90.00"), "plus discount 90.00"),
        ("weekly", [D("1100.00"), D("-100.00")], [DEC1, DEC8], D("0"), "instalment 2 amount must be positive"),
        ("weekly", [D("1000.00"), D("0.00")], [DEC1, DEC8], D("0"), "instalment 2 amount must be positive"),
        ("weekly", [D("999.995"), D("0.005")], [DEC1, DEC8], D("0"), "fractions of a cent"),
        ("weekly", [500.0, 500.0], [DEC1, DEC8], D("0"), "not float"),
        ("weekly", [D("1100.00")], [DEC1], D("-100.00"), "discount must not be negative"),
        ("weekly", [D("1000.00")], [DEC1], 0.0, "discount must be a Decimal"),
        ("daily", [D("1000.00")], [DEC1], D("0"), "frequency must be one of"),
        ("weekly", [D("500.00"), D("500.00")], [DEC1, "2026-12-08"], D("0"), "instalment 2 date must be a date"),
    ],
)
def test_record_plan_rejects_bad_schedules(session, frequency, amounts, dates, discount, message: str) -> None:
    ids = _ledger(session)
    promise = record_promise(session, ids["account"], D("100.00"), DEC15)
    with pytest.raises(LedgerError, match=message):
        record_plan(session, ids["account"], frequency, amounts, dates, discount=discount)
    assert (_count(session, PaymentPlan), _count(session, Installment)) == (0, 0)
    # Nothing else changed either.
    assert session.get(Promise, promise).status == "pending"


def test_record_plan_on_disputed_or_unknown_account(session) -> None:
    ids = _ledger(session)
    with pytest.raises(LedgerError, match="no account with id 999"):
        record_plan(session, 999, "weekly", [D("1.00")], [DEC1])
    open_dispute(session, ids["second"], "ese monto está mal", PHONE)
    with pytest.raises(LedgerError, match="payment plan on account AM-0002: it is disputed"):
        record_plan(session, ids["second"], "weekly", [D("80.50")], [DEC1])
    assert _count(session, PaymentPlan) == 0


def test_plan_persists_exactly_after_commit(ledger_url: str) -> None:
    with session_scope() as session:
        ids = _ledger(session)
        plan_id = record_plan(session, ids["account"], "weekly", [D("0.01"), D("999.99")], [DEC1, DEC8])
    with session_scope() as session:
        amounts = session.execute(
            select(Installment.amount).where(Installment.plan_id == plan_id).order_by(Installment.seq)
        ).scalars()
        assert [str(a) for a in amounts] == ["0.01", "999.99"]
        assert str(session.get(PaymentPlan, plan_id).total_amount) == "1000.00"


# Payment claims ------------------------------------------------------------


def test_record_payment_claim_keeps_everything_and_moves_no_money(session) -> None:
    ids = _ledger(session)
    claim_id = record_payment_claim(
        session,
        ids["account"],
        amount=D("500.00"),
        paid_on=dt.date(2026, 11, 21),
        reference=" SPEI 7731 ",
        media_urls=("https://api.twilio.example/Media/ME1",),
        debtor_words="ya pagué 500 por spei",
        source_message_sid="SM5",
    )
    claim = session.get(PaymentClaim, claim_id)
    assert (claim.amount, claim.paid_on, claim.reference, claim.media_urls, claim.status) == (
        D("500.00"),
        dt.date(2026, 11, 21),
        "SPEI 7731",
        ["https://api.twilio.example/Media/ME1"],
        "pending",
    )
    assert (claim.debtor_words, claim.source_message_sid, claim.resolved_at) == ("ya pagué 500 por spei", "SM5", None)
    assert session.get(Account, ids["account"]).balance == D("1000.00")
    minimal = session.get(PaymentClaim, record_payment_claim(session, ids["second"]))
    assert (minimal.amount, minimal.paid_on, minimal.reference, minimal.media_urls) == (None, None, None, [])
    assert [a.pending_claim for a in open_accounts(session, ids["debtor"])] == [True, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"amount": D("0")}, "must be positive"),
        ({"amount": 12.5}, "not float"),
        ({"amount": D("1.001")}, "fractions of a cent"),
        ({"paid_on": "ayer"}, "paid_on must be a date"),
        ({"reference": "R" * 121}, "longer than 120"),
        ({"media_urls": "https://x.example/a.jpg"}, "not one string"),
        ({"media_urls": ["https://x.example/a.jpg", ""]}, "non-empty string"),
    ],
)
def test_record_payment_claim_rejects_bad_input(session, kwargs: dict, message: str) -> None:
    ids = _ledger(session)
    with pytest.raises(LedgerError, match=message):
        record_payment_claim(session, ids["account"], **kwargs)
    with pytest.raises(LedgerError, match="no account with id 999"):
        record_payment_claim(session, 999)
    assert _count(session, PaymentClaim) == 0


# Escalations ---------------------------------------------------------------


def test_case_prefixes_cover_every_reason() -> None:
    assert set(CASE_PREFIXES) == set(ESCALATION_REASONS)
    assert len(set(CASE_PREFIXES.values())) == len(CASE_PREFIXES)


@pytest.mark.parametrize("reason", ESCALATION_REASONS)
def test_escalate_gives_a_case_number_per_reason(session, reason: str) -> None:
    ids = _ledger(session)
    escalation_id, case = escalate(session, "whatsapp:" + PHONE, reason, "quiere hablar con alguien")
    assert re.fullmatch(r"[A-Z]{3}-\d{6}", case)
    assert case == f"{CASE_PREFIXES[reason]}-{escalation_id:06d}"
    row = session.get(Escalation, escalation_id)
    assert (row.phone, row.reason, row.status, row.summary, row.case_number) == (
        PHONE,
        reason,
        "open",
        "quiere hablar con alguien",
        case,
    )
    # The debtor is found from the phone when not given.
    assert (row.debtor_id, row.account_id) == (ids["debtor"], None)
    assert is_paused(session, PHONE) and open_escalation(session, PHONE) == (escalation_id, case)


def test_escalate_reuses_the_open_case_for_the_same_question(session) -> None:
    ids = _ledger(session)
    first = escalate(session, PHONE, "hardship", "perdí mi trabajo", account_id=ids["account"])
    again = escalate(session, PHONE, "hardship", "no puedo pagar este mes", account_id=ids["account"])
    repeated = escalate(session, PHONE, "hardship", "no puedo pagar este mes", account_id=ids["account"])
    assert first == again == repeated
    row = session.get(Escalation, first[0])
    assert row.summary == "perdí mi trabajo\nno puedo pagar este mes"
    assert row.debtor_id == ids["debtor"]
    # Another account, another reason, or no account: separate cases.
    other_account = escalate(session, PHONE, "hardship", "x", account_id=ids["second"])
    other_reason = escalate(session, PHONE, "complaint", "x", account_id=ids["account"])
    no_account = escalate(session, PHONE, "hardship", "x")
    assert len({first, other_account, other_reason, no_account}) == 4
    assert _count(session, Escalation) == 4
    # An assigned case is still open for this purpose; a resolved one is not.
    session.get(Escalation, first[0]).status = "assigned"
    assert escalate(session, PHONE, "hardship", "", account_id=ids["account"]) == first
    assert session.get(Escalation, first[0]).summary == "perdí mi trabajo\nno puedo pagar este mes"
    resolve_escalation(session, first[0])
    fresh = escalate(session, PHONE, "hardship", "otra vez", account_id=ids["account"])
    assert fresh != first and fresh[1].startswith("HRD-")


def test_escalate_for_an_unknown_phone_and_bad_input(session) -> None:
    _ledger(session)
    escalation_id, case = escalate(session, "+525599999999", "verification_failed", "  no supo el año  ")
    row = session.get(Escalation, escalation_id)
    assert (row.debtor_id, row.summary, case) == (None, "no supo el año", f"VER-{escalation_id:06d}")
    with pytest.raises(LedgerError, match="reason must be one of"):
        escalate(session, PHONE, "angry", "x")
    with pytest.raises(LedgerError, match="phone is required"):
        escalate(session, "  ", "other", "x")
    with pytest.raises(LedgerError, match="no account with id 999"):
        escalate(session, PHONE, "other", "x", account_id=999)
    with pytest.raises(LedgerError, match="no debtor with id 999"):
        escalate(session, PHONE, "other", "x", debtor_id=999)
    assert _count(session, Escalation) == 1


def test_case_numbers_are_unique_across_reasons(session) -> None:
    _ledger(session)
    cases = [escalate(session, f"+52555000{n:04d}", reason, "x")[1] for n, reason in enumerate(ESCALATION_REASONS)]
    numbers = [case.split("-")[1] for case in cases]
    assert len(set(cases)) == len(set(numbers)) == len(ESCALATION_REASONS)


def test_open_dispute_freezes_the_account(session) -> None:
    ids = _ledger(session)
    record_promise(session, ids["account"], D("100.00"), DEC1)
    escalation_id, case = open_dispute(session, ids["account"], "Nunca saqué ese crédito", "whatsapp:" + PHONE)
    assert case == f"DSP-{escalation_id:06d}"
    assert session.get(Account, ids["account"]).status == "disputed"
    row = session.get(Escalation, escalation_id)
    assert (row.reason, row.summary, row.account_id, row.debtor_id, row.phone, row.status) == (
        "dispute",
        "Nunca saqué ese crédito",
        ids["account"],
        ids["debtor"],
        PHONE,
        "open",
    )
    # Disputing again keeps one case; the other account is unaffected.
    assert open_dispute(session, ids["account"], "y el monto está mal", PHONE) == (escalation_id, case)
    assert row.summary == "Nunca saqué ese crédito\ny el monto está mal"
    assert session.get(Account, ids["second"]).status == "active"
    # Still an open account the bot must talk about (to say it is disputed).
    assert [(a.reference, a.status) for a in open_accounts(session, ids["debtor"])] == [
        ("AM-0001", "disputed"),
        ("AM-0002", "active"),
    ]
    # A disputed account stays disputed when its case is resolved: an agent decides.
    resolve_escalation(session, escalation_id)
    assert session.get(Account, ids["account"]).status == "disputed"


def test_open_dispute_on_a_paid_account_keeps_its_status(session) -> None:
    ids = _ledger(session)
    session.get(Account, ids["second"]).status = "paid"
    _, case = open_dispute(session, ids["second"], "ya lo había pagado", PHONE)
    assert case.startswith("DSP-")
    assert session.get(Account, ids["second"]).status == "paid"
    with pytest.raises(LedgerError, match="no account with id 999"):
        open_dispute(session, 999, "x", PHONE)


def test_resolve_escalation(session) -> None:
    _ledger(session)
    escalation_id, _ = escalate(session, PHONE, "request_agent", "quiere un humano")
    resolve_escalation(session, escalation_id)
    row = session.get(Escalation, escalation_id)
    resolved_at = row.resolved_at
    assert (row.status, resolved_at is not None) == ("resolved", True)
    assert not is_paused(session, PHONE)
    resolve_escalation(session, escalation_id)  # same status: nothing changes
    resolve_escalation(session, escalation_id, status="closed")
    assert (row.status, row.resolved_at) == ("closed", resolved_at)
    with pytest.raises(LedgerError, match="is closed"):
        resolve_escalation(session, escalation_id, status="resolved")
    with pytest.raises(LedgerError, match="status must be one of"):
        resolve_escalation(session, escalation_id, status="open")
    with pytest.raises(LedgerError, match="no escalation with id 999"):
        resolve_escalation(session, 999)


# Opt-outs, wrong numbers, language -------------------------------------------


def test_record_opt_out_is_idempotent_per_channel(session) -> None:
    ids = _ledger(session)
    first = record_opt_out(session, "whatsapp:" + PHONE, keyword="BAJA")
    assert first[1] is True
    assert record_opt_out(session, PHONE, keyword="STOP") == (first[0], False)
    row = session.get(OptOut, first[0])
    assert (row.phone, row.channel, row.keyword, row.debtor_id, row.revoked_at) == (
        PHONE,
        "whatsapp",
        "BAJA",
        ids["debtor"],
        None,
    )
    assert find_debtor(session, PHONE).opted_out is True
    sms = record_opt_out(session, PHONE, channel="sms")
    assert sms[1] is True and sms[0] != first[0]
    # After a revocation a new opt-out is a new row.
    row.revoked_at = row.created_at
    again = record_opt_out(session, PHONE, keyword="ALTO")
    assert again[1] is True and again[0] not in (first[0], sms[0])
    assert _count(session, OptOut) == 3


def test_record_opt_out_for_an_unknown_phone(session) -> None:
    _ledger(session)
    opt_out_id, created = record_opt_out(session, OTHER_PHONE, keyword="x" * 500)
    row = session.get(OptOut, opt_out_id)
    assert (created, row.debtor_id, row.keyword) == (True, None, "x" * 200)
    with pytest.raises(LedgerError, match="phone is required"):
        record_opt_out(session, "")
    with pytest.raises(LedgerError, match="channel must be"):
        record_opt_out(session, PHONE, channel=" ")


def test_mark_wrong_number(session) -> None:
    ids = _ledger(session)
    assert mark_wrong_number(session, OTHER_PHONE) is False
    assert mark_wrong_number(session, "whatsapp:" + PHONE) is True
    marked_at = session.get(Debtor, ids["debtor"]).wrong_number_at
    assert marked_at is not None
    assert mark_wrong_number(session, PHONE) is True
    assert session.get(Debtor, ids["debtor"]).wrong_number_at == marked_at
    assert find_debtor(session, PHONE).wrong_number is True


@pytest.mark.parametrize(("given", "stored"), [("en", "en"), ("es", "es"), (" EN ", "en")])
def test_set_language(session, given: str, stored: str) -> None:
    ids = _ledger(session)
    set_language(session, ids["debtor"], given)
    assert session.get(Debtor, ids["debtor"]).language == stored


@pytest.mark.parametrize("language", ["fr", "", "español"])
def test_set_language_rejects_other_languages(session, language: str) -> None:
    ids = _ledger(session)
    with pytest.raises(LedgerError, match="language must be one of"):
        set_language(session, ids["debtor"], language)
    assert session.get(Debtor, ids["debtor"]).language == "es"
    with pytest.raises(LedgerError, match="no debtor with id 999"):
        set_language(session, 999, "en")


def test_commands_commit_with_the_callers_unit_of_work(ledger_url: str) -> None:
    with session_scope() as session:
        ids = _ledger(session)
    with pytest.raises(RuntimeError):
        with session_scope() as session:
            record_promise(session, ids["account"], D("10.00"), DEC1)
            raise RuntimeError("the caller fails after the command")
    with session_scope() as session:
        assert _count(session, Promise) == 0
        record_promise(session, ids["account"], D("10.00"), DEC1)
        open_dispute(session, ids["second"], "no reconozco", PHONE)
    with session_scope() as session:
        assert _promises(session, ids["account"]) == [(D("10.00"), DEC1, "pending", False)]
        assert session.get(Account, ids["second"]).status == "disputed"
        assert is_paused(session, PHONE)
