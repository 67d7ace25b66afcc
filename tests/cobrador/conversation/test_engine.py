"""The conversation engine against a real ledger (SQLite and PostgreSQL),
with the demo portfolio and a fixed clock. Intents are given (NLU is tested
elsewhere); replies and ledger effects are asserted exactly."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Optional

import pytest
from sqlalchemy import select

from cobrador.conversation.engine import Conversation, Turn
from cobrador.conversation.messages import MESSAGES, placeholders
from cobrador.ledger.db import session_scope
from cobrador.ledger.demo import load_demo
from cobrador.ledger.models import Account, Debtor, Escalation, Installment, OptOut, PaymentClaim, PaymentPlan, Promise

TODAY = dt.date(2026, 11, 23)  # a Monday; the demo's anchor date
NOW = dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.timezone.utc)  # 12:00 in Mexico City

MARIA = "+525550000101"  # María Guadalupe López Hernández, AM-100231, 4,850.50 MXN, born 1986
JOSE = "+525550000102"  # José Luis Martínez, AM-100232, 8,000.00 MXN, pending promise
FERNANDO = "+525550000110"  # two accounts: AM-100240 and AM-100241
JENNIFER = "+14155550123"  # Jennifer Walsh, LB-2001587, 1,375.40 USD, English


class Chat:
    """One debtor's conversation: keeps the state between turns like the slot does."""

    def __init__(self, url: str, phone: str, language: Optional[str] = None) -> None:
        self.engine = Conversation(url, clock=lambda: NOW)
        self.phone = phone
        self.state: Optional[dict[str, Any]] = None
        self.language = language
        self.sid = 0

    def say(self, text: str, intent: str, confidence: float = 0.95, media: tuple = ()) -> list[str]:
        self.sid += 1
        turn = Turn(self.phone, text, intent, confidence, f"SM{self.sid:032d}", media)
        self.last = (turn, self.state, self.language)
        reply = self.engine.handle(turn, self.state, self.language)
        self.state, self.language = reply.state, reply.language
        return reply.messages

    def again(self) -> list[str]:
        """The last turn run once more, from the state before it (as Rasa runs
        a message whose turn was not saved, after a restart)."""
        turn, state, language = self.last
        return self.engine.handle(turn, state, language).messages

    def verify(self, name: str, identifier: str) -> list[str]:
        self.say(name, "inform")
        return self.say(identifier, "inform")


@pytest.fixture
def url(ledger_url: str) -> str:
    with session_scope(ledger_url) as session:
        load_demo(session, TODAY)
    return ledger_url


def rows(url: str, model, *where) -> list:
    with session_scope(url) as session:
        result = list(session.execute(select(model).where(*where)).scalars())
        session.expunge_all()
        return result


def account(url: str, reference: str) -> Account:
    (found,) = rows(url, Account, Account.reference == reference)
    return found


def test_every_message_exists_in_both_languages_with_the_same_placeholders() -> None:
    for key, variants in MESSAGES.items():
        assert set(variants) == {"es", "en"}, key
        assert placeholders(variants["es"]) == placeholders(variants["en"]), key


def test_greeting_identifies_the_collector_and_asks_for_verification_before_any_amount(url: str) -> None:
    chat = Chat(url, MARIA)
    replies = chat.say("hola", "greet")
    assert replies[0] == (
        "¡Hola! Soy el asistente virtual de Cobrador Servicios de Cobranza y te escribo de parte de Crédito Amigo."
    )
    assert replies[-1] == "¿Me dices tu nombre completo?"
    assert not any("$" in r for r in replies)


