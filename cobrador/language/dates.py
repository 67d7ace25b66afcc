"""Dates in debtor messages, resolved against the debtor's local "today".

The rules are the NLU contract's (../shared/spec/nlu-contract.md):

* a bare weekday ("el viernes", "this friday") is the first such day
  strictly after today; "next"/"próximo" + weekday is that weekday in next
  calendar week (Monday to Sunday); "el otro viernes"/"friday after next" is
  the bare weekday plus seven days;
* a day of the month alone is the next date with that number, today
  included; a day and month without a year, the next such date;
* ranges ("esta semana", "fin de mes", "next month", "July 13-15") resolve
  to their last day, the deadline the debtor gave;
* "la quincena" is the next 15th or last day of the month, today included;
* explicit past words ("ayer", "hace 3 días", "last friday") resolve to the
  past.

Every expression found is a :class:`DateSpan` with the first and last day it
covers and where it sits in the text (so amounts are not read out of dates).
Calendar arithmetic is python-dateutil's.

The module is pure: no clock, no I/O. Callers pass today.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

from dateutil.relativedelta import relativedelta

# Grains of a span: one day, a calendar week, a calendar month, or a range
# of days that is not a calendar unit ("fin de mes", "July 13-15").
DAY, WEEK, MONTH, RANGE = "day", "week", "month", "range"


@dataclass(frozen=True)
class DateSpan:
    """A date expression found in a message.

    Attributes:
        first: the first day the expression covers.
        last: the last day it covers; the contract's value (a deadline).
        grain: `day`, `week`, `month` or `range`.
        start: offset of the expression in the message.
        end: offset just after it.
        past: whether an explicit past word made it point backwards.
    """

    first: dt.date
    last: dt.date
    grain: str
    start: int = 0
    end: int = 0
    past: bool = False
    # How an expression without a fixed date can move to its previous
    # occurrence when the message talks about the past ("ya pagué el
    # lunes"): by a week, a month or a year; None when it cannot.
    anchor: Optional[str] = None

    @property
    def value(self) -> dt.date:
        """The contract's date: the last day (a single day is its own last day)."""
        return self.last


# --- vocabulary (accent-free, lower case: matched against folded text) ------

WEEKDAYS: dict[str, dict[str, int]] = {
    "es": {
        "lunes": 0, "lun": 0, "lu": 0,
        "martes": 1, "mar": 1, "ma": 1,
        "miercoles": 2, "mier": 2, "mie": 2, "mi": 2, "mx": 2,
        "jueves": 3, "jue": 3, "ju": 3,
        "viernes": 4, "vie": 4, "vi": 4,
        "sabado": 5, "sab": 5, "sa": 5,
        "domingo": 6, "dom": 6, "do": 6,
    },
    "en": {
        "monday": 0, "mon": 0,
        "tuesday": 1, "tues": 1, "tue": 1,
        "wednesday": 2, "wed": 2, "weds": 2,
        "thursday": 3, "thurs": 3, "thur": 3, "thu": 3,
        "friday": 4, "fri": 4,
        "saturday": 5, "sat": 5,
        "sunday": 6, "sun": 6,
    },
}  # fmt: skip

# Short forms are also ordinary words ("vi", "mar", "sun", "sat"): they count
# only when the message is nothing else, or they are followed by a dot, a
# comma or a day number.
_FULL_WEEKDAYS = {
    "es": ["lunes", "martes", "miercoles", "jueves", "viernes", "sabado", "domingo"],
    "en": ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"],
}

MONTHS: dict[str, dict[str, int]] = {
    "es": {
        "enero": 1, "ene": 1, "febrero": 2, "feb": 2, "marzo": 3, "mar": 3, "abril": 4, "abr": 4,
        "mayo": 5, "may": 5, "junio": 6, "jun": 6, "julio": 7, "jul": 7, "agosto": 8, "ago": 8,
        "septiembre": 9, "setiembre": 9, "sept": 9, "sep": 9, "set": 9, "octubre": 10, "oct": 10,
        "noviembre": 11, "nov": 11, "diciembre": 12, "dic": 12,
    },
    "en": {
        "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
        "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
        "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    },
}  # fmt: skip

_UNITS_ES = ["", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve", "diez", "once", "doce",
             "trece", "catorce", "quince", "dieciseis", "diecisiete", "dieciocho", "diecinueve", "veinte",
             "veintiuno", "veintidos", "veintitres", "veinticuatro", "veinticinco", "veintiseis", "veintisiete",
             "veintiocho", "veintinueve", "treinta", "treinta y uno"]  # fmt: skip
_UNITS_EN = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
             "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen", "twenty"]  # fmt: skip
_ORDINALS_EN = ["", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth",
                "eighteenth", "nineteenth", "twentieth"]  # fmt: skip


def _number_words(lang: str) -> dict[str, int]:
    words: dict[str, int] = {}
    if lang == "es":
        for value, word in enumerate(_UNITS_ES):
            if word:
                words[word] = value
        words.update({"primero": 1, "primer": 1, "un": 1, "una": 1, "veintiun": 21, "diez y seis": 16})
        for value in range(1, 10):
            words[f"veinte y {_UNITS_ES[value]}"] = 20 + value
    else:
        for value, word in enumerate(_UNITS_EN):
            if word:
                words[word] = value
        for value, word in enumerate(_ORDINALS_EN):
            if word:
                words[word] = value
        for value in range(1, 10):
            for joiner in ("-", " "):
                words[f"twenty{joiner}{_UNITS_EN[value]}"] = 20 + value
                words[f"twenty{joiner}{_ORDINALS_EN[value]}"] = 20 + value
        words.update({"thirty": 30, "thirtieth": 30, "thirty-one": 31, "thirty one": 31, "thirty-first": 31})
        words.update({"thirty first": 31, "a": 1, "an": 1, "couple": 2, "a couple of": 2, "few": 3, "a few": 3})
    return words


NUMBER_WORDS = {lang: _number_words(lang) for lang in ("es", "en")}


def _alternation(words: object) -> str:
    """A regex alternation of `words`, longest first, spaces matching any run."""
    ordered = sorted(set(words), key=len, reverse=True)  # type: ignore[arg-type]
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in ordered)


# --- text folding that keeps offsets ----------------------------------------


def fold_keep_offsets(text: str) -> str:
    """Lower case without accents, one character for one: offsets stay valid."""
    out = []
    for char in text:
        base = unicodedata.normalize("NFD", char)[0].lower()
        out.append(base if len(base) == 1 else char)
    return "".join(out)


