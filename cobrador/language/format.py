"""Money, dates and plan frequencies as the bot writes them to the debtor.

Pure functions over Babel: no clock, no configuration, no I/O. Both languages
write money the same way ("$1,500.00 MXN"), because Mexico uses the dollar
sign, comma thousands and a decimal point too, and the ISO code removes any
doubt about the currency.
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Optional

from babel.dates import format_date as babel_format_date
from babel.numbers import format_decimal

CENT = Decimal("0.01")

_LOCALES = {"es": "es_MX", "en": "en_US"}

# Babel patterns; quoted text is literal ("de").
_LONG_DATE = {"es": "EEEE d 'de' MMMM", "en": "EEEE, MMMM d"}
_LONG_DATE_WITH_YEAR = {"es": "EEEE d 'de' MMMM 'de' y", "en": "EEEE, MMMM d, y"}
_SHORT_DATE = {"es": "dd/MM/yyyy", "en": "MM/dd/yyyy"}

_FREQUENCY_LABELS = {
    "es": {"weekly": "semanal", "biweekly": "quincenal", "monthly": "mensual"},
    "en": {"weekly": "weekly", "biweekly": "every two weeks", "monthly": "monthly"},
}
_FREQUENCY_EVERY = {
    "es": {"weekly": "cada semana", "biweekly": "cada quincena", "monthly": "cada mes"},
    "en": {"weekly": "every week", "biweekly": "every two weeks", "monthly": "every month"},
}


def _language(lang: str) -> str:
    """The two-letter language of `lang` ("es", "es-MX", "en_US" ...).

    Raises:
        ValueError: if the language is neither Spanish nor English.
    """
    code = lang.strip().lower()[:2]
    if code not in _LOCALES:
        raise ValueError(f"unsupported language: {lang!r}")
    return code


def format_money(amount: Decimal, currency: str, lang: str) -> str:
    """An amount as the debtor reads it: "$1,500.00 MXN", "$25.50 USD".

    The same in both languages. Sub-cent digits are rounded half up.

    Args:
        amount: the amount, not negative.
        currency: ISO code, "MXN" or "USD" (any three letters are accepted).
        lang: "es" or "en" (a region suffix is ignored).

    Returns:
        Dollar sign, comma thousands, two decimals, a space and the ISO code.

    Raises:
        ValueError: for an unsupported language or a non-finite amount.
    """
    code = _language(lang)
    if not amount.is_finite():
        raise ValueError(f"not an amount: {amount!r}")
    cents = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    number = format_decimal(cents, format="#,##0.00", locale=_LOCALES[code])
    return f"${number} {currency.strip().upper()}"


def format_date(day: date, lang: str, today: Optional[date] = None) -> str:
    """A day written out: "viernes 20 de noviembre", "Friday, November 20".

    The year is added only when `today` is given and falls in another year
    ("viernes 1 de enero de 2027", "Friday, January 1, 2027").

    Args:
        day: the day to write.
        lang: "es" or "en".
        today: the debtor's local date, if the year may need saying.

    Returns:
        The weekday and date in the debtor's language.
    """
    code = _language(lang)
    with_year = today is not None and today.year != day.year
    pattern = (_LONG_DATE_WITH_YEAR if with_year else _LONG_DATE)[code]
    return babel_format_date(day, pattern, locale=_LOCALES[code])


def format_short_date(day: date, lang: str) -> str:
    """A day in digits: "20/11/2026" in Spanish, "11/20/2026" in English.

    Args:
        day: the day to write.
        lang: "es" or "en".

    Returns:
        Day first in Spanish, month first in English, zero-padded.
    """
    code = _language(lang)
    return babel_format_date(day, _SHORT_DATE[code], locale=_LOCALES[code])


def _lookup(table: dict[str, dict[str, str]], frequency: str, lang: str) -> str:
    words = table[_language(lang)]
    if frequency not in words:
        raise ValueError(f"unknown frequency: {frequency!r}")
    return words[frequency]


def frequency_label(frequency: str, lang: str) -> str:
    """The adjective for a plan frequency: "quincenal", "every two weeks".

    Args:
        frequency: "weekly", "biweekly" or "monthly".
        lang: "es" or "en".

    Returns:
        "semanal"/"quincenal"/"mensual" or "weekly"/"every two weeks"/"monthly".

    Raises:
        ValueError: for an unknown frequency or language.
    """
    return _lookup(_FREQUENCY_LABELS, frequency, lang)


def frequency_every(frequency: str, lang: str) -> str:
    """How often a payment falls due: "cada quincena", "every month".

    Args:
        frequency: "weekly", "biweekly" or "monthly".
        lang: "es" or "en".

    Returns:
        "cada semana"/"cada quincena"/"cada mes" or
        "every week"/"every two weeks"/"every month".

    Raises:
        ValueError: for an unknown frequency or language.
    """
    return _lookup(_FREQUENCY_EVERY, frequency, lang)
