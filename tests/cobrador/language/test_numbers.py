"""Numbers as debtors type them: digits with either separator, and words."""

from decimal import Decimal
from typing import Optional

import pytest

from cobrador.language.numbers import find_numbers, fold_aligned, words_to_number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cero", "0"),
        ("uno", "1"),
        ("un", "1"),
        ("una", "1"),
        ("cinco", "5"),
        ("sinco", "5"),
        ("nueve", "9"),
        ("diez", "10"),
        ("once", "11"),
        ("quince", "15"),
        ("dieciséis", "16"),
        ("dieciseis", "16"),
        ("diecinueve", "19"),
        ("veinte", "20"),
        ("veintiún", "21"),
        ("veintiun", "21"),
        ("veintiuno", "21"),
        ("veintidós", "22"),
        ("veintidos", "22"),
        ("veintitrés", "23"),
        ("veintinueve", "29"),
        ("treinta", "30"),
        ("treinta y uno", "31"),
        ("cuarenta y cinco", "45"),
        ("cincuenta", "50"),
        ("noventa y nueve", "99"),
        ("cien", "100"),
        ("ciento", "100"),
        ("ciento uno", "101"),
        ("ciento cincuenta", "150"),
        ("ciento cincuenta y cinco", "155"),
        ("doscientos", "200"),
        ("doscientas", "200"),
        ("trescientos cincuenta", "350"),
        ("quinientos", "500"),
        ("setecientos", "700"),
        ("novecientos noventa y nueve", "999"),
        ("mil", "1000"),
        ("mil quinientos", "1500"),
        ("mil y medio", "1500"),
        ("dos mil", "2000"),
        ("dos mil quinientos", "2500"),
        ("tres mil setecientos cincuenta", "3750"),
        ("diez mil", "10000"),
        ("veintiún mil", "21000"),
        ("cien mil", "100000"),
        ("quinientos mil", "500000"),
        ("un millón", "1000000"),
        ("un millon", "1000000"),
        ("millón", "1000000"),
        ("dos millones", "2000000"),
        ("un millón y medio", "1500000"),
        ("medio millón", "500000"),
        ("un millon doscientos mil", "1200000"),
        ("dos lucas", "2000"),
        ("una luca", "1000"),
        ("media luca", "500"),
        ("MIL QUINIENTOS", "1500"),
        ("  Quinientos. ", "500"),
        ("Mil quinientos!!", "1500"),
    ],
)
def test_spanish_number_words(text: str, expected: str) -> None:
    assert words_to_number(text, "es") == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("zero", "0"),
        ("one", "1"),
        ("seven", "7"),
        ("ten", "10"),
        ("thirteen", "13"),
        ("nineteen", "19"),
        ("twenty", "20"),
        ("twenty-five", "25"),
        ("twenty five", "25"),
        ("forty", "40"),
        ("fourty", "40"),
        ("ninety-nine", "99"),
        ("hundred", "100"),
        ("a hundred", "100"),
        ("one hundred", "100"),
        ("a hundred and fifty", "150"),
        ("one hundred fifty", "150"),
        ("two hundred", "200"),
        ("five hundred and twenty-five", "525"),
        ("one fifty", "150"),
        ("two fifty", "250"),
        ("three twenty-five", "325"),
        ("fifteen hundred", "1500"),
        ("twelve hundred fifty", "1250"),
        ("thousand", "1000"),
        ("a thousand", "1000"),
        ("one thousand", "1000"),
        ("two thousand five hundred", "2500"),
        ("a thousand and fifty", "1050"),
        ("ten thousand", "10000"),
        ("a grand", "1000"),
        ("two grand", "2000"),
        ("two and a half grand", "2500"),
        ("half a grand", "500"),
        ("a million", "1000000"),
        ("half a million", "500000"),
        ("Twenty-Five", "25"),
    ],
)
def test_english_number_words(text: str, expected: str) -> None:
    assert words_to_number(text, "en") == Decimal(expected)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("mil y pico", "es"),
        ("dos mil y pico", "es"),
        ("quinientos pesos", "es"),
        ("hola", "es"),
        ("", "es"),
        ("dos tres", "es"),
        ("treinta cinco", "es"),
        ("mil mil", "es"),
        ("cien cincuenta", "es"),
        ("lucas", "es"),
        ("medio", "es"),
        ("y", "es"),
        ("500", "es"),
        ("3 mil", "es"),
        ("a", "en"),
        ("grand", "en"),
        ("half", "en"),
        ("and", "en"),
        ("two three", "en"),
        ("five bucks", "en"),
        ("fifteen", "es"),
        ("quince", "en"),
    ],
)
def test_what_is_not_one_number_phrase(text: str, lang: str) -> None:
    assert words_to_number(text, lang) is None


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("1,500", "es", ["1500"]),
        ("1.500", "es", ["1500"]),
        ("1 500", "es", ["1500"]),
        ("1'500", "es", ["1500"]),
        ("1,250.50", "en", ["1250.50"]),
        ("1.250,50", "es", ["1250.50"]),
        ("1500.5", "en", ["1500.5"]),
        ("1500,50", "es", ["1500.50"]),
        ("150.50", "es", ["150.50"]),
        ("1,500,000", "es", ["1500000"]),
        ("1.500.000", "es", ["1500000"]),
        ("1,500,000.00", "en", ["1500000.00"]),
        ("0.50", "en", ["0.50"]),
        ("1.500", "en", ["1.500"]),
        ("2k", "es", ["2000"]),
        ("2K", "en", ["2000"]),
        ("1.5k", "en", ["1500"]),
        ("1,5k", "es", ["1500"]),
        ("2 k", "en", ["2000"]),
        ("3 mil", "es", ["3000"]),
        ("3mil", "es", ["3000"]),
        ("1.5 millones", "es", ["1500000"]),
        ("2 lucas", "es", ["2000"]),
        ("3 mil 500", "es", ["3500"]),
        ("2 mil quinientos", "es", ["2500"]),
        ("5 grand", "en", ["5000"]),
        ("2 thousand", "en", ["2000"]),
        ("5 hundred", "en", ["500"]),
        ("te pago mil quinientos el viernes", "es", ["1500"]),
        ("el 15 deposito 500", "es", ["15", "500"]),
        ("el 15 500 pesos", "es", ["15", "500"]),
        ("dos pagos de mil", "es", ["2", "1000"]),
        ("una persona", "es", []),
        ("un pago de 300", "es", ["300"]),
        ("a payment of 300", "en", ["300"]),
        ("mil y pico", "es", []),
        ("como 500 y pico", "es", []),
        ("like 200ish", "en", []),
        ("two hundred and change", "en", []),
        ("15.12.2025", "es", []),
        ("20/12", "es", ["20", "12"]),
        ("a las 5:30", "es", ["5", "30"]),
        ("2 mil 15", "es", ["2000", "15"]),
        ("k onda, te pago 200", "es", ["200"]),
        ("ok k", "es", []),
        ("quinientos y trescientos", "es", ["500", "300"]),
        ("500 o 600", "es", ["500", "600"]),
        ("I can do one fifty on friday", "en", ["150"]),
        ("twenty-five bucks", "en", ["25"]),
        ("$1,200", "en", ["1200"]),
        ("te mando 1 500 000", "es", ["1500000"]),
        ("no tengo ni un peso", "es", []),
        ("uno o dos", "es", ["1", "2"]),
        ("quiniento$ 😅", "es", []),
        ("💵500💵", "es", ["500"]),
    ],
)
def test_numbers_in_a_message(text: str, lang: str, expected: list[str]) -> None:
    assert [span.value for span in find_numbers(text, lang)] == [Decimal(v) for v in expected]


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("te pago Mil Quinientos mañana", "es", ["Mil Quinientos"]),
        ("el 15 deposito 500", "es", ["15", "500"]),
        ("mañana te pago 1.5k", "es", ["1.5k"]),
        ("señor, mañana 3 mil", "es", ["3 mil"]),
        ("ñoño 2mil", "es", ["2mil"]),
        ("pago   1 500", "es", ["1 500"]),
        ("I'll send twenty-five", "en", ["twenty-five"]),
        ("a grand by friday", "en", ["a grand"]),
        ("Árbol dos mil quinientos", "es", ["dos mil quinientos"]),
        ("te deposito $1,250.50 hoy", "es", ["1,250.50"]),
        ("😅 mil", "es", ["mil"]),
        ("veintiún mil", "es", ["veintiún mil"]),
    ],
)
def test_offsets_point_into_the_original_text(text: str, lang: str, expected: list[str]) -> None:
    assert [text[span.start : span.end] for span in find_numbers(text, lang)] == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("quinientos", "es", [True]),
        ("500", "es", [False]),
        ("3 mil", "es", [False]),
        ("mil 500", "es", [False]),
        ("two grand", "en", [True]),
        ("2 grand", "en", [False]),
        ("el quince te doy 200", "es", [True, False]),
    ],
)
def test_words_flag_says_no_digit_was_used(text: str, lang: str, expected: list[bool]) -> None:
    assert [span.words for span in find_numbers(text, lang)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mañana", "manana"),
        ("DÓLARES", "dolares"),
        ("a  b", "a  b"),
        ("línea\nnueva", "linea nueva"),
        ("straße", "straße"),
        ("😅 Sí", "😅 si"),
    ],
)
def test_fold_aligned_keeps_every_position(text: str, expected: str) -> None:
    folded = fold_aligned(text)
    assert folded == expected
    assert len(folded) == len(text)


@pytest.mark.parametrize(("lang", "text"), [("es", "quinientos"), ("ES", "quinientos"), ("es-MX", "quinientos")])
def test_language_codes_are_read_by_prefix(lang: str, text: str) -> None:
    value: Optional[Decimal] = words_to_number(text, lang)
    assert value == Decimal(500)