# --- calendar arithmetic ----------------------------------------------------


def monday_of(day: dt.date) -> dt.date:
    return day - dt.timedelta(days=day.weekday())


def month_end(year: int, month: int) -> dt.date:
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def next_weekday(today: dt.date, weekday: int) -> dt.date:
    """The first `weekday` strictly after today."""
    return today + dt.timedelta(days=(weekday - today.weekday() - 1) % 7 + 1)


def next_week_weekday(today: dt.date, weekday: int) -> dt.date:
    """`weekday` in next calendar week (Duckling's "next friday")."""
    return monday_of(today) + dt.timedelta(days=7 + weekday)


def this_week_weekday(today: dt.date, weekday: int) -> dt.date:
    return monday_of(today) + dt.timedelta(days=weekday)


def last_weekday(today: dt.date, weekday: int) -> dt.date:
    """The most recent `weekday` strictly before today."""
    return today - dt.timedelta(days=(today.weekday() - weekday - 1) % 7 + 1)


def next_day_of_month(today: dt.date, day: int) -> Optional[dt.date]:
    """The next date whose day number is `day`, today included."""
    if not 1 <= day <= 31:
        return None
    cursor = today.replace(day=1)
    for _ in range(13):
        if day <= calendar.monthrange(cursor.year, cursor.month)[1]:
            candidate = cursor.replace(day=day)
            if candidate >= today:
                return candidate
        cursor += relativedelta(months=1)
    return None


def next_month_day(today: dt.date, month: int, day: int, year: Optional[int] = None) -> Optional[dt.date]:
    """Day and month in `year`, or the next such date from today (today included)."""
    if year is not None:
        try:
            return dt.date(year, month, day)
        except ValueError:
            return None
    for candidate_year in range(today.year, today.year + 9):
        try:
            candidate = dt.date(candidate_year, month, day)
        except ValueError:
            continue  # 29 February
        if candidate >= today:
            return candidate
    return None


def quincena(today: dt.date) -> dt.date:
    """Mexican payday: the next 15th or last day of the month, today included."""
    if today.day <= 15:
        return today.replace(day=15)
    return month_end(today.year, today.month)


def _year(text: Optional[str]) -> Optional[int]:
    if not text:
        return None
    value = int(text)
    return value + 2000 if value < 100 else value


def _day(text: Optional[str], lang: str) -> Optional[int]:
    if not text:
        return None
    text = re.sub(r"\s+", " ", text.strip())
    digits = re.match(r"(\d{1,2})", text)
    if digits:
        return int(digits.group(1))
    return NUMBER_WORDS[lang].get(text)


def _count(text: str, lang: str) -> Optional[int]:
    text = re.sub(r"\s+", " ", text.strip())
    if text.isdigit():
        return int(text)
    return NUMBER_WORDS[lang].get(text)


def _anchored(span: Optional[DateSpan], anchor: Optional[str]) -> Optional[DateSpan]:
    return replace(span, anchor=anchor) if span is not None else None


def _single(day: Optional[dt.date], past: bool = False) -> Optional[DateSpan]:
    return DateSpan(day, day, DAY, past=past) if day else None


def _week(monday: dt.date) -> DateSpan:
    return DateSpan(monday, monday + dt.timedelta(days=6), WEEK)


def _month_span(year: int, month: int) -> DateSpan:
    return DateSpan(dt.date(year, month, 1), month_end(year, month), MONTH)


def _last_week(match: re.Match, today: dt.date) -> DateSpan:
    """ "la semana pasada", "last week": the previous calendar week, in the past."""
    return replace(_week(monday_of(today) - dt.timedelta(7)), past=True)


def _last_month(match: re.Match, today: dt.date) -> DateSpan:
    """ "el mes pasado", "last month": the previous calendar month, in the past."""
    previous = today - relativedelta(months=1)
    return replace(_month_span(previous.year, previous.month), past=True)


def _upcoming_month(today: dt.date, month: int) -> tuple[int, int]:
    """(year, month) of the next occurrence of `month`, this month included."""
    return (today.year if month >= today.month else today.year + 1), month


# --- rules ------------------------------------------------------------------

Handler = Callable[[re.Match, dt.date], Optional[DateSpan]]


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern
    handler: Handler


