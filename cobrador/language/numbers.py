"""Numbers the way debtors type them: digits with either separator, or words.

Mexican debtors write "1,500", "1.500", "1 500", "1.5k", "3 mil", "2mil",
"mil quinientos" or "dos lucas"; US debtors write "1,250.50", "two grand",
"a hundred and fifty" or "one fifty". This module turns all of them into a
`Decimal` and says where in the original message each number is, so callers
(amounts, counts, dates) can reason about its context and exclude overlaps.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Optional

from cobrador.language.text import fold

__all__ = ["NumberSpan", "find_numbers", "fold_aligned", "words_to_number"]


@dataclass(frozen=True)
class NumberSpan:
    """A number found in a message.

    Attributes:
        value: the number ("1,500" -> 1500, "mil quinientos" -> 1500).
        start: offset of its first character in the original message.
        end: offset just past its last character (a "k" or "mil" suffix included).
        words: True when no digit was used ("quinientos"), False for "500" or "3 mil".
    """

    value: Decimal
    start: int
    end: int
    words: bool


def fold_aligned(text: str) -> str:
    """`text` folded character by character, so offsets still match `text`.

    Like `fold` (lower case, no accents) but every character stays where it
    was: whitespace becomes one space each and is not collapsed, and a
    character whose folded form is not one character is kept as it is.

    Args:
        text: any message.

    Returns:
        A string of the same length as `text`.
    """
    chars = []
    for ch in text:
        folded = fold(ch)
        if len(folded) == 1:
            chars.append(folded)
        elif ch.isspace():
            chars.append(" ")
        else:
            chars.append(ch)
    return "".join(chars)


@dataclass(frozen=True)
class _Lexicon:
    """The number words of one language and how they combine.

    Attributes:
        units: 0-9, including the forms of "one" ("un", "una", "uno").
        teens: one-word numbers above 9 that take no unit ("once", "veintidós", "fifteen").
        tens: multiples of ten that may take a unit ("treinta y uno", "forty-two").
        tens_joiner: the word between a ten and its unit ("y"); None when they are
            simply juxtaposed ("forty two", "forty-two").
        hundreds: whole hundreds written as one word ("quinientos").
        terminal_hundreds: hundreds after which the group ends ("cien", not "ciento").
        hundred_words: the word that multiplies by 100 ("hundred").
        scales: multipliers of a whole group ("mil", "thousand", "grand").
        bare_scales: scales that mean one of themselves alone ("mil" = 1000);
            the others need a quantity ("dos millones", "two grand").
        final_scales: scales after which nothing else may follow ("grand", "lucas", "k").
        digit_only_scales: scales only written straight after digits ("2k", "1.5k").
        halves: "half" words that make a group of 0.5 before a scale ("medio millón").
        half_tails: word sequences that add half a scale after it ("mil y medio").
        articles: words meaning one only before a scale or "hundred" ("a grand").
        and_word: the optional word after "hundred" or a scale ("a hundred and fifty").
        not_alone: words that are never a number on their own in running text ("una").
    """

    units: Mapping[str, int]
    teens: Mapping[str, int]
    tens: Mapping[str, int]
    tens_joiner: Optional[str]
    hundreds: Mapping[str, int]
    terminal_hundreds: frozenset[str]
    hundred_words: frozenset[str]
    scales: Mapping[str, int]
    bare_scales: frozenset[str]
    final_scales: frozenset[str]
    digit_only_scales: frozenset[str]
    halves: frozenset[str]
    half_tails: tuple[tuple[str, ...], ...]
    articles: frozenset[str]
    and_word: Optional[str]
    not_alone: frozenset[str]

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every word that can be part of a number phrase."""
        words = set(self.units) | set(self.teens) | set(self.tens) | set(self.hundreds)
        words |= self.hundred_words | set(self.scales) | self.halves | self.articles
        words |= {word for tail in self.half_tails for word in tail}
        words |= {w for w in (self.tens_joiner, self.and_word) if w}
        return frozenset(words)


