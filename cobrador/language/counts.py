"""How many payments a debtor asks for, and how often.

"en 3 pagos", "a 6 meses", "split it in three" say how many instalments;
"cada quincena", "every other week" say the rhythm. Amounts and dates in the
same message ("3 pagos de 500 el 15") are not counts.
"""

from __future__ import annotations

import re
from typing import Optional

from cobrador.language.numbers import NumberSpan, find_numbers, fold_aligned

__all__ = ["find_frequency", "find_installments"]

_MAX_INSTALLMENTS = 60

# Words for a payment that a count before them counts: "3 pagos", "4 monthly payments".
_PAYMENT_NOUN = re.compile(
    r"^\s*(?:(?:monthly|weekly|biweekly|equal|small|smaller|little|pequenos|chiquitos|iguales)\s+)?"
    r"(?:pagos|abonos|partes|mensualidades|quincenas|catorcenas|plazos|cuotas|exhibiciones|parcialidades|letras"
    r"|payments|installments|instalments|parts|pieces|chunks|tranches)(?![a-z])"
    r"(?!\s+(?:ya|already))"
)
# Singular payment words only count "one", after "en"/"in": "en 1 pago". "el 15 pago 500" is a
# day and a verb, and "one payment of 300" is a partial payment, not a plan.
_ONE_PAYMENT_NOUN = re.compile(
    r"^\s*(?:pago|abono|parte|mensualidad|quincena|exhibicion|payment|installment|instalment)(?![a-z])"
)
_ANYWHERE = re.compile("")
# Periods that count payments only after a preposition of spread: "a 6 meses", "over 6 months";
# "en 2 semanas" and "in 6 months" are deadlines, not plans. Each row: (text just before the
# number, text just after it).
_PERIOD_RULES: tuple[tuple[re.Pattern[str], re.Pattern[str]], ...] = (
    (
        re.compile(r"(?:\ba|\ben|\bdurante|\bover|\bacross|\bduring|\bplan de|\bplazo de)\s*$"),
        re.compile(r"^\s*meses\b"),
    ),
    (re.compile(r"(?:\ba|\bdurante|\bover|\bacross|\bduring|\bplan de|\bplazo de)\s*$"), re.compile(r"^\s*semanas\b")),
    (re.compile(r"(?:\bover|\bacross|\bduring)\s*$"), re.compile(r"^\s*(?:months|weeks)\b")),
    (_ANYWHERE, re.compile(r"^\s*(?:meses|months?)\s+(?:sin intereses|msi|plan|de plazo)\b|^\s*msi\b")),
    (_ANYWHERE, re.compile(r"^\s*-?\s*(?:month|week)\s+(?:payment\s+)?plan\b")),
)
# Dividing the debt: "dividirlo en 2", "split it into three", "pagarlo en 3".
_SPLIT_BEFORE = re.compile(
    r"(?:\bdividir(?:lo|la)?|\bdivid(?:o|imos|amos|elo|ela)|\bpartir(?:lo|la)?|\bpart(?:o|elo|ela|amos)"
    r"|\bsplit(?:ting)?|\bdivide|\bbreak(?:ing)?|\bpagar(?:lo|la|te)?|\bpago|\bliquidar(?:lo|la)?|\bpay)"
    r"(?:\s+(?:it|this|that|them|lo|la|todo|up|la deuda"
    r"|the (?:payment|debt|balance|amount|rest)|el (?:pago|adeudo|saldo|monto|resto)))?\s+(?:en|in|into)\s*$"
)
# After "pagarlo en 3" these words make the number something else: "en 3 días", "en 3 mil".
_NOT_A_COUNT_AFTER = re.compile(
    r"^\s*(?:dias?|days?|semanas?|weeks?|meses|mes|months?|anos?|years?|horas?|hours?|minutos?|minutes?|mins?"
    r"|mil|k|grand|thousand|pesos|varos|dolares|dlls|dollars|bucks|usd|mxn|[$%:/\d])"
)
# Payments already made are not a plan being asked for: "ya hice 2 pagos".
_PAST_BEFORE = re.compile(r"(?:\bhice|\bhicimos|\bhecho|\bdi|\bdimos|\bmade|\bmade the|\bdid|\bsent|\bmande)\s*$")
# A date or a repetition before the number: "el 3", "cada 2".
_NOT_COUNT_BEFORE = re.compile(r"(?:\bel|\bthe|\bdia|\bdel|\bal|\bon|\bcada|\bevery|\bhace|[$#/])\s*$")
_CONNECTOR = re.compile(r"^\s*(?:o|u|a|-|or|to)\s*$")
# A single payment: "en un solo pago", "de un jalón", "in one payment".
_ONE_GO = re.compile(
    r"\b(?:(?:en\s+)?un(?:\s+solo)?\s+pago|(?:en\s+)?una(?:\s+sola)?\s+(?:exhibicion|parte)|de\s+un\s+jalon|de\s+contado"
    r"|(?:in\s+)?(?:one|a)\s+(?:single\s+)?payment|one\s+go|(?:one\s+|a\s+)?lump\s+sum)\b"
)
_ONE_GO_NEEDS = re.compile(
    r"\bsol[oa]\b|\bsingle\b|\ben\s+un|\ben\s+una|\bjalon|\bcontado|\bin\s+one|\bone\s+go|\blump"
)
_HALVES = re.compile(
    r"\b(?:split|divide|partir|dividir)\w*(?:\s+\w+)?\s+(?:in|into|a la|por la)\s+(?:half|halves|mitad)\b"
)