class _Grammar:
    """The date rules of one language, compiled once."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self.rules: list[_Rule] = []
        es = lang == "es"
        weekdays = WEEKDAYS[lang]
        months = MONTHS[lang]
        full_wd = _FULL_WEEKDAYS[lang]
        numbers = {w: v for w, v in NUMBER_WORDS[lang].items() if v <= 31}
        num_words = _alternation(w for w in numbers if w not in ("a", "an", "un", "una", "few", "a few", "couple"))
        # A weekday: full names anywhere; short forms only before ".", "," or a digit.
        short = [w for w in weekdays if w not in full_wd]
        self.wd = rf"(?:{_alternation(full_wd)}|(?:{_alternation(short)})(?=\.|,|\s*\d))\.?"
        self.wd_alone = rf"(?:{_alternation(weekdays)})\.?"
        # A month: full names anywhere; abbreviations and ambiguous words
        # ("mar", "may") only next to a day number or a year.
        month_re = rf"(?:{_alternation(months)})\.?"
        day_num = r"\d{1,2}(?:st|nd|rd|th|ro|vo|o)?"
        day_re = rf"(?:{day_num}|{num_words})"
        count = rf"(?:\d{{1,3}}|{_alternation(w for w, v in NUMBER_WORDS[lang].items())})"
        self.day_re, self.month_re, self.count_re = day_re, month_re, count
        year_re = r"(?:'?\d{4}|'\d{2})"
        B, E = r"(?<![\w/.-])", r"(?![\w/-])"  # word boundaries that keep "3/4" whole
        S = r"\s+"

        def add(pattern: str, handler: Handler) -> None:
            self.rules.append(_Rule(re.compile(B + "(?:" + pattern + ")" + E), handler))

        wd_of = lambda m, key="wd": weekdays[m.group(key).rstrip(".")]  # noqa: E731
        mon_of = lambda m, key="mon": months[m.group(key).rstrip(".")]  # noqa: E731

        # Numeric dates. ISO first; then d/m (Spanish) or m/d (English, d/m when the first is over 12).
        add(r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})", self._iso)
        add(r"(?P<y>\d{4})[-/](?P<m>\d{1,2})", lambda m, t: _month_span(int(m["y"]), int(m["m"]))
            if 1 <= int(m["m"]) <= 12 else None)  # fmt: skip
        add(r"(?P<a>\d{1,2})\s*(?P<sep>[/.-])\s*(?P<b>\d{1,2})(?:\s*(?P=sep)\s*(?P<y>\d{4}|\d{2}))?", self._numeric)
        add(r"(?P<m>\d{1,2})/(?P<y>\d{4})", lambda m, t: _month_span(int(m["y"]), int(m["m"]))
            if 1 <= int(m["m"]) <= 12 else None)  # fmt: skip

        if es:
            self._spanish(add, wd_of, mon_of, day_re, month_re, count, year_re, S)
        else:
            self._english(add, wd_of, mon_of, day_re, month_re, count, year_re, S)

    # numeric handlers
    def _iso(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        try:
            return _single(dt.date(int(m["y"]), int(m["m"]), int(m["d"])))
        except ValueError:
            return None

    def _numeric(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        a, b, year = int(m["a"]), int(m["b"]), _year(m["y"])
        if m["sep"] == "." and not m["y"]:
            return None  # "1.5" is a number, not a date
        if self.lang == "es" or a > 12:
            day, month = a, b
        else:
            month, day = a, b
        if not 1 <= month <= 12:
            return None
        return _single(next_month_day(today, month, day, year))

    # --- Spanish --------------------------------------------------------------
    def _spanish(self, add, wd_of, mon_of, day_re, month_re, count, year_re, S) -> None:  # noqa: ANN001
        wd, lang = self.wd, self.lang
        long_months = _alternation(m for m in MONTHS[lang] if len(m) > 3)
        el = r"(?:(?:el|este|esta|para\s+el|pa(?:ra)?l|al|hasta\s+el|a\s+mas\s+tardar\s+el)\s+)?"
        dia = r"(?:(?:el\s+)?dia\s+)?"
        de_year = rf"(?:\s*(?:,\s*)?(?:de|del)?\s*(?P<y>{year_re}))?"
        proximo = r"(?:proximo|proxima|proximos|proximas|siguiente|entrante)"
        que_viene = r"(?:que\s+viene|que\s+entra|entrante)"
        semana_next = rf"(?:(?:la\s+)?semana\s+{que_viene}|(?:la\s+)?{proximo}\s+semana|(?:la\s+)?semana\s+proxima)"
        mes_next = rf"(?:(?:el\s+)?mes\s+{que_viene}|(?:el\s+)?{proximo}\s+mes|(?:el\s+)?mes\s+proximo)"

        add(r"pasado\s+manana", lambda m, t: _single(t + dt.timedelta(days=2)))
        # parts of today and yesterday
        add(
            r"(?:hoy\s+)?(?:esta|en\s+la|por\s+la|hoy\s+en\s+la|hoy\s+por\s+la)\s+(?:noche|tarde)"
            r"|esta\s+manana|hoy\s+(?:en|por)\s+la\s+manana"
            r"|(?:al\s+rato|orita|ahorita)\s+(?:en|por)\s+la\s+(?:noche|tarde)",
            lambda m, t: _single(t),
        )
        add(r"anoche|ayer\s+(?:en|por)\s+la\s+(?:noche|tarde|manana)", lambda m, t: _single(t - dt.timedelta(1), True))
        add(r"(?:la\s+)?semana\s+pasada|(?:la\s+)?pasada\s+semana", _last_week)
        add(r"(?:el\s+)?mes\s+pasado|(?:el\s+)?pasado\s+mes", _last_month)
        add(
            r"(?:antier|antiayer|anteayer|antes\s+de\s+ayer|antes\s+de\s+antier)",
            lambda m, t: _single(t - dt.timedelta(days=3 if "antes de antier" in m[0] else 2), past=True),
        )
        add(r"(?:ayer|ayet|yesterday)", lambda m, t: _single(t - dt.timedelta(days=1), past=True))
        add(r"(?:hoy|hoy\s+mismo|el\s+dia\s+de\s+hoy)", lambda m, t: _single(t))
        # "mañana" is tomorrow, except "en/por/de la mañana" (the morning).
        add(r"(?<!la\s)(?:manana|mañana|mñn|mñna|mana)(?!\w)", lambda m, t: _single(t + dt.timedelta(days=1)))
        add(
            rf"(?:en|dentro\s+de)\s+(?P<n>{count})\s+(?P<unit>dias?|semanas?|mes(?:es)?|anos?)",
            lambda m, t: self._offset(m, t, +1),
        )
        add(
            rf"(?:hace|va\s+para)\s+(?P<n>{count})\s+(?P<unit>dias?|semanas?|mes(?:es)?|anos?)",
            lambda m, t: self._offset(m, t, -1),
        )
        add(rf"(?:los\s+)?{proximo}\s+(?P<n>{count})\s+dias", lambda m, t: self._next_days(m, t))
        # weekday + explicit date: "lunes, 18 de febrero", "viernes, el 12 de septiembre de 2014"
        add(
            rf"{el}(?P<wd>{wd})\s*,?\s*{el}{dia}(?P<d>{day_re})\s+(?:de\s+)?(?P<mon>{month_re}){de_year}",
            lambda m, t: self._weekday_date(m, t, wd_of(m), mon_of(m)),
        )
        # weekday + day number: "jue 15" = the next Thursday that is a 15th
        add(
            rf"{el}(?P<wd>{wd})\s*,?\s*{el}(?P<d>\d{{1,2}})(?!\s*(?:de\s+)?(?:{month_re}|[/-]\d))",
            lambda m, t: self._weekday_day(m, t, wd_of(m)),
        )
        # day-month ranges: "13 a 15 de julio", "21 de dic. a 6 de ene"
        add(
            rf"(?:del?\s+)?(?P<d1>{day_re})\s*(?:de\s+(?P<mon1>{month_re})\s*)?(?:a|al|-|hasta\s+el)\s*(?P<d2>{day_re})"
            rf"\s+(?:de\s+)?(?P<mon2>{month_re}){de_year}",
            self._range_dm,
        )
        # weekday of a given week
        add(
            rf"{el}(?P<wd>{wd})\s+de\s+(?:la\s+)?{semana_next}".replace("(?:la\\s+)?(?:(?:la", "(?:(?:la"),
            lambda m, t: _single(next_week_weekday(t, wd_of(m))),
        )
        add(rf"{el}(?P<wd>{wd})\s+de\s+esta\s+semana", lambda m, t: _single(this_week_weekday(t, wd_of(m))))
        add(rf"(?:el\s+)?{proximo}\s+(?P<wd>{wd})", lambda m, t: _single(next_week_weekday(t, wd_of(m))))
        add(rf"(?:el\s+)?(?P<wd>{wd})\s+{proximo}", lambda m, t: _single(next_week_weekday(t, wd_of(m))))
        add(rf"(?:el\s+)?otro\s+(?P<wd>{wd})", lambda m, t: _single(next_weekday(t, wd_of(m)) + dt.timedelta(7)))
        add(
            rf"(?:el\s+)?(?P<wd>{wd})\s+(?:pasado|antepasado)|(?:el\s+)?pasado\s+(?P<wd2>{wd})",
            lambda m, t: _single(
                last_weekday(t, wd_of(m, "wd" if m["wd"] else "wd2")) - dt.timedelta(7 if "antepasado" in m[0] else 0),
                past=True,
            ),
        )
        add(
            rf"{el}(?P<wd>{wd})(?:\s+{que_viene})?",
            lambda m, t: _anchored(_single(next_weekday(t, wd_of(m))), "week"),
        )
        # explicit day and month: "15 de diciembre", "el cinco de mayo de 2013", "marzo 3", "mayo 5 del 2013"
        add(
            rf"{el}{dia}(?P<d>{day_re})\s*(?:de\s+|-\s*)?(?P<mon>{month_re}){de_year}",
            lambda m, t: _anchored(
                _single(next_month_day(t, mon_of(m), _day(m["d"], lang), _year(m["y"]))), None if m["y"] else "year"
            ),
        )
        add(
            rf"(?P<mon>{month_re})\s+(?P<d>\d{{1,2}})(?!\d){de_year}",
            lambda m, t: _anchored(
                _single(next_month_day(t, mon_of(m), int(m["d"]), _year(m["y"]))), None if m["y"] else "year"
            ),
        )
        # day of the month: "el 15", "el dia 15", "dia quince", "el quince", "el primero"
        add(
            rf"(?:(?:el|del|para\s+el|pa(?:ra)?l|al|hasta\s+el|antes\s+del?|mas\s+tardar\s+el)\s+(?:dia\s+)?|dia\s+)"
            rf"(?P<d>\d{{1,2}}|{_alternation(w for w, v in NUMBER_WORDS[lang].items() if w not in ('un', 'una'))})"
            rf"(?!\s*(?:de\s+)?(?:{month_re}|pagos?|abonos?|mensualidades|partes|quincenas|semanas|meses|dias|%|mil|pesos|varos|dlls?|dolares|k\b))",
            lambda m, t: _anchored(_single(next_day_of_month(t, _day(m["d"], lang) or 0)), "month"),
        )
        # weeks
        add(
            r"(?:(?:a\s+)?(?:finales|fin)\s+de\s+(?:esta\s+)?semana)",
            lambda m, t: DateSpan(this_week_weekday(t, 4), this_week_weekday(t, 6), RANGE),
        )
        add(
            rf"(?:(?:a\s+)?(?:finales|fin)\s+de\s+{semana_next})",
            lambda m, t: DateSpan(next_week_weekday(t, 4), next_week_weekday(t, 6), RANGE),
        )
        add(
            r"(?:este|el)\s+fin(?:de)?\s+(?:de\s+)?semana|el\s+finde|este\s+finde|fin\s+de\s+semana|finde",
            lambda m, t: DateSpan(max(t, this_week_weekday(t, 5)), this_week_weekday(t, 6), RANGE),
        )
        add(r"(?:(?:en|durante)\s+)?(?:esta|la\s+presente)\s+semana", lambda m, t: _week(monday_of(t)))
        add(rf"(?:(?:en|durante|para)\s+)?{semana_next}", lambda m, t: _week(monday_of(t) + dt.timedelta(7)))
        add(r"(?:la\s+)?otra\s+semana", lambda m, t: _week(monday_of(t) + dt.timedelta(7)))
        # months
        add(
            r"(?:a\s+)?(?:fin|finales|final|ultimo|ultimos)\s+(?:de(?:l)?\s+)?(?:este\s+)?mes",
            lambda m, t: DateSpan(max(t, t.replace(day=21)), month_end(t.year, t.month), RANGE),
        )
        add(
            rf"(?:a\s+)?(?:fin|finales|final)\s+de(?:l)?\s+{mes_next}".replace("(?:el\\s+)?", ""),
            lambda m, t: self._month_part(t + relativedelta(months=1), 21, None),
        )
        add(
            rf"(?:a\s+)?(?:fin|finales)\s+de\s+(?P<mon>{month_re})",
            lambda m, t: self._month_part(dt.date(*_upcoming_month(t, mon_of(m)), 1), 21, None),
        )
        add(
            rf"(?:a\s+)?(?:principios|inicios|comienzos)\s+de(?:l)?\s+{mes_next}".replace("(?:el\\s+)?", ""),
            lambda m, t: self._month_part(t + relativedelta(months=1), 1, 10),
        )
        add(
            rf"(?P<d>{day_re})\s+del\s+{mes_next}".replace("(?:el\\s+)?", ""),
            lambda m, t: _single(self._day_in(t + relativedelta(months=1), _day(m["d"], lang))),
        )
        add(rf"(?:(?:en|durante|para)\s+)?{mes_next}", lambda m, t: _month_span(*_ym(t + relativedelta(months=1))))
        add(r"(?:(?:en|durante)\s+)?este\s+mes", lambda m, t: _month_span(t.year, t.month))
        add(r"(?:el\s+)?otro\s+mes", lambda m, t: _month_span(*_ym(t + relativedelta(months=1))))
        # the fortnight payday
        add(
            r"(?<!por\s)(?<!cada\s)(?<!x\s)(?<!por\sla\s)(?<!a\sla\s)"
            r"(?:(?:la|esta|en\s+la|pa\s+la|para\s+la|cuando\s+(?:me\s+)?(?:paguen|caiga|salga|cobre)\s+(?:la\s+)?)\s*)?"
            r"(?:quincena|qna|quince)(?!\s+(?:de|dias))",
            self._quincena,
        )
        add(
            r"(?:la\s+)?(?:otra|siguiente|proxima|sig)\s+quincena",
            lambda m, t: _single(quincena(quincena(t) + dt.timedelta(days=1))),
        )
        # a month on its own: "en marzo", "para diciembre"
        add(
            rf"(?:en|para|durante|a\s+(?:finales|mediados)\s+de)\s+(?P<mon>{long_months})",
            lambda m, t: _anchored(_month_span(*_upcoming_month(t, mon_of(m))), "year"),
        )

    # --- English --------------------------------------------------------------
    def _english(self, add, wd_of, mon_of, day_re, month_re, count, year_re, S) -> None:  # noqa: ANN001
        wd, lang = self.wd, self.lang
        long_months_may = _alternation(m for m in MONTHS[lang] if len(m) > 3 or m == "may")
        on = r"(?:(?:on|by|this|til|till|until|before|around|for|next|coming)\s+)?"
        the = r"(?:the\s+)?"
        of_year = rf"(?:\s*,?\s*(?P<y>{year_re}|(?<=\s)\d{{2}}(?!\d)))?"
        next_week = r"(?:next|the\s+following|following|the\s+coming|coming|upcoming|around\s+next)\s+week"

        add(r"(?:the\s+)?day\s+after\s+(?:tomorrow|tmrw|tmr|tomorow)", lambda m, t: _single(t + dt.timedelta(2)))
        add(r"this\s+morning|earlier\s+today|later\s+today", lambda m, t: _single(t))
        add(r"last\s+night|yesterday\s+(?:morning|afternoon|evening)", lambda m, t: _single(t - dt.timedelta(1), True))
        add(r"(?:the\s+)?(?:last|past|previous)\s+week", _last_week)
        add(r"(?:the\s+)?(?:last|past|previous)\s+month", _last_month)
        add(r"(?:the\s+)?day\s+before\s+yesterday", lambda m, t: _single(t - dt.timedelta(2), past=True))
        add(r"yesterday|yday|yest", lambda m, t: _single(t - dt.timedelta(1), past=True))
        add(r"today|tonight|tonite|2day|2nite|this\s+(?:evening|afternoon)", lambda m, t: _single(t))
        add(
            r"tomorrows?|tmrw|tmr|tomorow|tommorow|tommorrow|tomorro|2morrow|2moro|tmro",
            lambda m, t: _single(t + dt.timedelta(1)),
        )
        add(rf"(?P<n>{count})\s+(?P<unit>days?|weeks?|months?|years?)\s+ago", lambda m, t: self._offset(m, t, -1))
        add(
            rf"(?:in|within)\s+(?P<n>{count})\s+(?P<unit>days?|weeks?|months?|years?)",
            lambda m, t: self._offset(m, t, +1),
        )
        add(
            rf"(?P<n>{count})\s+(?P<unit>days?|weeks?|months?|years?)\s+(?:from\s+(?:now|today)|hence|later)",
            lambda m, t: self._offset(m, t, +1),
        )
        add(
            r"(?:a\s+)?fortnight\s+(?:from\s+(?:now|today)|hence)|in\s+a\s+fortnight",
            lambda m, t: _single(t + dt.timedelta(14)),
        )
        add(
            rf"(?P<n>{count})\s+(?P<wd>{wd})s\s+from\s+(?:now|today)",
            lambda m, t: _single(next_weekday(t, wd_of(m)) + dt.timedelta(7 * ((_count(m["n"], lang) or 1) - 1))),
        )
        add(rf"(?:the\s+)?next\s+(?P<n>{count})\s+days", lambda m, t: self._next_days(m, t))
        add(
            rf"(?:upcoming\s+(?P<n>{count})|(?P<n2>{count})\s+upcoming)\s+(?P<unit>days?|weeks?|months?)",
            self._upcoming,
        )
        # weekday + explicit date: "Monday, Feb 18", "Fri, Jul 18", "Wed, Feb13", "Jul 18, Fri", "Tuesday the 19th"
        add(
            rf"{on}(?P<wd>{wd})\s*,?\s*(?P<mon>{month_re})\s*(?P<d>{day_num_en()}){of_year}",
            lambda m, t: self._weekday_date(m, t, wd_of(m), mon_of(m)),
        )
        add(
            rf"(?P<mon>{month_re})\s*(?P<d>{day_num_en()})\s*,\s*(?P<wd>{wd})",
            lambda m, t: self._weekday_date(m, t, wd_of(m), mon_of(m)),
        )
        add(
            rf"{on}(?P<wd>{wd})\s*,?\s*(?:the\s+)?(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?!\s*(?:of\s+)?{month_re}|[/\d])",
            lambda m, t: self._weekday_day(m, t, wd_of(m)),
        )
        # ranges of days
        add(
            rf"(?:from\s+)?(?P<mon>{month_re})\s*(?P<d1>{day_num_en()})\s*(?:-|to|thru|through|until|till)\s*"
            rf"(?:(?P<mon2>{month_re})\s*)?(?P<d2>{day_num_en()}){of_year}",
            self._range_md,
        )
        add(
            rf"(?:from\s+)?{the}(?P<d1>{day_num_en()})\s*(?:-|to|thru|through|until|till)\s*{the}(?P<d2>{day_num_en()})"
            rf"\s*(?:of\s+)?(?P<mon>{month_re}){of_year}",
            self._range_dm,
        )
        add(
            rf"(?:for\s+(?P<n>{count})\s+days\s+from\s+{the}(?P<d>{day_num_en()})\s*(?:of\s+)?(?P<mon>{month_re})"
            rf"|(?:from\s+)?{the}(?P<d_>{day_num_en()})\s*(?:of\s+)?(?P<mon_>{month_re})\s+for\s+(?P<n_>{count})\s+days)",
            self._for_days,
        )
        # weekday of a week
        add(rf"(?:the\s+)?(?P<wd>{wd})\s+(?:of\s+)?{next_week}", lambda m, t: _single(next_week_weekday(t, wd_of(m))))
        add(rf"(?:the\s+)?(?P<wd>{wd})\s+(?:of\s+)?this\s+week", lambda m, t: _single(this_week_weekday(t, wd_of(m))))
        add(rf"(?:around\s+)?next\s+(?P<wd>{wd})", lambda m, t: _single(next_week_weekday(t, wd_of(m))))
        add(
            rf"(?:the\s+)?(?P<wd>{wd})\s+after\s+next",
            lambda m, t: _single(next_weekday(t, wd_of(m)) + dt.timedelta(7)),
        )
        add(
            rf"(?:the\s+)?(?P<nth>last|first|second|third|fourth|1st|2nd|3rd|4th)\s+(?P<wd>{wd})\s+(?:of|in)\s+"
            rf"(?P<mon>{month_re}){of_year}",
            self._nth_weekday_of_month,
        )
        add(
            rf"(?:last|past|previous)\s+(?P<wd>{wd})|(?P<wd2>{wd})\s+(?:before\s+last|last\s+week)",
            lambda m, t: _single(
                last_weekday(t, wd_of(m, "wd" if m["wd"] else "wd2")) - dt.timedelta(7 if "before last" in m[0] else 0),
                past=True,
            ),
        )
        add(
            rf"(?:(?:on|by|this|til|till|until|before|for|coming|from)\s+)?(?P<wd>{wd})(?:\s+coming)?",
            lambda m, t: _anchored(_single(next_weekday(t, wd_of(m))), "week"),
        )
        # "20 of next month", "the 20th of this month"
        add(
            rf"{the}(?P<d>{day_re})(?:\s+day)?\s+of\s+(?:the\s+)?(?P<which>next|following|this|current)\s+month",
            lambda m, t: _single(
                self._day_in(
                    t + relativedelta(months=0 if m["which"] in ("this", "current") else 1), _day(m["d"], lang)
                )
            ),
        )
        # "the third day of october", "fifth last day of May", "last day of october 2015"
        add(
            rf"{the}(?:(?P<nth>{day_re})\s+)?(?P<last>last\s+)?day\s+(?:of|in)\s+(?P<mon>{month_re}){of_year}",
            self._nth_day_of_month,
        )
        # explicit day and month
        add(
            rf"{on}{the}(?P<d>{day_re})\s*(?:of\s+|-\s*)?(?P<mon>{month_re}){of_year}",
            lambda m, t: _anchored(
                _single(next_month_day(t, mon_of(m), _day(m["d"], lang) or 0, _year(m["y"]))),
                None if m["y"] else "year",
            ),
        )
        add(
            rf"{on}(?P<mon>{month_re})\s*(?:the\s+)?(?P<d>{day_num_en()}|{day_re})(?!\d)"
            rf"(?:\s*,?\s*(?P<y>\d{{4}}|'\d{{2}}))?",
            lambda m, t: _anchored(
                _single(next_month_day(t, mon_of(m), _day(m["d"], lang) or 0, _year(m["y"]))),
                None if m["y"] else "year",
            ),
        )
        # a day of the month: "on the 15th", "the 24", "on 24th", "by the first"
        add(
            rf"(?:(?:on|by|before|for|until|till|til)\s+(?:the\s+)?|the\s+)(?P<d>\d{{1,2}}(?:st|nd|rd|th)?|"
            rf"{_ORDINAL_WORDS_EN})"
            r"(?!\s*(?:payments?|installments?|instalments?|days?|weeks?|months?|%|bucks|dollars|grand|k\b|of\s))",
            lambda m, t: _anchored(_single(next_day_of_month(t, _day(m["d"], lang) or 0)), "month"),
        )
        add(
            r"(?P<d>\d{1,2}(?:st|nd|rd|th))(?!\s*(?:payments?|installments?|of\s))",
            lambda m, t: _anchored(_single(next_day_of_month(t, _day(m["d"], lang) or 0)), "month"),
        )
        # weeks
        add(
            r"(?:at\s+)?(?:the\s+)?(?P<part>beginning|start|end)\s+of\s+(?:this|current|the)\s+week",
            lambda m, t: self._week_part(monday_of(t), m["part"]),
        )
        add(
            rf"(?:at\s+)?(?:the\s+)?(?P<part>beginning|start|end)\s+of\s+(?:the\s+)?{next_week}",
            lambda m, t: self._week_part(monday_of(t) + dt.timedelta(7), m["part"]),
        )
        add(
            r"(?:this|the|that)\s+weekend|(?:over|on|by)\s+the\s+weekend|weekend",
            lambda m, t: DateSpan(max(t, this_week_weekday(t, 5)), this_week_weekday(t, 6), RANGE),
        )
        add(r"(?:rest\s+of\s+the|the)\s+week", lambda m, t: DateSpan(t, this_week_weekday(t, 6), WEEK))
        add(r"all\s+week", lambda m, t: _week(monday_of(t)))
        add(r"(?:this|current|the\s+current)\s+week", lambda m, t: _week(monday_of(t)))
        add(rf"(?:(?:by|during|in)\s+)?{next_week}", lambda m, t: _week(monday_of(t) + dt.timedelta(7)))
        add(r"(?:the\s+)?week\s+after\s+next", lambda m, t: _week(monday_of(t) + dt.timedelta(14)))
        # months
        add(
            r"(?:at\s+)?(?:the\s+)?(?:end|eom)(?:\s+of\s+(?:the|this)\s+month|\s+of\s+month)|(?:at\s+)?(?:the\s+)?eom",
            lambda m, t: DateSpan(max(t, t.replace(day=21)), month_end(t.year, t.month), RANGE),
        )
        add(
            r"(?:at\s+)?(?:the\s+)?end\s+of\s+(?:the\s+)?next\s+month",
            lambda m, t: self._month_part(t + relativedelta(months=1), 21, None),
        )
        add(
            rf"(?:at\s+)?(?:the\s+)?(?P<part>beginning|start|end|early|mid|middle|late)(?:\s+of)?\s+(?P<mon>{month_re})",
            lambda m, t: self._month_part(
                dt.date(*_upcoming_month(t, mon_of(m)), 1),
                *{"beginning": (1, 10), "start": (1, 10), "early": (1, 10), "mid": (11, 20), "middle": (11, 20)}.get(
                    m["part"], (21, None)
                ),
            ),
        )
        add(
            r"(?:(?:by|during|in)\s+)?(?:the\s+)?(?:next|following|coming)\s+month",
            lambda m, t: _month_span(*_ym(t + relativedelta(months=1))),
        )
        add(r"(?:(?:by|during|in)\s+)?this\s+month", lambda m, t: _month_span(t.year, t.month))
        add(
            rf"(?P<mon>{long_months_may})\s+(?:in\s+(?:a|1|one)\s+year"
            r"|after\s+next)",
            lambda m, t: _month_span(_upcoming_month(t, mon_of(m))[0] + 1, mon_of(m)),
        )
        add(
            rf"(?:next\s+)?(?P<mon>{_alternation(m for m in MONTHS[lang] if len(m) > 3)}),?\s+(?P<y>\d{{4}})",
            lambda m, t: _month_span(int(m["y"]), mon_of(m)),
        )
        add(
            rf"(?:(?:in|during|by|next|until|till)\s+)(?P<mon>{_alternation(m for m in MONTHS[lang] if len(m) > 3)})",
            lambda m, t: _anchored(_month_span(*_upcoming_month(t, mon_of(m))), "year"),
        )

    # --- handlers shared by both languages --------------------------------------
    def _offset(self, m: re.Match, today: dt.date, sign: int) -> Optional[DateSpan]:
        n = _count(m["n"], self.lang)
        if n is None or n > 400:
            return None
        unit = m["unit"][0]  # d(ias/ays), s(emanas), w(eeks), m(eses/onths), a(ños), y(ears)
        delta = {
            "d": relativedelta(days=n),
            "s": relativedelta(weeks=n),
            "w": relativedelta(weeks=n),
            "m": relativedelta(months=n),
            "a": relativedelta(years=n),
            "y": relativedelta(years=n),
        }[unit]
        day = today + delta if sign > 0 else today - delta
        return _single(day, past=sign < 0)

    def _next_days(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        n = _count(m["n"], self.lang)
        if not n or n > 60:
            return None
        return DateSpan(today + dt.timedelta(1), today + dt.timedelta(n), RANGE)

    def _upcoming(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        n = _count(m["n"] or m["n2"], self.lang)
        if not n:
            return None
        unit = m["unit"][0]
        if unit == "d":
            return _single(today + dt.timedelta(n))
        if unit == "w":
            return _week(monday_of(today) + dt.timedelta(7 * n))
        return _month_span(*_ym(today + relativedelta(months=n)))

    def _weekday_date(self, m: re.Match, today: dt.date, weekday: int, month: int) -> Optional[DateSpan]:
        """An explicit date with its weekday; without a year, the next year where both agree."""
        day = _day(m["d"], self.lang)
        if not day:
            return None
        year = _year(m["y"])
        if year is not None:
            return _single(next_month_day(today, month, day, year))
        first = next_month_day(today, month, day)
        if first is None:
            return None
        for years in range(0, 12):
            try:
                candidate = first.replace(year=first.year + years)
            except ValueError:
                continue
            if candidate.weekday() == weekday:
                return _single(candidate)
        return _single(first)

    def _weekday_day(self, m: re.Match, today: dt.date, weekday: int) -> Optional[DateSpan]:
        """ "jue 15": the next Thursday that falls on a 15th."""
        day = int(m["d"])
        if not 1 <= day <= 31:
            return None
        candidate = next_day_of_month(today, day)
        for _ in range(60):
            if candidate is None:
                return None
            if candidate.weekday() == weekday:
                return _single(candidate)
            candidate = next_day_of_month(candidate + dt.timedelta(1), day)
        return None

    def _range_dm(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        month2 = MONTHS[self.lang][m["mon2"].rstrip(".")] if m.groupdict().get("mon2") else None
        month1 = MONTHS[self.lang][m["mon"].rstrip(".")] if m.groupdict().get("mon") else None
        mon_first = m.groupdict().get("mon1")
        end_month = month2 or month1
        start_month = MONTHS[self.lang][mon_first.rstrip(".")] if mon_first else end_month
        return self._range(today, start_month, _day(m["d1"], self.lang), end_month, _day(m["d2"], self.lang), m["y"])

    def _range_md(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        start_month = MONTHS[self.lang][m["mon"].rstrip(".")]
        end_month = MONTHS[self.lang][m["mon2"].rstrip(".")] if m["mon2"] else start_month
        return self._range(today, start_month, _day(m["d1"], self.lang), end_month, _day(m["d2"], self.lang), m["y"])

    def _range(self, today, month1, day1, month2, day2, year_text) -> Optional[DateSpan]:  # noqa: ANN001
        if not (month1 and month2 and day1 and day2):
            return None
        first = next_month_day(today, month1, day1, _year(year_text))
        if first is None:
            return None
        last = next_month_day(first, month2, day2)
        if last is None or last < first:
            return None
        return DateSpan(first, last, RANGE)

    def _for_days(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        day = _day(m["d"] or m["d_"], self.lang)
        month = MONTHS[self.lang][(m["mon"] or m["mon_"]).rstrip(".")]
        n = _count(m["n"] or m["n_"], self.lang)
        first = next_month_day(today, month, day or 0)
        if first is None or not n:
            return None
        return DateSpan(first, first + dt.timedelta(n - 1), RANGE)

    def _nth_weekday_of_month(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        month = MONTHS[self.lang][m["mon"].rstrip(".")]
        weekday = WEEKDAYS[self.lang][m["wd"].rstrip(".")]
        year = _year(m["y"])
        years = [year] if year else [today.year, today.year + 1]
        nth = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}.get(m["nth"])
        for y in years:
            days = [dt.date(y, month, d) for d in range(1, calendar.monthrange(y, month)[1] + 1)]
            matching = [d for d in days if d.weekday() == weekday]
            candidate = matching[-1] if nth is None else matching[nth - 1]
            if year or candidate >= today:
                return _single(candidate)
        return None

    def _nth_day_of_month(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        month = MONTHS[self.lang][m["mon"].rstrip(".")]
        nth = _day(m["nth"], self.lang) if m["nth"] else 1
        if not nth:
            return None
        year = _year(m["y"])
        for y in [year] if year else [today.year, today.year + 1]:
            length = calendar.monthrange(y, month)[1]
            day = length - nth + 1 if m["last"] else nth
            if not 1 <= day <= length:
                return None
            candidate = dt.date(y, month, day)
            if year or candidate >= today:
                return _single(candidate)
        return None

    def _week_part(self, monday: dt.date, part: str) -> DateSpan:
        if part == "end":
            return DateSpan(monday + dt.timedelta(4), monday + dt.timedelta(6), RANGE)
        return DateSpan(monday, monday + dt.timedelta(2), RANGE)

    def _month_part(self, inside: dt.date, first_day: int, last_day: Optional[int]) -> DateSpan:
        last = inside.replace(day=last_day) if last_day else month_end(inside.year, inside.month)
        return DateSpan(inside.replace(day=first_day), last, RANGE)

    def _day_in(self, inside: dt.date, day: Optional[int]) -> Optional[dt.date]:
        if not day:
            return None
        try:
            return inside.replace(day=day)
        except ValueError:
            return None

    def _quincena(self, m: re.Match, today: dt.date) -> Optional[DateSpan]:
        # "quince" alone is a number; only "la quince" or "cuando me paguen la quince" is the payday.
        if m[0].strip().endswith("quince") and not re.match(r"(?:la|cuando|esta|en|pa)", m[0]):
            return None
        return _single(quincena(today))

    # --- matching ---------------------------------------------------------------
    def find(self, folded: str, today: dt.date) -> Iterator[DateSpan]:
        candidates: list[DateSpan] = []
        for rule in self.rules:
            for match in rule.pattern.finditer(folded):
                if not match.group(0).strip():
                    continue
                span = rule.handler(match, today)
                if span is not None:
                    start, end = match.span()
                    while end > start and folded[end - 1] in " ,":
                        end -= 1
                    candidates.append(replace(span, start=start + _lead(match[0]), end=end))
        # Longest match wins; earlier rules break ties; no overlaps.
        chosen: list[DateSpan] = []
        for span in sorted(candidates, key=lambda s: (-(s.end - s.start), s.start)):
            if all(span.end <= other.start or span.start >= other.end for other in chosen):
                chosen.append(span)
        yield from sorted(chosen, key=lambda s: s.start)


_ORDINAL_WORDS_EN = _alternation(
    _ORDINALS_EN[1:] + ["twenty-first", "twenty-second", "twenty-third", "thirtieth", "thirty-first"]
)


def day_num_en() -> str:
    ordinals = _alternation(
        _ORDINALS_EN[1:] + ["twenty-first", "twenty-second", "twenty-third", "thirtieth", "thirty-first"]
    )
    return rf"(?:\d{{1,2}}(?:st|nd|rd|th)?|{ordinals})"


def _lead(text: str) -> int:
    return len(text) - len(text.lstrip())


def _ym(day: dt.date) -> tuple[int, int]:
    return day.year, day.month


_GRAMMARS: dict[str, _Grammar] = {}


def _grammar(lang: str) -> _Grammar:
    lang = "en" if lang == "en" else "es"
    if lang not in _GRAMMARS:
        _GRAMMARS[lang] = _Grammar(lang)
    return _GRAMMARS[lang]


def find_dates(text: str, lang: str, today: dt.date) -> list[DateSpan]:
    """Every date expression in `text`, in order, resolved against `today`.

    Args:
        text: the message as the debtor wrote it.
        lang: "es" or "en"; selects the vocabulary and dd/mm vs mm/dd.
        today: the debtor's local date.

    Returns:
        Non-overlapping spans, with offsets into `text`.
    """
    folded = fold_keep_offsets(text)
    spans = list(_grammar(lang).find(folded, today))
    key = "en" if lang == "en" else "es"
    if _PAST_CONTEXT[key].search(folded) and not _FUTURE_CONTEXT[key].search(folded):
        # "ya pagué el lunes", "paid on monday": the debtor tells when it happened.
        spans = [_in_past(s, today) if s.anchor and not s.past and s.last > today else s for s in spans]
    if not spans:
        # A whole message that is just a short weekday form: "lu", "mx", "vie."
        whole = re.fullmatch(rf"\s*(?:el\s+)?({_grammar(lang).wd_alone})\s*", folded)
        if whole:
            day = next_weekday(today, WEEKDAYS["en" if lang == "en" else "es"][whole.group(1).rstrip(".")])
            spans = [DateSpan(day, day, DAY, whole.start(1), whole.end(1))]
        elif lang == "en":
            month = re.fullmatch(rf"\s*(?:in\s+|during\s+)?({_alternation(MONTHS['en'])})\.?\s*", folded)
            if month:
                year, number = _upcoming_month(today, MONTHS["en"][month.group(1)])
                span = _month_span(year, number)
                spans = [DateSpan(span.first, span.last, MONTH, month.start(1), month.end(1))]
    return spans


_PAST_CONTEXT = {
    "es": re.compile(
        r"\b(?:ya\s+(?:se\s+)?(?:(?:le|les|te|lo|la|los)\s+)?(?:pague|deposite|transferi|abone|liquide|finiquite|mande"
        r"|hice|cubri|salde|pagamos|depositamos)|(?:lo|la)\s+(?:pague|liquide|salde)|liquide|finiquite|transferi"
        r"|se\s+pago|fue\s+pagad[oa]|pague\s+(?:el|desde|en)|deposite\s+(?:el|desde|en))\b"
    ),
    "en": re.compile(
        r"\b(?:paid|sent|transferred|deposited|submitted|wired|zelled|mailed|dropped\s+off|made\s+(?:a|the)\s+payment"
        r"|settled|cleared)\b"
    ),
}
_FUTURE_CONTEXT = {
    "es": re.compile(r"\b(?:voy\s+a|vamos\s+a|pagare|depositare|te\s+pago|le\s+pago|les\s+pago|puedo|podria)\b"),
    "en": re.compile(r"\b(?:will|ll|gonna|going\s+to|can|could|plan\s+to|next)\b"),
}


def _in_past(span: DateSpan, today: dt.date) -> DateSpan:
    """The previous occurrence of an unanchored expression ("el lunes" -> last Monday)."""
    step = {"week": relativedelta(weeks=1), "month": relativedelta(months=1), "year": relativedelta(years=1)}
    first, last = span.first, span.last
    for _ in range(13):
        if last <= today:
            break
        first, last = first - step[span.anchor], last - step[span.anchor]
        if span.grain == MONTH:  # keep whole months whole
            last = month_end(first.year, first.month)
    return replace(span, first=first, last=last, past=True)


def pick(spans: list[DateSpan]) -> Optional[DateSpan]:
    """The date a message commits to, when it names several.

    Future dates win over past ones; a specific day over a week or month
    ("short this month but I'll pay on the 28th" means the 28th); among
    those, the latest (the deadline: "hoy no puedo, mañana te pago" means
    tomorrow); among past dates the most recent.
    """
    candidates = [s for s in spans if not s.past] or spans
    days = [s for s in candidates if s.grain == DAY]
    return max(days or candidates, key=lambda s: s.last) if candidates else None


def resolve_span(text: str, lang: str, today: dt.date) -> Optional[DateSpan]:
    """The date expression `text` commits to, or None when it names no date."""
    return pick(find_dates(text, lang, today))


def resolve_date(text: str, lang: str, today: dt.date) -> Optional[dt.date]:
    """The contract's date for `text`: a day, or a range's last day; None if none."""
    span = resolve_span(text, lang, today)
    return span.value if span else None
