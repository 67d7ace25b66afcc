"""Read-side lookups: plain frozen values from the ledger, on SQLite and PostgreSQL."""

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Optional

import pytest

from cobrador.ledger.demo import load_demo
from cobrador.ledger.lookups import (
    AccountView,
    account_view,
    creditor_view,
    debtor_by_account_reference,
    find_debtor,
    is_paused,
    open_accounts,
    open_escalation,
    phone_key,
)
from cobrador.ledger.models import (
    Account,
    Creditor,
    Debtor,
    Escalation,
    Installment,
    OptOut,
    PaymentClaim,
    PaymentPlan,
    Promise,
    utcnow,
)

TODAY = dt.date(2026, 11, 23)
PHONE_A = "+525550000101"
PHONE_B = "+525550000102"


def _account(creditor: Creditor, debtor: Debtor, reference: str, balance: str, due: dt.date, **extra) -> Account:
    return Account(
        creditor=creditor,
        debtor=debtor,
        reference=reference,
        last4=reference[-4:],
        product="Préstamo personal",
        original_amount=Decimal("5000.00"),
        balance=Decimal(balance),
        currency="MXN",
        due_date=due,
        balance_as_of=dt.date(2026, 11, 20),
        **extra,
    )


def _ledger(session) -> dict[str, int]:
    """Two creditors, two debtors and accounts in every state that matters."""
    amigo = Creditor(
        code="amigo",
        legal_name="Crédito Amigo, S.A. de C.V.",
        display_name="Crédito Amigo",
        collector_name="Cobrador Servicios",
        official_phone="+52 55 5000 1000",
        official_email="cobranza@amigo.example",
        official_website="https://amigo.example",
        complaints_contact="UNE: une@amigo.example",
        privacy_notice_url="https://amigo.example/privacidad",
        payment_link_template="https://pagos.amigo.example/p/{reference}",
        bank_name="BBVA",
        bank_reference="CLABE 012180001234567895",
        payment_stores="OXXO",
        plan_max_installments=6,
        plan_min_installment=Decimal("250.00"),
        plan_frequencies="weekly,biweekly,monthly",
        settlement_discount_pct=Decimal("10.00"),
        promise_horizon_days=15,
        business_hours="lunes a viernes 9-18",
        debt_collector_disclosure=False,
    )
    liberty = Creditor(
        code="liberty",
        legal_name="Liberty Consumer Finance LLC",
        display_name="Liberty",
        collector_name="Cobrador Recovery",
        country="US",
        default_currency="USD",
        plan_frequencies="monthly",
        debt_collector_disclosure=True,
    )
    ana = Debtor(phone=PHONE_A, name="Ana López", language="es", birth_year=1986)
    beto = Debtor(phone=PHONE_B, name="Beto Ruiz", language="en", timezone="America/Tijuana")
    active = _account(amigo, ana, "AM-0001", "1000.00", dt.date(2026, 10, 1))
    disputed = _account(amigo, ana, "AM-0002", "250.50", dt.date(2026, 9, 1), status="disputed")
    paid = _account(amigo, ana, "AM-0003", "0.00", dt.date(2026, 8, 1), status="paid")
    zero = _account(amigo, ana, "AM-0004", "0.00", dt.date(2026, 8, 2))
    on_plan = _account(liberty, ana, "LB-0005", "300.00", dt.date(2026, 11, 30))
    # Same reference as Ana's at another creditor: a reference alone is ambiguous.
    other = _account(liberty, beto, "AM-0001", "80.00", dt.date(2026, 11, 1))
    session.add_all([amigo, liberty, ana, beto, active, disputed, paid, zero, on_plan, other])
    session.flush()
    session.add_all(
        [
            Promise(account=active, amount=Decimal("100.00"), due_date=dt.date(2026, 11, 25), status="cancelled"),
            Promise(account=active, amount=Decimal("400.00"), due_date=dt.date(2026, 11, 28)),
            PaymentClaim(account=disputed, amount=Decimal("250.50"), debtor_words="ya pagué"),
            PaymentClaim(account=active, amount=Decimal("1.00"), status="rejected"),
        ]
    )
    old_plan = PaymentPlan(account=on_plan, total_amount=Decimal("300.00"), frequency="weekly", status="cancelled")
    old_plan.installments.append(Installment(seq=1, due_date=dt.date(2026, 11, 1), amount=Decimal("300.00")))
    plan = PaymentPlan(account=on_plan, total_amount=Decimal("300.00"), frequency="monthly")
    for seq, (due, amount, status) in enumerate(
        [
            (dt.date(2026, 11, 1), "100.00", "paid"),
            (dt.date(2026, 12, 1), "100.00", "pending"),
            (dt.date(2027, 1, 1), "100.00", "pending"),
        ],
        start=1,
    ):
        plan.installments.append(Installment(seq=seq, due_date=due, amount=Decimal(amount), status=status))
    session.add_all([old_plan, plan])
    session.flush()
    return {
        "amigo": amigo.id,
        "liberty": liberty.id,
        "ana": ana.id,
        "beto": beto.id,
        "active": active.id,
        "disputed": disputed.id,
        "paid": paid.id,
        "on_plan": on_plan.id,
    }


