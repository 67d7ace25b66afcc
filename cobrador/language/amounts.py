"""Money amounts in a debtor's message, told apart from every other number.

A debtor's message is full of numbers that are not money: the day they will
pay ("el 15"), how many instalments they want ("en 3 pagos"), a time ("a las
5"), a year, a phone number or the last digits of a card. A number counts as
an amount when a money marker is attached to it ("$500", "500 pesos", "2k",
"two grand") or, bare, when nothing around it says it is something else: "el
15 deposito 500" gives 500 only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Optional

from cobrador.language.numbers import NumberSpan, find_numbers, fold_aligned

__all__ = ["Amount", "find_amounts", "find_currency", "parse_amount"]


@dataclass(frozen=True)
class Amount:
    """A money amount found in a message.

    Attributes:
        value: the amount (500, 1250.50).
        currency: "MXN" or "USD" when a marker attached to this amount says so
            ("$500" in Spanish, "500 dlls"); None otherwise (also for "2k",
            "two grand" and "lucas", which say money but not which).
        start: offset in the original message, markers included ("$500").
        end: offset just past it, markers included ("500 pesos").
        explicit: True when a money marker is attached ($, pesos, varos, lana,
            MXN, dólares, dlls, USD, bucks, dollars, grand, k, lucas).
    """

    value: Decimal
    currency: Optional[str]
    start: int
    end: int
    explicit: bool


_MONTHS = (
    r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|setiembre|octubre|noviembre|diciembre"
    r"|january|february|march|april|june|july|august|september|october|november|december"
    r"|ene|feb|mar|abr|may|jun|jul|ago|sep|sept|oct|nov|dic|jan|apr|aug|dec"
)
_WEEKDAYS = (
    r"lunes|martes|miercoles|jueves|viernes|sabado|domingo"
    r"|monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun"
)

# Money markers written before the number. Group names are the currency;
# "bare" is a lone "$", whose currency depends on the language.
_PREFIX_MARKER = re.compile(
    r"(?:(?P<USD>(?<![a-z])(?:us\s?\$|usd\s?\$?|u\$s?))|(?P<MXN>(?<![a-z])(?:mx\s?\$|mxn\s?\$?))|(?P<bare>\$))\s*$"
)
# Money markers written after the number; "money" says money without a currency.
_SUFFIX_MARKER = re.compile(
    r"^\s*(?:(?P<USD>dolares|dolar|dollars?|dlls?|dls|usd|bucks|us\s?dollars?)"
    r"|(?P<MXN>pesos?|pesitos|pesotes|varos|baros|varitos|mxn|m\.\s?n\.?|mn)"
    r"|(?P<bare>\$)|(?P<money>(?:de\s+)?lana))(?![a-z])"
)
# A scale that already says money: "2k", "two grand", "dos lucas".
_MONEY_SCALE = re.compile(r"(?:k|grand|lucas?)$")

# What a number is when it is not an amount, judged from the text around it.
# Each row: (role, regex on the text just before the number or None,
#            regex on the text just after it or None, largest value it applies to or None).
# The largest value keeps "el 500" an amount while "el 15" is a day.
_DAY = 31
_PERCENT = re.compile(r"^\s*(?:%|por\s?ciento|percent|pct)")
_CONTEXT_RULES: tuple[tuple[str, Optional[re.Pattern[str]], Optional[re.Pattern[str]], Optional[int]], ...] = (
    ("percent", None, _PERCENT, None),
    ("ordinal", None, re.compile(r"^(?:st|nd|rd|th|ro|do|to|vo|no|er|era|ero|avo|°|º|ª)(?![a-z])"), None),
    (
        "time",
        None,
        re.compile(
            r"^\s*(?:am|pm|a\.\s?m\.?|p\.\s?m\.?|hrs?|h|horas?|o'?clock"
            r"|de la (?:manana|tarde|noche)|del mediodia)(?![a-z])"
        ),
        None,
    ),
    ("time", re.compile(r"(?:\ba las?|\blas|\bat|\bpor las)\s*$"), None, 24),
    (
        "count",
        None,
        re.compile(
            r"^\s*(?:(?:monthly|weekly|biweekly|equal|small|smaller|little|peque[nñ]os|chiquitos|iguales)\s+)?"
            r"(?:pagos?|abonos?|partes?|mensualidades|mensualidad|quincenas?|catorcenas?|plazos?|cuotas?"
            r"|exhibiciones|exhibicion|parcialidades|letras|payments?|installments?|instalments?|parts?|pieces|chunks"
            r"|dias?|days?|semanas?|weeks?|meses|mes|months?|anos?|years?|yrs?|horas?|hours?|hrs|minutos?|minutes?|mins?"
            r"|segundos?|seconds?|secs?|veces|times|hijos?|hijas?|ninos|kids|children|personas|people|cosas|things"
            r"|trabajos|jobs|tarjetas|cards|cuentas|accounts|creditos|prestamos|loans|mensajes|messages|intentos|tries"
            r"|digitos|digits|numeros|numbers|gracias|thanks|disculpas|perdones|estrellas|stars|msi)(?![a-z])"
        ),
        None,
    ),
    ("count", None, re.compile(r"^\s*(?:de|of)\s+\$?\s*\d"), 24),
    ("count", None, re.compile(r"^\s*x\s*\$?\s*\d"), 24),
    ("duration", re.compile(r"(?:\bhace|\bwithin|\bdentro de)\s*$"), None, None),
    (
        "reference",
        re.compile(
            r"(?:\bterminacion|\bterminad[oa] en|\btermina en|\bending(?: in| with)?|\bends (?:in|with)"
            r"|\bultim[oa]s?(?: (?:4|cuatro))?(?: (?:digitos|numeros))?(?: (?:son|es|de (?:la|mi) tarjeta))?"
            r"|\blast (?:4|four)(?: digits)?(?: (?:are|is))?|\bfolio|\breferencia|\bref|\bticket|\borden|\border"
            r"|\bno\.|\bnum\.?|\bnumero|\bnumber|#|\btarjeta|\bcard|\bclabe|\bcuenta|\baccount|\bacct"
            r"|\bthanks(?: a)?|\bgracias)\s*:?\s*$"
        ),
        None,
        None,
    ),
    (
        "date",
        re.compile(rf"(?:\bel|\bdia|\bdias|\bdel|\bal|\bthe|\bon|\bday|\b(?:{_WEEKDAYS})|\b(?:{_MONTHS})\.?)\s*$"),
        None,
        _DAY,
    ),
    (
        "date",
        None,
        re.compile(
            rf"^\s*(?:(?:de|del|of)\s+)?(?:{_MONTHS})(?![a-z])"
            r"|^\s*(?:de|del)\s+(?:este|cada|el|next|proximo|siguiente)?\s*mes\b"
            r"|^\s*of\s+(?:the|this|next|each|every)\s+month\b"
            r"|^\s*[/\-]\s*\d"
        ),
        _DAY,
    ),
    ("date", re.compile(r"\d\s*[/\-]\s*$"), None, _DAY),
)
_YEAR_BEFORE = re.compile(rf"(?:\b(?:{_MONTHS})\.?(?:\s+de)?|\bdel|\bano|\byear|\bin|,)\s*$")
# Regions that are never amounts: clock times, numeric dates, phone numbers.
_TIME_REGION = re.compile(r"\b\d{1,2}:\d{2}\b")
_DATE_REGION = re.compile(r"\b\d{1,4}[/\-]\d{1,2}[/\-]\d{1,4}\b|\b\d{1,2}/\d{1,2}\b")
_PHONE_REGION = re.compile(r"\+?\(?\d[\d \-()]{7,}\d")
_MAX_DIGITS = 9
_CONNECTOR = re.compile(r"^\s*(?:o|u|a|y|e|-|–|or|to|and|,|&)\s*$")


def _blocked(folded: str) -> list[tuple[int, int]]:
    regions = [m.span() for rx in (_TIME_REGION, _DATE_REGION) for m in rx.finditer(folded)]
    regions += [m.span() for m in _PHONE_REGION.finditer(folded) if sum(c.isdigit() for c in m.group()) >= 10]
    return regions


def _plain_integer(folded: str, span: NumberSpan) -> bool:
    return not span.words and folded[span.start : span.end].isdigit()


def _role(folded: str, span: NumberSpan, regions: list[tuple[int, int]]) -> Optional[str]:
    """What a bare number is when it is not an amount; None when it is one."""
    if any(start <= span.start and span.end <= end for start, end in regions):
        return "blocked"
    raw = folded[span.start : span.end]
    if not span.words and sum(c.isdigit() for c in raw) > _MAX_DIGITS:
        return "reference"
    before, after = folded[: span.start], folded[span.end :]
    if raw in ("ciento", "cien") and re.search(r"\bpor\s*$", before):
        return "percent"  # the second half of "por ciento"
    whole = span.value == int(span.value)
    for role, before_rx, after_rx, largest in _CONTEXT_RULES:
        if largest is not None and not (whole and 0 <= span.value <= largest):
            continue
        if before_rx is not None and not before_rx.search(before):
            continue
        if after_rx is not None and not after_rx.search(after):
            continue
        return role
    if _plain_integer(folded, span) and len(raw) == 4 and 1900 <= span.value <= 2099:
        if 2020 <= span.value <= 2039 or _YEAR_BEFORE.search(before):
            return "year"
    if span.words and span.value < 10:
        return "small"  # "una", "dos", "one": a count or an article far more often than money
    return None


@dataclass(frozen=True)
class _Candidate:
    span: NumberSpan
    amount: Amount
    role: Optional[str]


def _with_markers(folded: str, span: NumberSpan, lang: str) -> Amount:
    """The amount a number would be, with the money markers attached to it."""
    bare_currency = "MXN" if lang.lower().startswith("es") else "USD"
    start, end, currency, explicit = span.start, span.end, None, False
    prefix = _PREFIX_MARKER.search(folded[: span.start])
    if prefix:
        kind = prefix.lastgroup
        currency = bare_currency if kind == "bare" else kind
        start, explicit = prefix.start(), True
    suffix = _SUFFIX_MARKER.match(folded[span.end :])
    if suffix:
        kind = suffix.lastgroup
        if kind in ("USD", "MXN"):
            currency = kind  # a named currency beats a bare "$": "$500 m.n."
        elif kind == "bare" and currency is None:
            currency = bare_currency
        end, explicit = span.end + suffix.end(), True
    if _MONEY_SCALE.search(folded[span.start : span.end]):
        explicit = True
    return Amount(span.value, currency, start, end, explicit)


def find_amounts(text: str, lang: str) -> list[Amount]:
    """The money amounts in a message, in order.

    A number with a money marker is always an amount. A bare number is an
    amount unless its context makes it an instalment count ("3 pagos", "in
    four payments"), a day ("el 15", "15 de diciembre", "the 20th", "20/12"),
    a year, a time ("a las 5", "5pm"), a duration ("hace 3 días"), a
    percentage, a phone number or long reference, or the last digits of an
    account ("terminación 1234"). Lists share their context: in "el 15 o 30"
    both are days, in "3 o 4 pagos" both are counts, in "entre 500 y 600
    pesos" both are pesos.

    Args:
        text: the message as the debtor wrote it.
        lang: "es" or "en"; decides a bare "$" (MXN in Spanish, USD in English).

    Returns:
        The amounts, with offsets into `text`.
    """
    folded = fold_aligned(text)
    regions = _blocked(folded)
    candidates: list[_Candidate] = []
    for span in find_numbers(text, lang):
        amount = _with_markers(folded, span, lang)
        if amount.explicit:
            role = "percent" if _PERCENT.search(folded[span.end :]) else None
        else:
            role = _role(folded, span, regions)
        candidates.append(_Candidate(span, amount, role))
    candidates = _share_context(folded, candidates)
    return [c.amount for c in candidates if c.role is None]


def _share_context(folded: str, candidates: list[_Candidate]) -> list[_Candidate]:
    """Spreads a context over lists: "el 15 o 30", "3 o 4 pagos", "500 o 600 pesos"."""
    result = list(candidates)
    for k in range(1, len(result)):
        prev, cur = result[k - 1], result[k]
        if not _CONNECTOR.match(folded[prev.amount.end : cur.amount.start]):
            continue
        small = cur.span.value == int(cur.span.value) and cur.span.value <= _DAY
        if prev.role in ("date", "ordinal", "time") and cur.role is None and not cur.amount.explicit and small:
            result[k] = replace(cur, role=prev.role)
    for k in range(len(result) - 2, -1, -1):
        cur, nxt = result[k], result[k + 1]
        if not _CONNECTOR.match(folded[cur.amount.end : nxt.amount.start]) or cur.amount.explicit:
            continue
        if cur.role is None and nxt.role in ("count", "percent", "time", "duration"):
            result[k] = replace(cur, role=nxt.role)
        elif cur.role is None and nxt.role is None and nxt.amount.explicit and nxt.amount.end > nxt.span.end:
            marked = replace(cur.amount, currency=nxt.amount.currency, explicit=True)
            result[k] = replace(cur, amount=marked)
    return result


# Currency words anywhere in the message; a bare "$" is read by the language.
_CURRENCY_WORDS = re.compile(
    r"(?P<USD>(?<![a-z])(?:us\s?\$|u\$s|usd|dolares|dolar|dollars?|dlls?|dls|bucks)(?![a-z]))"
    r"|(?P<MXN>(?<![a-z])(?:mx\s?\$|m\.\s?n\.|(?:mxn|pesos?|pesitos|pesotes|varos|baros|varitos)(?![a-z])))"
    r"|(?P<bare>\$)"
)


def find_currency(text: str, lang: str) -> Optional[str]:
    """The currency a message names, if it names one.

    Args:
        text: the message.
        lang: "es" or "en"; a bare "$" is MXN in Spanish and USD in English.

    Returns:
        "MXN" ("pesos", "varos", "mxn", "m.n."), "USD" ("dólares", "dlls",
        "usd", "bucks", "dollars", "us$"); the first one named wins. A bare
        "$" counts only when no currency is named ("$500 m.n." is MXN even
        in English). None when nothing says it.
    """
    named = [match.lastgroup for match in _CURRENCY_WORDS.finditer(fold_aligned(text))]
    for currency in named:
        if currency != "bare":
            return currency
    if named:
        return "MXN" if lang.lower().startswith("es") else "USD"
    return None


def parse_amount(text: str, lang: str) -> Optional[Decimal]:
    """The one amount a message gives: the first explicit one, else the first bare one.

    Args:
        text: the message.
        lang: "es" or "en".

    Returns:
        The amount, or None when the message gives none.
    """
    amounts = find_amounts(text, lang)
    for amount in amounts:
        if amount.explicit:
            return amount.value
    return amounts[0].value if amounts else None
