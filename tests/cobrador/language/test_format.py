"""Money, dates and frequencies as the bot writes them."""

from datetime import date
from decimal import Decimal

import pytest

from cobrador.language.format import (
    format_date,
    format_money,
    format_short_date,
    frequency_every,
    frequency_label,
)


@pytest.mark.parametrize(
    ("amount", "currency", "lang", "expected"),
    [
        ("1500", "MXN", "es", "$1,500.00 MXN"),
        ("1500.00", "MXN", "en", "$1,500.00 MXN"),
        ("1500", "USD", "en", "$1,500.00 USD"),
        ("1500", "USD", "es", "$1,500.00 USD"),
        ("25.5", "USD", "en", "$25.50 USD"),
        ("25.50", "USD", "es", "$25.50 USD"),
        ("0", "MXN", "es", "$0.00 MXN"),
        ("0.01", "MXN", "es", "$0.01 MXN"),
        ("999.99", "MXN", "es", "$999.99 MXN"),
        ("1000", "MXN", "es", "$1,000.00 MXN"),
        ("1234567.89", "MXN", "es", "$1,234,567.89 MXN"),
        ("1234567.89", "USD", "en", "$1,234,567.89 USD"),
        ("17450", "MXN", "es-MX", "$17,450.00 MXN"),
        ("17450", "USD", "en_US", "$17,450.00 USD"),
        ("4850.5", "mxn", "es", "$4,850.50 MXN"),
        # Sub-cent digits round half up, not half even.
        ("0.125", "USD", "en", "$0.13 USD"),
        ("0.005", "MXN", "es", "$0.01 MXN"),
        ("1999.995", "MXN", "es", "$2,000.00 MXN"),
    ],
)
def test_money_is_written_the_same_in_both_languages(amount: str, currency: str, lang: str, expected: str) -> None:
    assert format_money(Decimal(amount), currency, lang) == expected


@pytest.mark.parametrize(
    ("day", "lang", "today", "expected"),
    [
        (date(2026, 11, 20), "es", None, "viernes 20 de noviembre"),
        (date(2026, 11, 20), "en", None, "Friday, November 20"),
        (date(2026, 11, 20), "es", date(2026, 11, 16), "viernes 20 de noviembre"),
        (date(2026, 11, 20), "en", date(2026, 11, 16), "Friday, November 20"),
        (date(2027, 1, 1), "es", date(2026, 12, 28), "viernes 1 de enero de 2027"),
        (date(2027, 1, 1), "en", date(2026, 12, 28), "Friday, January 1, 2027"),
        (date(2027, 1, 1), "es", None, "viernes 1 de enero"),
        (date(2027, 1, 1), "en", None, "Friday, January 1"),
        (date(2026, 12, 31), "es", date(2027, 1, 2), "jueves 31 de diciembre de 2026"),
        (date(2026, 4, 1), "es", None, "miércoles 1 de abril"),
        (date(2026, 8, 1), "es", None, "sábado 1 de agosto"),
        (date(2026, 9, 1), "es", None, "martes 1 de septiembre"),
        (date(2026, 3, 5), "en", date(2026, 1, 1), "Thursday, March 5"),
        (date(2026, 2, 28), "es-MX", None, "sábado 28 de febrero"),
        (date(2026, 7, 4), "en-US", None, "Saturday, July 4"),
    ],
)
def test_long_dates_name_the_weekday_and_add_the_year_only_when_it_differs(
    day: date, lang: str, today: date | None, expected: str
) -> None:
    assert format_date(day, lang, today) == expected


@pytest.mark.parametrize(
    ("day", "lang", "expected"),
    [
        (date(2026, 11, 20), "es", "20/11/2026"),
        (date(2026, 11, 20), "en", "11/20/2026"),
        (date(2026, 3, 5), "es", "05/03/2026"),
        (date(2026, 3, 5), "en", "03/05/2026"),
        (date(2027, 12, 31), "es", "31/12/2027"),
        (date(2027, 12, 31), "en", "12/31/2027"),
    ],
)
def test_short_dates_put_the_day_first_in_spanish_and_the_month_first_in_english(
    day: date, lang: str, expected: str
) -> None:
    assert format_short_date(day, lang) == expected


@pytest.mark.parametrize(
    ("frequency", "lang", "label", "every"),
    [
        ("weekly", "es", "semanal", "cada semana"),
        ("biweekly", "es", "quincenal", "cada quincena"),
        ("monthly", "es", "mensual", "cada mes"),
        ("weekly", "en", "weekly", "every week"),
        ("biweekly", "en", "every two weeks", "every two weeks"),
        ("monthly", "en", "monthly", "every month"),
    ],
)
def test_frequency_words(frequency: str, lang: str, label: str, every: str) -> None:
    assert frequency_label(frequency, lang) == label
    assert frequency_every(frequency, lang) == every


@pytest.mark.parametrize(
    "call",
    [
        lambda: format_money(Decimal("10"), "MXN", "fr"),
        lambda: format_money(Decimal("NaN"), "MXN", "es"),
        lambda: format_date(date(2026, 1, 1), "pt"),
        lambda: format_short_date(date(2026, 1, 1), ""),
        lambda: frequency_label("daily", "es"),
        lambda: frequency_every("yearly", "en"),
        lambda: frequency_label("weekly", "de"),
    ],
)
def test_unknown_languages_and_frequencies_are_refused(call) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError):
        call()
