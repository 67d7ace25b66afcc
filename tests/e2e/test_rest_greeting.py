"""End to end through the real Rasa server and action server (REST channel,
demo ledger): the greeting names the collector and the creditor, and nothing
about the debt is said before verification."""


def test_known_spanish_debtor_is_greeted_and_asked_to_verify(stack) -> None:
    replies = stack.say("+525550000101", "hola")
    assert replies[0] == (
        "¡Hola! Soy el asistente virtual de Cobrador Servicios de Cobranza y te escribo de parte de Crédito Amigo."
    )
    assert replies[-1] == "¿Me dices tu nombre completo?"
    assert not any("$" in reply for reply in replies)


def test_known_english_debtor_is_greeted_in_english(stack) -> None:
    replies = stack.say("+14155550123", "hi there")
    assert replies[0] == (
        "Hi! This is the virtual assistant of Cobrador Recovery Services, writing on behalf of Liberty Consumer Finance."
    )
    assert "This is a communication from a debt collector." in replies
    assert replies[-1] == "Could you tell me your full name?"


def test_unknown_number_gets_the_company_and_no_debt_detail(stack) -> None:
    replies = stack.say("+525599999999", "buenas tardes")
    assert replies == ["¡Hola! Soy el asistente virtual de Cobrador. ¿En qué te puedo ayudar?"]