_SPANISH = _Lexicon(
    units={
        "cero": 0,
        "un": 1,
        "uno": 1,
        "una": 1,
        "dos": 2,
        "tres": 3,
        "cuatro": 4,
        "cinco": 5,
        "sinco": 5,
        "seis": 6,
        "siete": 7,
        "ocho": 8,
        "nueve": 9,
    },
    teens={
        "diez": 10,
        "dies": 10,
        "once": 11,
        "onse": 11,
        "doce": 12,
        "dose": 12,
        "trece": 13,
        "trese": 13,
        "catorce": 14,
        "catorse": 14,
        "quince": 15,
        "quinse": 15,
        "dieciseis": 16,
        "diecisiete": 17,
        "dieciocho": 18,
        "diecinueve": 19,
        "veinte": 20,
        "beinte": 20,
        "veintiun": 21,
        "veintiuno": 21,
        "veintiuna": 21,
        "veintidos": 22,
        "veintitres": 23,
        "veinticuatro": 24,
        "veinticinco": 25,
        "veintiseis": 26,
        "veintisiete": 27,
        "veintiocho": 28,
        "veintinueve": 29,
    },
    tens={
        "treinta": 30,
        "cuarenta": 40,
        "cincuenta": 50,
        "sincuenta": 50,
        "sesenta": 60,
        "setenta": 70,
        "ochenta": 80,
        "noventa": 90,
    },
    tens_joiner="y",
    hundreds={
        "cien": 100,
        "sien": 100,
        "ciento": 100,
        "siento": 100,
        "doscientos": 200,
        "doscientas": 200,
        "dosientos": 200,
        "trescientos": 300,
        "trescientas": 300,
        "tresientos": 300,
        "cuatrocientos": 400,
        "cuatrocientas": 400,
        "quinientos": 500,
        "quinientas": 500,
        "seiscientos": 600,
        "seiscientas": 600,
        "setecientos": 700,
        "setecientas": 700,
        "setesientos": 700,
        "ochocientos": 800,
        "ochocientas": 800,
        "ochosientos": 800,
        "novecientos": 900,
        "novecientas": 900,
        "novesientos": 900,
    },
    terminal_hundreds=frozenset({"cien", "sien"}),
    hundred_words=frozenset(),
    # "luca" is Mexican slang for a thousand pesos: "dos lucas" = 2000.
    scales={"mil": 1000, "luca": 1000, "lucas": 1000, "k": 1000, "millon": 1_000_000, "millones": 1_000_000},
    bare_scales=frozenset({"mil", "millon"}),
    final_scales=frozenset({"luca", "lucas", "k"}),
    digit_only_scales=frozenset({"k"}),
    halves=frozenset({"medio", "media"}),
    half_tails=(("y", "medio"), ("y", "media")),
    articles=frozenset(),
    and_word=None,
    not_alone=frozenset({"un", "una"}),
)

_ENGLISH = _Lexicon(
    units={
        "zero": 0,
        "one": 1,
        "two": 2,
        "three": 3,
        "four": 4,
        "five": 5,
        "six": 6,
        "seven": 7,
        "eight": 8,
        "nine": 9,
    },
    teens={
        "ten": 10,
        "eleven": 11,
        "twelve": 12,
        "thirteen": 13,
        "fourteen": 14,
        "fifteen": 15,
        "sixteen": 16,
        "seventeen": 17,
        "eighteen": 18,
        "nineteen": 19,
    },
    tens={
        "twenty": 20,
        "thirty": 30,
        "forty": 40,
        "fourty": 40,
        "fifty": 50,
        "sixty": 60,
        "seventy": 70,
        "eighty": 80,
        "ninety": 90,
        "ninty": 90,
    },
    tens_joiner=None,
    hundreds={},
    terminal_hundreds=frozenset(),
    hundred_words=frozenset({"hundred"}),
    scales={"thousand": 1000, "grand": 1000, "k": 1000, "million": 1_000_000},
    bare_scales=frozenset({"thousand", "million"}),
    final_scales=frozenset({"grand", "k"}),
    digit_only_scales=frozenset({"k"}),
    halves=frozenset({"half"}),
    half_tails=(("and", "a", "half"),),
    articles=frozenset({"a"}),
    and_word="and",
    not_alone=frozenset({"a"}),
)


def _lexicon(lang: str) -> _Lexicon:
    return _SPANISH if lang.lower().startswith("es") else _ENGLISH


