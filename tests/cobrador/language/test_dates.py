"""Date resolution against a fixed "today", rule by rule of the NLU contract.

Today is Wednesday 2026-11-18 in every row; expected values were worked out
by hand from a calendar, not by running the resolver.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

import pytest

from cobrador.language.dates import DAY, MONTH, RANGE, WEEK, find_dates, quincena, resolve_date, resolve_span

TODAY = dt.date(2026, 11, 18)  # a Wednesday


def d(month: int, day: int, year: int = 2026) -> dt.date:
    return dt.date(year, month, day)


SPANISH: list[tuple[str, Optional[dt.date]]] = [
    # today, tomorrow, offsets
    ("hoy", d(11, 18)),
    ("hoy mismo te pago", d(11, 18)),
    ("mañana", d(11, 19)),
    ("manana", d(11, 19)),
    ("MAÑANA sin falta", d(11, 19)),
    ("pasado mañana", d(11, 20)),
    ("pasado manana le deposito", d(11, 20)),
    ("en 3 dias", d(11, 21)),
    ("en tres días", d(11, 21)),
    ("dentro de 5 dias", d(11, 23)),
    ("en una semana", d(11, 25)),
    ("en 2 semanas", d(12, 2)),
    ("en dos meses", d(1, 18, 2027)),
    ("en un mes", d(12, 18)),
    # bare weekdays: the first such day strictly after today
    ("el viernes", d(11, 20)),
    ("viernes", d(11, 20)),
    ("este viernes", d(11, 20)),
    ("el viernes que viene", d(11, 20)),
    ("el lunes", d(11, 23)),
    ("el martes", d(11, 24)),
    ("el miercoles", d(11, 25)),
    ("el miércoles", d(11, 25)),
    ("el jueves", d(11, 19)),
    ("el sabado", d(11, 21)),
    ("el sábado", d(11, 21)),
    ("el domingo", d(11, 22)),
    ("para el jueves", d(11, 19)),
    ("VIERNES", d(11, 20)),
    ("vie.", d(11, 20)),
    ("lu", d(11, 23)),
    # next + weekday: that weekday in next calendar week
    ("el próximo viernes", d(11, 27)),
    ("el proximo viernes", d(11, 27)),
    ("proximo lunes", d(11, 23)),
    ("el próximo miércoles", d(11, 25)),
    ("el proximo domingo", d(11, 29)),
    ("el siguiente martes", d(11, 24)),
    ("el viernes de la semana que viene", d(11, 27)),
    ("el jueves de la proxima semana", d(11, 26)),
    ("el viernes de esta semana", d(11, 20)),
    ("el otro viernes", d(11, 27)),
    ("el otro lunes", d(11, 30)),
    # explicit past
    ("ayer", d(11, 17)),
    ("antier", d(11, 16)),
    ("antes de ayer", d(11, 16)),
    ("anteayer", d(11, 16)),
    ("hace 3 dias", d(11, 15)),
    ("hace tres días", d(11, 15)),
    ("hace una semana", d(11, 11)),
    ("hace un mes", d(10, 18)),
    ("el viernes pasado", d(11, 13)),
    ("el lunes pasado", d(11, 16)),
    ("el pasado martes", d(11, 17)),
    ("el miercoles pasado", d(11, 11)),
    # a day of the month: the next date with that number, today included
    ("el 15", d(12, 15)),
    ("el 20", d(11, 20)),
    ("el 18", d(11, 18)),
    ("el 17", d(12, 17)),
    ("el dia 30", d(11, 30)),
    ("el día 30", d(11, 30)),
    ("el 31", d(12, 31)),
    ("dia quince", d(12, 15)),
    ("el quince", d(12, 15)),
    ("el veinte", d(11, 20)),
    ("el primero", d(12, 1)),
    ("para el 25", d(11, 25)),
    ("a mas tardar el 28", d(11, 28)),
    # day and month, dd/mm
    ("15 de diciembre", d(12, 15)),
    ("el 15 de diciembre", d(12, 15)),
    ("15 de dic", d(12, 15)),
    ("15 dic", d(12, 15)),
    ("dic 15", d(12, 15)),
    ("diciembre 24", d(12, 24)),
    ("el cinco de diciembre", d(12, 5)),
    ("el primero de diciembre", d(12, 1)),
    ("3 de enero", d(1, 3, 2027)),
    ("el 5 de noviembre", d(11, 5, 2027)),
    ("el 18 de noviembre", d(11, 18)),
    ("20/12", d(12, 20)),
    ("el 20/12", d(12, 20)),
    ("5/1", d(1, 5, 2027)),
    ("30-11", d(11, 30)),
    ("15/11/2026", d(11, 15)),
    ("1/12/26", d(12, 1)),
    ("2026-12-04", d(12, 4)),
    ("el 2 de febrero de 2027", d(2, 2, 2027)),
    ("viernes 27 de noviembre", d(11, 27)),
    # ranges: their last day
    ("esta semana", d(11, 22)),
    ("en esta semana", d(11, 22)),
    ("la próxima semana", d(11, 29)),
    ("la proxima semana", d(11, 29)),
    ("la semana que viene", d(11, 29)),
    ("la otra semana", d(11, 29)),
    ("fin de mes", d(11, 30)),
    ("a fin de mes", d(11, 30)),
    ("a finales de mes", d(11, 30)),
    ("el próximo mes", d(12, 31)),
    ("el mes que viene", d(12, 31)),
    ("este mes", d(11, 30)),
    ("a fin de semana", d(11, 22)),
    ("este fin de semana", d(11, 22)),
    ("del 20 al 25 de noviembre", d(11, 25)),
    ("los proximos 3 dias", d(11, 21)),
    # the fortnight payday
    ("la quincena", d(11, 30)),
    ("cuando me paguen la quincena", d(11, 30)),
    ("en la quincena", d(11, 30)),
    ("pa la qna", d(11, 30)),
    ("la otra quincena", d(12, 15)),
    # in sentences
    ("te pago el viernes", d(11, 20)),
    ("el 15 deposito 500", d(12, 15)),
    ("ahorita no tengo pero el 30 le abono 200", d(11, 30)),
    ("hoy no puedo, mañana te pago", d(11, 19)),
    ("ya pague ayer", d(11, 17)),
    ("ya deposite el viernes pasado 1500", d(11, 13)),
    ("mañana en la mañana te deposito", d(11, 19)),
    ("te deposito el lunes 😊🙏", d(11, 23)),
    ("ok te hago el deposit el 25", d(11, 25)),
    ("si puedo el proximo viernes x la tarde", d(11, 27)),
    # no date: the bot must ask, never invent one
    ("cuando pueda", None),
    ("no tengo dinero", None),
    ("en 3 pagos", None),
    ("te abono 500", None),
    ("1.5", None),
    ("en la mañana", None),
    ("quiero pagar en abonos de quince", None),
    ("no me alcanza, me quede sin chamba", None),
    ("ya vi el mensaje", None),
    ("", None),
]

ENGLISH: list[tuple[str, Optional[dt.date]]] = [
    ("today", d(11, 18)),
    ("tonight", d(11, 18)),
    ("tomorrow", d(11, 19)),
    ("tmrw", d(11, 19)),
    ("the day after tomorrow", d(11, 20)),
    ("in 3 days", d(11, 21)),
    ("in three days", d(11, 21)),
    ("in a week", d(11, 25)),
    ("in 2 weeks", d(12, 2)),
    ("3 days from now", d(11, 21)),
    ("friday", d(11, 20)),
    ("Friday", d(11, 20)),
    ("this friday", d(11, 20)),
    ("on friday", d(11, 20)),
    ("fri.", d(11, 20)),
    ("monday", d(11, 23)),
    ("wednesday", d(11, 25)),
    ("thursday", d(11, 19)),
    ("sunday", d(11, 22)),
    ("next friday", d(11, 27)),
    ("next monday", d(11, 23)),
    ("next wednesday", d(11, 25)),
    ("next sunday", d(11, 29)),
    ("friday after next", d(11, 27)),
    ("friday next week", d(11, 27)),
    ("thursday of this week", d(11, 19)),
    ("yesterday", d(11, 17)),
    ("the day before yesterday", d(11, 16)),
    ("3 days ago", d(11, 15)),
    ("a week ago", d(11, 11)),
    ("last friday", d(11, 13)),
    ("last monday", d(11, 16)),
    ("on the 15th", d(12, 15)),
    ("the 20th", d(11, 20)),
    ("on the 18th", d(11, 18)),
    ("the 1st", d(12, 1)),
    ("by the 30th", d(11, 30)),
    ("dec 15", d(12, 15)),
    ("December 15th", d(12, 15)),
    ("the 15th of december", d(12, 15)),
    ("15 december", d(12, 15)),
    ("january 3rd", d(1, 3, 2027)),
    ("nov 5", d(11, 5, 2027)),
    ("12/15", d(12, 15)),
    ("1/5", d(1, 5, 2027)),
    ("12/1/2026", d(12, 1)),
    ("25/11", d(11, 25)),
    ("this week", d(11, 22)),
    ("next week", d(11, 29)),
    ("end of the month", d(11, 30)),
    ("end of month", d(11, 30)),
    ("next month", d(12, 31)),
    ("this month", d(11, 30)),
    ("end of next week", d(11, 29)),
    ("this weekend", d(11, 22)),
    ("next 3 days", d(11, 21)),
    ("dec 1 - dec 5", d(12, 5)),
    ("I'll pay Friday", d(11, 20)),
    ("can pay 150 friday", d(11, 20)),
    ("I paid last Friday", d(11, 13)),
    ("gonna send it tmrw after work", d(11, 19)),
    ("I'll send it on the 1st", d(12, 1)),
    ("can't today but tomorrow for sure", d(11, 19)),
    ("when I get paid", None),
    ("soon", None),
    ("3 payments", None),
    ("$200", None),
    ("I may be able to pay", None),
    ("I saw your message", None),
    ("1.5k", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), SPANISH)
def test_spanish(text: str, expected: Optional[dt.date]) -> None:
    assert resolve_date(text, "es", TODAY) == expected


@pytest.mark.parametrize(("text", "expected"), ENGLISH)
def test_english(text: str, expected: Optional[dt.date]) -> None:
    assert resolve_date(text, "en", TODAY) == expected


@pytest.mark.parametrize(
    ("text", "lang", "grain", "first", "last"),
    [
        ("esta semana", "es", WEEK, d(11, 16), d(11, 22)),
        ("next week", "en", WEEK, d(11, 23), d(11, 29)),
        ("el mes que viene", "es", MONTH, d(12, 1), d(12, 31)),
        ("fin de mes", "es", RANGE, d(11, 21), d(11, 30)),
        ("el viernes", "es", DAY, d(11, 20), d(11, 20)),
    ],
)
def test_spans_keep_first_and_last_day(text: str, lang: str, grain: str, first: dt.date, last: dt.date) -> None:
    span = resolve_span(text, lang, TODAY)
    assert span is not None
    assert (span.grain, span.first, span.last) == (grain, first, last)


def test_past_words_are_marked_past() -> None:
    assert resolve_span("ya pague ayer", "es", TODAY).past
    assert not resolve_span("te pago mañana", "es", TODAY).past


def test_offsets_point_at_the_phrase_so_amounts_are_not_read_from_dates() -> None:
    text = "Él 15 deposito 500"
    (span,) = find_dates(text, "es", TODAY)
    assert text[span.start : span.end] == "Él 15"


def test_future_beats_past_and_the_later_deadline_wins() -> None:
    assert resolve_date("ayer no pude pero el viernes sin falta", "es", TODAY) == d(11, 20)
    assert resolve_date("el viernes o a mas tardar el lunes", "es", TODAY) == d(11, 23)


@pytest.mark.parametrize(
    ("today", "expected"),
    [(d(11, 1), d(11, 15)), (d(11, 15), d(11, 15)), (d(11, 16), d(11, 30)), (d(2, 20, 2027), d(2, 28, 2027))],
)
def test_quincena_is_the_next_15th_or_month_end_today_included(today: dt.date, expected: dt.date) -> None:
    assert quincena(today) == expected


def test_year_end_rolls_over() -> None:
    new_years_eve = d(12, 31)
    assert resolve_date("el 2", "es", new_years_eve) == d(1, 2, 2027)
    assert resolve_date("next week", "en", new_years_eve) == d(1, 10, 2027)
    assert resolve_date("el próximo mes", "es", new_years_eve) == d(1, 31, 2027)


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # A message about a payment already made reads unanchored days backwards.
        ("ya pague el lunes", "es", d(11, 16)),
        ("ya le deposite el 15", "es", d(11, 15)),
        ("ya lo liquide en septiembre", "es", d(9, 30)),
        ("paid on monday, check again", "en", d(11, 16)),
        ("I sent it friday", "en", d(11, 13)),
        ("paid it off in october", "en", d(10, 31)),
        # ...but not when the debtor also talks about the future.
        ("ya pague una parte y el lunes te pago el resto", "es", d(11, 23)),
        ("I paid half, will pay the rest friday", "en", d(11, 20)),
        # Parts of a day, last week / last month.
        ("hoy en la noche te transfiero", "es", d(11, 18)),
        ("anoche le deposite", "es", d(11, 17)),
        ("la semana pasada", "es", d(11, 15)),
        ("el mes pasado", "es", d(10, 31)),
        ("i paid this morning", "en", d(11, 18)),
        ("my girlfriend paid it last night", "en", d(11, 17)),
        ("sent the money last week", "en", d(11, 15)),
        # A specific day beats a range; a rhythm is not a date.
        ("short this month but ill pay 100 on the 28th", "en", d(11, 28)),
        ("y de a mil por quincena?", "es", None),
        ("el pago del 20 de cuanto es", "es", d(11, 20)),
        ("gonna send the rest on payday", "en", None),
    ],
)
def test_context_and_parts_of_the_day(text: str, lang: str, expected: Optional[dt.date]) -> None:
    assert resolve_date(text, lang, TODAY) == expected
