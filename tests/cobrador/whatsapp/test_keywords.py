"""Opt-out keywords are honoured before NLU, whole message only."""

import pytest

from cobrador.whatsapp.channel import is_opt_out_keyword, parse_form


@pytest.mark.parametrize(
    "text", ["STOP", "stop", "Stop.", "BAJA", "baja!", "Alto", "CANCELAR", "unsubscribe", " Parar "]
)
def test_keywords(text: str) -> None:
    assert is_opt_out_keyword(text)


@pytest.mark.parametrize("text", ["stop calling my mom", "no me den de baja", "alto ahi", "", "👍", "stopp"])
def test_not_keywords(text: str) -> None:
    assert not is_opt_out_keyword(text)


def test_the_raw_form_keeps_blank_fields_and_every_character() -> None:
    form = parse_form(b"Body=%C2%A1Hola%21+%F0%9F%98%80&ProfileName=&NumMedia=0")
    assert form.getlist("Body") == ["¡Hola! 😀"] and form.getlist("ProfileName") == [""]