@dataclass(frozen=True)
class _Token:
    """A word or a digit group of the folded message.

    Attributes:
        text: the folded characters ("quinientos", "1,500", "1 500").
        start: offset in the message.
        end: offset just past it.
        value: the digits' value; None for a word or unreadable digits ("15.12.2025").
        digits: True for a digit group.
    """

    text: str
    start: int
    end: int
    value: Optional[Decimal]
    digits: bool


_TOKEN = re.compile(r"(?P<digits>\d+(?:[.,'’]\d+)*)|(?P<word>[a-z]+)")
_SEPARATOR = re.compile(r"[.,'’]")
# "1 500" is 1500, unless the first number is a day ("el 15 500" is a date and an amount).
_SPACE_GROUP_HEAD = re.compile(r"\d{1,3}(?: \d{3})*")
_SPACE_GROUP_TAIL = re.compile(r"\d{3}(?:[.,]\d{1,2})?")
_DAY_BEFORE = re.compile(r"(?:\b(?:el|dia|the|on|del|al)\s*|[/:\-]\s*)$")
_APPROXIMATE_TAIL = re.compile(r"^(?:\s*y\s+(?:pico|tantos|algo|feria)\b|\s*and\s+change\b|-?ish\b|\s+something\b)")


def _digits_value(raw: str, lang: str) -> Optional[Decimal]:
    """The value of a digit group with thousands and/or decimal separators.

    When both "," and "." appear the last one is the decimal separator
    ("1,250.50", "1.250,50"). A single separator followed by exactly three
    digits groups thousands ("1,500"; "1.500" in Spanish only), otherwise it is
    the decimal point ("1500.5", "150,50"). Groups that fit neither reading
    ("15.12.2025") give None.
    """
    raw = raw.replace("’", "'").replace(" ", "")
    seps = _SEPARATOR.findall(raw)
    groups = _SEPARATOR.split(raw)
    if not seps:
        return Decimal(raw)
    decimal_sep: Optional[str] = None
    marks = set(seps) - {"'"}
    if len(marks) == 2:
        decimal_sep = seps[-1]
        if seps.count(decimal_sep) != 1:
            return None
    elif len(marks) == 1 and len(seps) == 1:
        sep = seps[0]
        thousands = len(groups[1]) == 3 and groups[0] != "0" and len(groups[0]) <= 3 and (sep == "," or lang == "es")
        if not thousands:
            decimal_sep = sep
    whole = groups[:-1] if decimal_sep else groups
    if len(whole) > 1 and not (1 <= len(whole[0]) <= 3 and all(len(g) == 3 for g in whole[1:])):
        return None
    number = "".join(whole)
    if decimal_sep:
        number += "." + groups[-1]
    return Decimal(number)


def _tokenize(folded: str, lang: str) -> list[_Token]:
    tokens: list[_Token] = []
    for match in _TOKEN.finditer(folded):
        text, start, end = match.group(), match.start(), match.end()
        if match.group("digits") is None:
            tokens.append(_Token(text, start, end, None, False))
            continue
        previous = tokens[-1] if tokens else None
        if (
            previous is not None
            and previous.digits
            and folded[previous.end : start] == " "
            and _SPACE_GROUP_HEAD.fullmatch(previous.text)
            and _SPACE_GROUP_TAIL.fullmatch(text)
            and not _DAY_BEFORE.search(folded[: previous.start])
            and not re.match(r"[:/]\d", folded[end : end + 2])
        ):
            text, start = previous.text + " " + text, previous.start
            tokens.pop()
        tokens.append(_Token(text, start, end, _digits_value(text, lang), True))
    return tokens


def _tidy(value: Decimal) -> Decimal:
    """Whole numbers without a fractional part ("1.5k" is 1500, not 1500.0)."""
    return Decimal(int(value)) if value == value.to_integral_value() else value