def _is_count(folded: str, span: NumberSpan, spans: list[NumberSpan], index: int) -> bool:
    """Whether a number is the count of payments, judged from what surrounds it."""
    if span.value != int(span.value) or not 1 <= span.value <= _MAX_INSTALLMENTS:
        return False
    before, after = folded[: span.start], folded[span.end :]
    if _NOT_COUNT_BEFORE.search(before) or _PAST_BEFORE.search(before):
        return False
    # "2 o 3 pagos": the noun after the second number counts the first too.
    nxt = spans[index + 1] if index + 1 < len(spans) else None
    if nxt is not None and _CONNECTOR.match(folded[span.end : nxt.start]):
        after_noun = folded[nxt.end :]
    else:
        after_noun = after
    if _PAYMENT_NOUN.match(after_noun):
        return True
    if span.value == 1 and _ONE_PAYMENT_NOUN.match(after) and re.search(r"\b(?:en|in)\s*$", before):
        return True
    if any(b.search(before) and a.match(after_noun) for b, a in _PERIOD_RULES):
        return True
    return bool(_SPLIT_BEFORE.search(before) and not _NOT_A_COUNT_AFTER.match(after))


def find_installments(text: str, lang: str) -> Optional[int]:
    """The number of payments the debtor asks for.

    Args:
        text: the message: "en 3 pagos", "a 6 meses", "dividirlo en 2", "en dos
            quincenas", "in 4 payments", "split it in three", "over 6 months".
        lang: "es" or "en".

    Returns:
        The first count the message gives (1 for "en un solo pago"), or None.
        Amounts, days, deadlines ("en 2 semanas", "in 6 months") and payments
        already made ("ya hice 2 pagos") are not counts.
    """
    folded = fold_aligned(text)
    spans = find_numbers(text, lang)
    found: list[tuple[int, int]] = []
    for index, span in enumerate(spans):
        if _is_count(folded, span, spans, index):
            found.append((span.start, int(span.value)))
            break
    one_go = _ONE_GO.search(folded)
    if one_go and _ONE_GO_NEEDS.search(one_go.group()):
        found.append((one_go.start(), 1))
    halves = _HALVES.search(folded)
    if halves:
        found.append((halves.start(), 2))
    return min(found)[1] if found else None


_A_PERIOD_NOT_AFTER = r"(?<!\bin )(?<!within )(?<!\bfor )(?<!than )(?<!about )(?<!after )"
_NOT_A_DATE = r"(?!\s+(?:from|ago|later|or so|que|siguiente|entrante|pasad[ao]|proxim[ao]|de (?:ahora|hoy)))"

# Each row: (frequency, pattern on the folded text). The earliest match in the
# message wins; at the same place the longest does ("twice a month" over "a month").
_FREQUENCY_ROWS: tuple[tuple[str, str], ...] = (
    ("biweekly", r"quincenal(?:es|mente)?|catorcenal(?:es|mente)?|quincenas|catorcenas"),
    ("biweekly", r"(?:cada|por|x|/)\s*(?:quincena|catorcena)|quincena con quincena"),
    ("biweekly", r"cada\s+(?:15|quince|14|catorce)\s+dias|cada\s+(?:2|dos)\s+semanas|cada\s+otra\s+semana"),
    ("biweekly", r"(?:2|dos)\s+veces\s+(?:al|por|x|a\s+la)\s+mes"),
    ("biweekly", r"(?:twice|2\s+times)\s+(?:a|per|each|every)\s+month"),
    ("biweekly", r"bi-?\s?weekly|semi-?\s?monthly|fortnightly|(?:every|each|per)\s+fortnight"),
    ("biweekly", r"every\s+(?:2|two|other|second)\s+weeks?|every\s+(?:14|fourteen|15|fifteen)\s+days"),
    ("weekly", r"semanal(?:es|mente)?|(?<!bi)(?<!bi-)(?<!bi )weekly|semana con semana"),
    ("weekly", rf"(?:cada|por|x|/|a\s+la)\s*semana{_NOT_A_DATE}|cada\s+(?:7|siete|8|ocho)\s+dias"),
    ("weekly", r"(?:every|each|per|/)\s*(?:week|wk)|every\s+(?:7|seven)\s+days"),
    ("weekly", rf"{_A_PERIOD_NOT_AFTER}a\s+week{_NOT_A_DATE}"),
    ("monthly", r"mensual(?:es|mente|idad|idades)?|(?<!semi)(?<!semi-)(?<!semi )monthly|mes con mes"),
    ("monthly", rf"(?:cada|por|x|/)\s*mes{_NOT_A_DATE}|(?<![a-z])al\s+mes{_NOT_A_DATE}"),
    ("monthly", r"cada\s+(?:30|treinta)\s+dias|every\s+30\s+days"),
    ("monthly", r"(?:every|each|per|/)\s*(?:month|mo)"),
    ("monthly", rf"{_A_PERIOD_NOT_AFTER}a\s+month{_NOT_A_DATE}"),
)
_FREQUENCIES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (frequency, re.compile(rf"(?<![a-z])(?:{pattern})(?![a-z])")) for frequency, pattern in _FREQUENCY_ROWS
)


def find_frequency(text: str, lang: str) -> Optional[str]:
    """The payment rhythm the debtor names.

    Args:
        text: the message: "cada quincena", "semanal", "al mes", "every other
            week", "$50 a week", "monthly".
        lang: "es" or "en" (both languages' words are read: debtors mix them).

    Returns:
        "weekly", "biweekly" or "monthly" (the first one named), or None.
        Deadlines are not rhythms: "a la semana que entra", "in a month".
    """
    folded = fold_aligned(text)
    best: Optional[tuple[int, int, str]] = None
    for frequency, pattern in _FREQUENCIES:
        for match in pattern.finditer(folded):
            key = (match.start(), -len(match.group()), frequency)
            if best is None or key < best:
                best = key
            break
    return best[2] if best else None