def test_creditor_view_has_plain_values(session) -> None:
    ids = _ledger(session)
    amigo = creditor_view(session, ids["amigo"])
    assert (amigo.id, amigo.code, amigo.legal_name, amigo.display_name) == (
        ids["amigo"],
        "amigo",
        "Crédito Amigo, S.A. de C.V.",
        "Crédito Amigo",
    )
    assert (amigo.country, amigo.default_currency) == ("MX", "MXN")
    assert amigo.plan_frequencies == ("weekly", "biweekly", "monthly")
    assert amigo.plan_min_installment == Decimal("250.00") and isinstance(amigo.plan_min_installment, Decimal)
    assert amigo.settlement_discount_pct == Decimal("10.00")
    assert amigo.payment_link_template == "https://pagos.amigo.example/p/{reference}"
    assert (amigo.promise_horizon_days, amigo.plan_max_installments) == (15, 6)
    assert amigo.debt_collector_disclosure is False
    liberty = creditor_view(session, ids["liberty"])
    assert liberty.plan_frequencies == ("monthly",)
    assert liberty.settlement_discount_pct is None
    assert liberty.official_phone is None and liberty.payment_link_template is None
    assert liberty.debt_collector_disclosure is True
    with pytest.raises(dataclasses.FrozenInstanceError):
        amigo.code = "x"  # type: ignore[misc]


def test_unknown_creditor_raises(session) -> None:
    with pytest.raises(LookupError, match="no creditor with id 999"):
        creditor_view(session, 999)


def test_open_accounts_filters_and_orders_oldest_due_first(session) -> None:
    ids = _ledger(session)
    accounts = open_accounts(session, ids["ana"])
    # Paid and zero-balance accounts are left out; the disputed one stays.
    assert [(a.reference, a.status) for a in accounts] == [
        ("AM-0002", "disputed"),
        ("AM-0001", "active"),
        ("LB-0005", "active"),
    ]
    disputed, active, on_plan = accounts
    assert disputed.balance == Decimal("250.50") and isinstance(disputed.balance, Decimal)
    assert (disputed.pending_claim, disputed.pending_promise, disputed.active_plan_next) == (True, None, None)
    assert active.pending_promise == (Decimal("400.00"), dt.date(2026, 11, 28))
    assert (active.pending_claim, active.active_plan_next) == (False, None)
    assert on_plan.active_plan_next == (Decimal("100.00"), dt.date(2026, 12, 1))
    assert (on_plan.creditor_id, on_plan.creditor_name) == (ids["liberty"], "Liberty")
    assert (active.creditor_name, active.last4, active.product, active.currency) == (
        "Crédito Amigo",
        "0001",
        "Préstamo personal",
        "MXN",
    )
    assert (active.original_amount, active.due_date, active.balance_as_of) == (
        Decimal("5000.00"),
        dt.date(2026, 10, 1),
        dt.date(2026, 11, 20),
    )
    assert open_accounts(session, 999) == []