class _PhraseParser:
    """Reads one number phrase from a run of tokens, by the lexicon's grammar."""

    def __init__(self, tokens: Sequence[_Token], lexicon: _Lexicon) -> None:
        self.tokens = tokens
        self.lex = lexicon

    def _word(self, i: int) -> Optional[str]:
        if i < len(self.tokens) and not self.tokens[i].digits:
            return self.tokens[i].text
        return None

    def _below_hundred(self, i: int) -> Optional[tuple[int, int]]:
        """(value, next index) of "veintidós", "treinta y uno", "forty-two", "seven"."""
        lex, word = self.lex, self._word(i)
        if word is None:
            return None
        if word in lex.teens:
            return lex.teens[word], i + 1
        if word in lex.tens:
            unit_at = i + 1
            if lex.tens_joiner is not None:
                if self._word(unit_at) != lex.tens_joiner:
                    return lex.tens[word], i + 1
                unit_at += 1
            unit = self._word(unit_at)
            if unit in lex.units and lex.units[unit] > 0:
                return lex.tens[word] + lex.units[unit], unit_at + 1
            return lex.tens[word], i + 1
        if word in lex.units:
            return lex.units[word], i + 1
        return None

    def _after_hundred(self, value: int, i: int) -> tuple[int, int]:
        """Adds the optional "and fifty" that may follow "hundred"."""
        at = i + 1 if self.lex.and_word and self._word(i) == self.lex.and_word else i
        rest = self._below_hundred(at)
        if rest is None:
            return value, i
        return value + rest[0], rest[1]

    def group(self, i: int) -> Optional[tuple[Decimal, int]]:
        """(value, next index) of a quantity below a thousand, or of a digit group."""
        lex, token = self.lex, self.tokens[i]
        nxt = self._word(i + 1)
        if token.digits:
            if token.value is None:
                return None
            if nxt in lex.hundred_words and token.value == int(token.value) and 1 <= token.value < 100:
                value, end = self._after_hundred(int(token.value) * 100, i + 2)
                return Decimal(value), end
            return token.value, i + 1
        word = token.text
        if word in lex.halves:
            at = i + 2 if nxt in lex.articles else i + 1
            if self._word(at) in lex.scales:
                return Decimal("0.5"), at
            return None
        if word in lex.articles:
            if nxt in lex.hundred_words:
                value, end = self._after_hundred(100, i + 2)
                return Decimal(value), end
            return (Decimal(1), i + 1) if nxt in lex.scales else None
        if word in lex.hundred_words:
            value, end = self._after_hundred(100, i + 1)
            return Decimal(value), end
        if word in lex.hundreds:
            if word in lex.terminal_hundreds:
                return Decimal(lex.hundreds[word]), i + 1
            rest = self._below_hundred(i + 1)
            if rest is None:
                return Decimal(lex.hundreds[word]), i + 1
            return Decimal(lex.hundreds[word] + rest[0]), rest[1]
        below = self._below_hundred(i)
        if below is None:
            return None
        value, end = below
        if self._word(end) in lex.hundred_words and value > 0:
            value, end = self._after_hundred(value * 100, end + 1)
        elif lex.hundred_words and 0 < value < 10 and end == i + 1:
            # Casual prices: "one fifty" is 150, "two twenty-five" is 225.
            rest = self._below_hundred(end)
            if rest is not None and rest[0] >= 10:
                value, end = value * 100 + rest[0], rest[1]
        return Decimal(value), end

    def _tail(self, i: int, tails: tuple[tuple[str, ...], ...]) -> int:
        """Length of the tail among `tails` that starts at `i`, or 0."""
        for tail in tails:
            if tuple(self._word(i + k) for k in range(len(tail))) == tail:
                return len(tail)
        return 0

    def parse(self) -> Optional[Decimal]:
        """The value of the whole run, or None when it is not one number."""
        lex, tokens, n = self.lex, self.tokens, len(self.tokens)
        total, last_scale, i = Decimal(0), None, 0
        while i < n:
            found = self.group(i)
            value, end = found if found else (None, i)
            if value is not None and lex.half_tails and lex.and_word:
                # "two and a half grand"
                skip = self._tail(end, lex.half_tails)
                if skip and self._word(end + skip) in lex.scales:
                    value, end = value + Decimal("0.5"), end + skip
            scale_word = self._word(end)
            if scale_word in lex.scales:
                scale = lex.scales[scale_word]
                if last_scale is not None and scale >= last_scale:
                    return None
                if value is None:
                    if scale_word not in lex.bare_scales:
                        return None
                    value = Decimal(1)
                if scale_word in lex.digit_only_scales and not (end == i + 1 and tokens[i].digits):
                    return None
                total += value * scale
                last_scale, i = scale, end + 1
                skip = self._tail(i, lex.half_tails)
                if skip:
                    total, i = total + Decimal(scale) / 2, i + skip
                if scale_word in lex.final_scales:
                    return total if i == n else None
                if lex.and_word and self._word(i) == lex.and_word and i + 1 < n:
                    i += 1
                continue
            if value is None or end != n:
                return None
            if last_scale is not None:
                if value >= last_scale:
                    return None
                if tokens[i].digits and not re.fullmatch(r"\d{3}", tokens[i].text):
                    return None  # "3 mil 500" is 3500, "2 mil 15" is not 2015
            return total + value
        return total if last_scale is not None else None