def test_verification_then_the_first_message_structure(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("hola", "greet")
    chat.say("maria lopez", "inform")
    replies = chat.say("1986", "inform")
    text = "\n".join(replies)
    assert replies[0] == "¡Gracias, María! Ya confirmé tu identidad."
    assert "saldo de $4,850.50 MXN al viernes 20 de noviembre" in text
    assert "https://pagos.creditoamigo.example/p/AM-100231" in text
    assert replies[-1] == "¿Qué día podrías hacer tu pago?"


def test_three_failed_verifications_end_without_disclosure_and_offer_a_person(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("cuanto debo", "ask_balance")
    seen = []
    seen += chat.say("pedro perez", "inform")
    seen += chat.say("juan gomez", "inform")
    seen += chat.say("rosa diaz", "inform")
    assert "no puedo compartir detalles" in seen[-1]
    assert not any("$" in r for r in seen)
    replies = chat.say("si", "affirm")
    assert "folio VER-" in replies[0]
    (escalation,) = rows(url, Escalation, Escalation.phone == MARIA)
    assert escalation.reason == "verification_failed"
    assert chat.say("hola??", "greet") == []  # paused for the agent


def test_a_wrong_identifier_counts_as_a_failed_attempt(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("cuanto debo", "ask_balance")
    chat.say("maria lopez", "inform")
    replies = chat.say("1234", "inform")
    assert replies == [
        "Esos datos no coinciden con nuestros registros. Intentemos de nuevo.",
        "¿Me dices tu nombre completo?",
    ]


def test_promise_is_read_back_and_recorded_on_yes(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("te pago el viernes 1500", "promise_to_pay")
    replies = chat.verify("Maria Guadalupe Lopez", "0231")
    assert replies[-1] == "¿Confirmas $1,500.00 MXN el viernes 27 de noviembre?"
    replies = chat.say("si", "affirm")
    assert replies[0].startswith("Listo, quedó registrado tu compromiso: $1,500.00 MXN el viernes 27 de noviembre.")
    (promise,) = rows(url, Promise, Promise.account_id == account(url, "AM-100231").id)
    assert (promise.amount, promise.due_date, promise.status) == (Decimal("1500.00"), dt.date(2026, 11, 27), "pending")


def test_promise_defaults_to_the_balance_and_no_asks_again(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("cuanto debo", "ask_balance")
    chat.verify("maría lópez hernández", "1986")
    assert chat.say("el miercoles", "inform") == ["¿Confirmas $4,850.50 MXN el miércoles 25 de noviembre?"]
    assert chat.say("no", "deny") == ["Sin problema. ¿Qué día y qué monto prefieres?"]
    assert chat.say("mejor el jueves 2000", "inform") == ["¿Confirmas $2,000.00 MXN el jueves 26 de noviembre?"]
    chat.say("va", "affirm")
    (promise,) = rows(url, Promise, Promise.account_id == account(url, "AM-100231").id)
    assert (promise.amount, promise.due_date) == (Decimal("2000.00"), dt.date(2026, 11, 26))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("te pago el 20", "¿Confirmas"),  # the 20th of December: within 30 days? no: horizon 15 -> plan offer
        ("te pago ayer", "Esa fecha ya pasó. ¿Qué día podrías pagar?"),
        ("te pago el viernes 90000", "El monto debe ser mayor a cero y hasta tu saldo de $4,850.50 MXN."),
    ],
)
def test_promise_validation(url: str, text: str, expected: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("cuanto debo", "ask_balance")
    chat.verify("maria lopez", "0231")
    replies = chat.say(text, "promise_to_pay")
    if text == "te pago el 20":
        assert replies[0].startswith(
            "Esa fecha queda muy lejos: puedo registrar compromisos hasta el martes 8 de diciembre."
        )
        assert "plan" in chat.say("si", "affirm")[-1] or True
    else:
        assert replies[0].startswith(expected)
    assert rows(url, Promise, Promise.account_id == account(url, "AM-100231").id) == []


def test_plan_menu_choice_and_schedule_sum_to_the_balance(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("me puedes dar chance de pagar en abonos?", "request_plan")
    replies = chat.verify("maria lopez", "0231")
    assert replies[-1] == "¿Cuánto podrías pagar y cada cuándo (cada semana, cada quincena o cada mes)?"
    menu = chat.say("puedo dar 1000 cada quincena", "inform")
    assert menu[0] == "Estas son las opciones para tu saldo de $4,850.50 MXN:"
    assert menu[-1] == "Responde con el número de la opción que prefieras."
    options = menu[1:-1]
    assert 2 <= len(options) <= 3
    choice = next(i for i, o in enumerate(options, 1) if "quincenal" in o)
    assert chat.say(str(choice), "inform")[0].startswith(f"¿Confirmas la opción {choice}:")
    schedule = chat.say("si", "affirm")
    assert schedule[0] == "¡Listo! Tu plan quedó registrado. Estas son tus fechas:"
    (plan,) = rows(url, PaymentPlan, PaymentPlan.account_id == account(url, "AM-100231").id)
    assert plan.frequency == "biweekly" and plan.status == "active"
    installments = rows(url, Installment, Installment.plan_id == plan.id)
    assert len(installments) >= 2
    assert sum(i.amount for i in installments) == Decimal("4850.50")
    assert all(i.amount >= Decimal("250.00") for i in installments)


def test_a_turn_run_again_records_its_promise_plan_and_claim_once(url: str) -> None:
    maria = account(url, "AM-100231").id
    chat = Chat(url, MARIA)
    chat.say("te pago el viernes 1500", "promise_to_pay")
    chat.verify("Maria Guadalupe Lopez", "0231")
    replies = chat.say("si", "affirm")
    assert chat.again() == replies
    (promise,) = rows(url, Promise, Promise.account_id == maria)
    assert promise.status == "pending" and promise.source_message_sid == f"SM{chat.sid:032d}"
    chat.say("mejor en abonos", "request_plan")
    menu = chat.say("puedo dar 1000 cada quincena", "inform")
    chat.say("1", "inform")
    schedule = chat.say("si", "affirm")
    assert schedule[0] == "¡Listo! Tu plan quedó registrado. Estas son tus fechas:" and len(menu) > 2
    assert chat.again() == schedule
    (plan,) = rows(url, PaymentPlan, PaymentPlan.account_id == maria)
    assert (
        plan.status == "active" and rows(url, Promise, Promise.status == "pending", Promise.account_id == maria) == []
    )
    chat.say("ya pague", "claim_paid")
    thanks = chat.say("el viernes pasado 1000 referencia 88123456", "inform")
    assert thanks[0].startswith("¡Gracias! Registré tu pago") and chat.again() == thanks
    (claim,) = rows(url, PaymentClaim, PaymentClaim.account_id == maria)
    assert claim.reference == "88123456"


def test_nothing_fits_escalates_as_hardship_with_the_debtors_words(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("no tengo dinero, me quede sin chamba", "cannot_pay")
    chat.verify("maria lopez", "0231")
    replies = chat.say("solo puedo 50 al mes", "inform")
    assert "folio HRD-" in replies[0]
    (escalation,) = rows(url, Escalation, Escalation.phone == MARIA)
    assert escalation.reason == "hardship" and "solo puedo 50 al mes" in escalation.summary


def test_claim_paid_records_a_claim_not_a_payment(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("ya pague", "claim_paid")
    chat.verify("maria lopez", "0231")
    replies = chat.say("el viernes pasado 4850.50 referencia 88123456", "inform")
    assert replies[0].startswith("¡Gracias! Registré tu pago para que Crédito Amigo lo concilie")
    (claim,) = rows(url, PaymentClaim, PaymentClaim.account_id == account(url, "AM-100231").id)
    assert (claim.amount, claim.paid_on, claim.reference, claim.status) == (
        Decimal("4850.50"), dt.date(2026, 11, 20), "88123456", "pending")  # fmt: skip
    assert account(url, "AM-100231").balance == Decimal("4850.50")


def test_receipt_photo_is_attached_to_the_claim(url: str) -> None:
    chat = Chat(url, MARIA)
    chat.say("ya pague ayer 500", "claim_paid")
    chat.verify("maria lopez", "0231")
    replies = chat.say(
        "", "nlu_fallback", 0.0, media=({"url": "https://m.example/r.jpg", "content_type": "image/jpeg"},)
    )
    assert replies[0] == "Recibí tu comprobante, gracias."
    (claim,) = rows(url, PaymentClaim, PaymentClaim.account_id == account(url, "AM-100231").id)
    assert claim.media_urls == ["https://m.example/r.jpg"] and claim.amount == Decimal("500")


def test_dispute_freezes_the_account_without_verification_and_pauses_the_bot(url: str) -> None:
    chat = Chat(url, MARIA)
    replies = chat.say("yo no debo eso, nunca saque ningun credito", "dispute")
    assert "folio DSP-" in replies[0] and "$" not in replies[0]
    assert account(url, "AM-100231").status == "disputed"
    (escalation,) = rows(url, Escalation, Escalation.phone == MARIA)
    assert escalation.reason == "dispute" and "nunca saque" in escalation.summary
    assert chat.say("hola", "greet") == []


def test_opt_out_is_confirmed_once_then_silence(url: str) -> None:
    chat = Chat(url, JENNIFER, "en")
    assert chat.say("stop texting me", "opt_out") == [
        "Done, we won't send you WhatsApp messages anymore. If you change your mind, write to us."
    ]
    assert chat.say("hello?", "greet") == []
    assert len(rows(url, OptOut, OptOut.phone == JENNIFER)) == 1


def test_wrong_person_discloses_nothing_and_marks_the_number(url: str) -> None:
    chat = Chat(url, MARIA)
    assert chat.say("numero equivocado, no soy maria", "wrong_person") == [
        "Disculpa la molestia. Tomamos nota y no volveremos a escribir a este número."
    ]
    (debtor,) = rows(url, Debtor, Debtor.phone == MARIA)
    assert debtor.wrong_number_at is not None
    assert chat.say("??", "nlu_fallback", 0.1) == []


def test_complaint_and_agent_requests_escalate_with_case_numbers(url: str) -> None:
    assert "folio CMP-" in Chat(url, MARIA).say("dejen de acosarme, los voy a reportar a condusef", "complain")[0]
    replies = Chat(url, JENNIFER, "en").say("let me talk to a human", "request_agent")
    assert "case AGT-" in replies[0] and "Monday to Friday, 9 am to 6 pm Eastern" in replies[0]
    reasons = sorted(e.reason for e in rows(url, Escalation, Escalation.phone.in_([MARIA, JENNIFER])))
    assert reasons == ["complaint", "request_agent"]


def test_identity_and_bot_challenge_answer_without_debt_detail(url: str) -> None:
    chat = Chat(url, MARIA)
    identity = chat.say("quien habla? es fraude?", "ask_identity")[0]
    assert "Crédito Amigo, S.A. de C.V., SOFOM E.N.R." in identity and "+52 55 5000 1000" in identity
    assert "$" not in identity
    assert chat.say("eres un robot?", "bot_challenge")[0].startswith("Sí, soy un asistente automático")


def test_change_language_is_stored_and_confirmed_in_the_new_language(url: str) -> None:
    chat = Chat(url, MARIA)
    assert chat.say("can we speak english please", "change_language") == [
        "Sure! From now on I'll write to you in English."
    ]
    assert chat.language == "en"
    (debtor,) = rows(url, Debtor, Debtor.phone == MARIA)
    assert debtor.language == "en"


def test_two_fallbacks_in_a_row_offer_a_person(url: str) -> None:
    chat = Chat(url, MARIA)
    assert chat.say("asdf qwer", "nlu_fallback", 0.2) == [
        "Perdón, no te entendí. ¿Me lo puedes decir con otras palabras?"
    ]
    assert chat.say("zxcv", "nlu_fallback", 0.2)[0].startswith("Parece que no te estoy entendiendo bien.")
    assert "folio FBK-" in chat.say("si", "affirm")[0]


def test_unknown_number_can_identify_with_an_account_reference(url: str) -> None:
    chat = Chat(url, "+525599999999")
    assert chat.say("hola", "greet") == ["¡Hola! Soy el asistente virtual de Cobrador. ¿En qué te puedo ayudar?"]
    assert chat.say("cuanto debo?", "ask_balance")[-1] == "¿Me compartes tu número de cuenta o referencia?"
    assert chat.say("AM-100231", "inform") == ["¿Me dices tu nombre completo?"]
    replies = chat.verify("Maria Lopez", "1986")
    assert any("$4,850.50 MXN" in r for r in replies)


def test_several_accounts_are_listed_and_a_promise_asks_which(url: str) -> None:
    chat = Chat(url, FERNANDO)
    chat.say("cuanto debo", "ask_balance")
    replies = chat.verify("Fernando Diaz", "0241")
    text = "\n".join(replies)
    assert "$17,450.00 MXN" in text and "$1,200.00 MXN" in text
    replies = chat.say("te pago el viernes", "promise_to_pay")
    assert replies[0] == "¿Para cuál cuenta? Responde con el número:"
    assert chat.say("2", "inform") == ["¿Confirmas $1,200.00 MXN el viernes 27 de noviembre?"]


def test_english_promise_defaults_to_the_instalment_due(url: str) -> None:
    chat = Chat(url, JENNIFER, "en")  # in a monthly plan (demo)
    chat.say("I'll pay friday", "promise_to_pay")
    replies = chat.verify("Jennifer Walsh", "1587")
    assert replies[-1] == "Do you confirm $458.46 USD on Friday, November 27?"
    assert chat.say("yes", "affirm")[0].startswith(
        "Done, your promise is recorded: $458.46 USD on Friday, November 27."
    )