def test_account_view_of_any_status(session) -> None:
    ids = _ledger(session)
    paid = account_view(session, ids["paid"])
    assert paid is not None and (paid.reference, paid.status, paid.balance) == ("AM-0003", "paid", Decimal("0.00"))
    assert account_view(session, 999) is None


def test_payment_link_fills_the_reference(session) -> None:
    ids = _ledger(session)
    by_reference = {a.reference: a for a in open_accounts(session, ids["ana"])}
    assert by_reference["AM-0001"].payment_link == "https://pagos.amigo.example/p/AM-0001"
    assert by_reference["LB-0005"].payment_link is None


def _view(due: dt.date, template: Optional[str] = None, reference: str = "AM-0001") -> AccountView:
    return AccountView(
        id=1,
        reference=reference,
        last4="0001",
        product=None,
        creditor_id=1,
        creditor_name="C",
        original_amount=Decimal("10.00"),
        balance=Decimal("1234.50"),
        currency="MXN",
        due_date=due,
        balance_as_of=due,
        status="active",
        pending_promise=None,
        active_plan_next=None,
        pending_claim=False,
        payment_link_template=template,
    )


@pytest.mark.parametrize(
    ("due", "today", "days"),
    [
        (dt.date(2026, 11, 23), dt.date(2026, 11, 23), 0),  # due today: not overdue yet
        (dt.date(2026, 11, 30), dt.date(2026, 11, 23), 0),  # not yet due
        (dt.date(2026, 11, 22), dt.date(2026, 11, 23), 1),
        (dt.date(2026, 10, 1), dt.date(2026, 11, 23), 53),
        (dt.date(2024, 2, 28), dt.date(2024, 3, 1), 2),  # leap year
        (dt.date(2025, 12, 31), dt.date(2026, 1, 1), 1),
    ],
)
def test_days_overdue(due: dt.date, today: dt.date, days: int) -> None:
    assert _view(due).days_overdue(today) == days


@pytest.mark.parametrize(
    ("template", "reference", "link"),
    [
        (None, "AM-0001", None),
        ("", "AM-0001", None),
        ("https://pay.example/{reference}", "AM-0001", "https://pay.example/AM-0001"),
        ("https://pay.example/p?r={reference}&a={amount}", "AM-0001", "https://pay.example/p?r=AM-0001&a=1234.50"),
        ("https://pay.example/{reference}", "LB/2001", "https://pay.example/LB%2F2001"),
        ("https://pay.example/static", "AM-0001", "https://pay.example/static"),
    ],
)
def test_payment_link_template(template: Optional[str], reference: str, link: Optional[str]) -> None:
    assert _view(TODAY, template, reference).payment_link == link


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+525550000101", "+525550000101"),
        ("whatsapp:+525550000101", "+525550000101"),
        ("whatsapp:+52 1 55 5000 0101", "+525550000101"),
        (" +52 55 5000 0101 ", "+525550000101"),
        ("hola", "hola"),
        ("", ""),
    ],
)
def test_phone_key(raw: str, key: str) -> None:
    assert phone_key(raw) == key


def test_find_debtor_by_phone_in_any_form(session) -> None:
    ids = _ledger(session)
    debtor = find_debtor(session, "whatsapp:+52 55 5000 0101")
    assert debtor is not None
    assert (debtor.id, debtor.phone, debtor.name, debtor.language, debtor.timezone, debtor.birth_year) == (
        ids["ana"],
        PHONE_A,
        "Ana López",
        "es",
        "America/Mexico_City",
        1986,
    )
    # Every account's last four, including the paid one, for verification.
    assert sorted(debtor.last4s) == ["0001", "0002", "0003", "0004", "0005"]
    assert (debtor.wrong_number, debtor.opted_out, debtor.paused) == (False, False, False)
    beto = find_debtor(session, PHONE_B)
    assert beto is not None and (beto.language, beto.birth_year, beto.last4s) == ("en", None, ("0001",))
    assert find_debtor(session, "+525599999999") is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        debtor.name = "x"  # type: ignore[misc]