def _is_numberish(token: _Token, lexicon: _Lexicon) -> bool:
    return token.value is not None if token.digits else token.text in lexicon.vocabulary


def _gap_ok(folded: str, left: _Token, right: _Token) -> bool:
    """Whether two tokens may belong to one number ("2mil", "twenty-five", "mil quinientos")."""
    gap = folded[left.end : right.start]
    if left.digits and right.digits:
        return False
    if left.digits:
        return gap == "" or gap.isspace()
    if right.digits:
        return gap != "" and gap.isspace()
    return gap == "-" or (gap != "" and gap.isspace())


def words_to_number(text: str, lang: str) -> Optional[Decimal]:
    """The value of a whole phrase of number words.

    Args:
        text: the phrase alone: "mil quinientos", "veintiún", "un millón y medio",
            "two grand", "a hundred and fifty", "one fifty". Surrounding
            punctuation is ignored; digits are not accepted.
        lang: "es" or "en".

    Returns:
        The value ("mil y medio" -> 1500, "medio millón" -> 500000), or None when
        the text is not exactly one number ("mil y pico", "dos tres", "hola").
    """
    lexicon = _lexicon(lang)
    folded = fold_aligned(text).strip(" \t.,;:!?¡¿\"'()")
    tokens = _tokenize(folded, lang)
    if not tokens or any(token.digits for token in tokens):
        return None
    if tokens[0].start != 0 or tokens[-1].end != len(folded):
        return None
    if any(not _gap_ok(folded, a, b) for a, b in zip(tokens, tokens[1:], strict=False)):
        return None
    if any(not _is_numberish(token, lexicon) for token in tokens):
        return None
    value = _PhraseParser(tokens, lexicon).parse()
    return None if value is None else _tidy(value)


def find_numbers(text: str, lang: str) -> list[NumberSpan]:
    """Every number in a message, in order, each the longest phrase it can be.

    Reads digits with either separator ("1,500", "1.500", "1 500", "1.250,50",
    "1,250.50", "1500.5"), scale suffixes ("2k", "1.5k", "3 mil", "2mil",
    "2 lucas", "5 grand") and number words ("mil quinientos", "twenty-five").
    An approximate number ("mil y pico", "500ish") is left out, and so is a
    lone article ("una", "a").

    Args:
        text: the message as the debtor wrote it.
        lang: "es" or "en".

    Returns:
        The numbers, with offsets into `text`.
    """
    lexicon = _lexicon(lang)
    folded = fold_aligned(text)
    tokens = _tokenize(folded, lang)
    spans: list[NumberSpan] = []
    i = 0
    while i < len(tokens):
        if not _is_numberish(tokens[i], lexicon):
            i += 1
            continue
        run_end = i + 1
        while (
            run_end < len(tokens)
            and _is_numberish(tokens[run_end], lexicon)
            and _gap_ok(folded, tokens[run_end - 1], tokens[run_end])
        ):
            run_end += 1
        value, end = None, i
        for end in range(run_end, i, -1):
            phrase = tokens[i:end]
            if len(phrase) == 1 and phrase[0].text in lexicon.not_alone:
                continue
            value = _PhraseParser(phrase, lexicon).parse()
            if value is not None:
                break
        if value is None:
            i += 1
            continue
        first, last = tokens[i], tokens[end - 1]
        if not _APPROXIMATE_TAIL.match(folded[last.end :]):
            words = not any(token.digits for token in tokens[i:end])
            spans.append(NumberSpan(_tidy(value), first.start, last.end, words))
        i = end
    return spans