def test_debtor_flags_follow_the_ledger(session) -> None:
    ids = _ledger(session)
    debtor = session.get(Debtor, ids["ana"])
    debtor.wrong_number_at = utcnow()
    session.add(OptOut(phone=PHONE_A, channel="sms", keyword="STOP"))
    session.add(Escalation(phone=PHONE_A, reason="complaint", status="resolved"))
    session.flush()
    view = find_debtor(session, PHONE_A)
    # An SMS opt-out and a resolved escalation do not count for WhatsApp.
    assert (view.wrong_number, view.opted_out, view.paused) == (True, False, False)
    session.add(OptOut(phone=PHONE_A, channel="whatsapp", keyword="BAJA", revoked_at=utcnow()))
    session.flush()
    assert find_debtor(session, PHONE_A).opted_out is False
    session.add(OptOut(phone=PHONE_A, channel="whatsapp", keyword="BAJA"))
    session.add(Escalation(phone=PHONE_A, reason="request_agent", status="assigned"))
    session.flush()
    view = find_debtor(session, PHONE_A)
    assert (view.opted_out, view.paused) == (True, True)


@pytest.mark.parametrize(
    ("typed", "debtor"),
    [
        ("AM-0002", "ana"),
        ("am-0002", "ana"),
        (" am - 0002 ", "ana"),
        ("lb-00 05", "ana"),
        ("LB 0005", None),  # spaces are ignored, the dash is not
        ("AM-0001", None),  # Ana's at Amigo and Beto's at Liberty: ambiguous
        ("AM-0009", None),
        ("", None),
        ("   ", None),
    ],
)
def test_debtor_by_account_reference(session, typed: str, debtor: Optional[str]) -> None:
    ids = _ledger(session)
    found = debtor_by_account_reference(session, typed)
    assert (found.id if found else None) == (ids[debtor] if debtor else None)


def test_pause_and_open_escalation(session) -> None:
    _ledger(session)
    assert is_paused(session, PHONE_A) is False
    assert open_escalation(session, PHONE_A) is None
    resolved = Escalation(phone=PHONE_A, reason="dispute", status="resolved", case_number="DSP-000900")
    older = Escalation(phone=PHONE_A, reason="dispute", status="open", case_number="DSP-000901")
    session.add_all([resolved, older])
    session.flush()
    assert is_paused(session, "whatsapp:" + PHONE_A) is True
    assert open_escalation(session, PHONE_A) == (older.id, "DSP-000901")
    newer = Escalation(phone=PHONE_A, reason="request_agent", status="assigned", case_number="AGT-000902")
    session.add(newer)
    session.flush()
    assert open_escalation(session, PHONE_A) == (newer.id, "AGT-000902")
    older.status = newer.status = "closed"
    session.flush()
    assert is_paused(session, PHONE_A) is False
    assert open_escalation(session, PHONE_A) is None
    assert is_paused(session, PHONE_B) is False


def test_demo_portfolio_through_lookups(session) -> None:
    load_demo(session, TODAY)
    jose = find_debtor(session, PHONE_B)
    assert jose is not None and jose.name == "José Luis Martínez"
    (account,) = open_accounts(session, jose.id)
    assert account.pending_promise == (Decimal("2000.00"), TODAY + dt.timedelta(days=3))
    assert account.payment_link == "https://pagos.creditoamigo.example/p/AM-100232"
    amigo = creditor_view(session, account.creditor_id)
    assert (amigo.code, amigo.settlement_discount_pct) == ("amigo", Decimal("10.00"))
    disputed = find_debtor(session, "+529981230004")
    assert disputed.paused is True
    case = open_escalation(session, disputed.phone)
    assert case is not None and case[1] == f"DSP-{case[0]:06d}"
    assert debtor_by_account_reference(session, "am100237") is None  # the dash is part of the reference
    assert debtor_by_account_reference(session, "am-100237").id == disputed.id
