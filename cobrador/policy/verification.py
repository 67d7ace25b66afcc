"""Right-party verification: is the person on the chat the debtor?

No debt detail is disclosed before the debtor is verified (CONDUSEF, FDCPA):
they give their name, then a partial identifier (the last 4 digits of an
account or their birth year, never a full number). Pure functions on text.
"""

from __future__ import annotations

import re
from typing import Optional, Sequence

from cobrador.language.text import fold

MAX_ATTEMPTS = 3

# Tokens of at least this many letters may carry one typo.
TYPO_MIN_LENGTH = 5

# Greetings and fillers around a name, folded (no accents, lower case, no apostrophes).
# Removed as whole phrases, so "me llamo Juan" loses "me llamo" but a surname "Llamo" stays.
_FILLERS = (
    "mi nombre es",
    "mi nombre",
    "me llamo",
    "le habla",
    "habla",
    "soy yo",
    "soy",
    "my name is",
    "my names",
    "this is",
    "it is",
    "its",
    "i am",
    "im",
    "hola",
    "buenos dias",
    "buenas tardes",
    "buenas noches",
    "buenas",
    "hello",
    "hi",
    "hey",
    "good morning",
    "good afternoon",
    "good evening",
    "speaking",
    "si",
    "yes",
)
_FILLER_PATTERN = re.compile(r"\b(?:" + "|".join(sorted(map(re.escape, _FILLERS), key=len, reverse=True)) + r")\b")
# Particles of compound surnames ("de la Garza", "del Río") say nothing about the person.
_PARTICLES = frozenset({"de", "del", "la", "las", "los", "y", "e", "van", "von", "da", "di", "du"})
_APOSTROPHES = re.compile(r"['\u2019\u2018`´]")
_NOT_LETTERS = re.compile(r"[^a-z]+")
_FOUR_DIGITS = re.compile(r"(?<![0-9])[0-9]{4}(?![0-9])")


def _tokens(text: str) -> list[str]:
    """Folded words of `text`, fillers and surname particles removed."""
    folded = _APOSTROPHES.sub("", fold(text))
    words = _NOT_LETTERS.sub(" ", folded)
    return [t for t in _FILLER_PATTERN.sub(" ", words).split() if t not in _PARTICLES]


def _name_parts(expected: str) -> tuple[str, list[str]]:
    """The first name and the surnames of a full name on record.

    Mexican names carry two surnames, so with four words or more the last two
    are the surnames ("Juan Carlos Pérez Gómez"); with fewer, everything after
    the first word is.
    """
    words = _NOT_LETTERS.sub(" ", _APOSTROPHES.sub("", fold(expected))).split()
    words = [w for w in words if w not in _PARTICLES]
    if len(words) < 2:
        return (words[0] if words else ""), []
    surnames = words[-2:] if len(words) >= 4 else words[1:]
    return words[0], surnames


def _within_one_edit(a: str, b: str) -> bool:
    """Whether `a` becomes `b` with at most one insertion, deletion, substitution or swap of neighbours."""
    if a == b:
        return True
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diffs) == 1:
            return True
        return (
            len(diffs) == 2 and diffs[1] == diffs[0] + 1 and a[diffs[0]] == b[diffs[1]] and a[diffs[1]] == b[diffs[0]]
        )
    shorter, longer = (a, b) if len(a) < len(b) else (b, a)
    i = 0
    while i < len(shorter) and shorter[i] == longer[i]:
        i += 1
    return shorter[i:] == longer[i + 1 :]


def _same_word(given: str, expected: str) -> bool:
    if given == expected:
        return True
    return len(expected) >= TYPO_MIN_LENGTH and len(given) >= TYPO_MIN_LENGTH - 1 and _within_one_edit(given, expected)


def name_matches(given: str, expected: str) -> bool:
    """Whether the debtor's answer names the person on record.

    Accents, case, punctuation, greetings and fillers ("soy", "me llamo",
    "mi nombre es", "I'm", "my name is", "this is") are ignored. The answer
    must contain the first name on record and at least one of the surnames,
    as separate words; words of 5 letters or more may carry one typo. A first
    name alone is not enough, so "María" does not verify "María López".

    Args:
        given: what the debtor wrote.
        expected: the full name on record, first name first.

    Returns:
        True when the first name and a surname both appear. False for an
        empty answer, or a record without a surname.
    """
    first, surnames = _name_parts(expected)
    if not first or not surnames:
        return False
    words = _tokens(given)
    for i, word in enumerate(words):
        if not _same_word(word, first):
            continue
        others = words[:i] + words[i + 1 :]
        if any(_same_word(other, surname) for other in others for surname in surnames):
            return True
    return False


def identifier_matches(given: str, last4s: Sequence[str], birth_year: Optional[int]) -> bool:
    """Whether the debtor's answer contains one of their partial identifiers.

    Only a group of exactly four digits counts ("termina en 4821",
    "nací en 1985"); four digits inside a longer number do not, so a full
    card or phone number never verifies by accident.

    Args:
        given: what the debtor wrote.
        last4s: the last 4 digits of each of the debtor's accounts.
        birth_year: the debtor's birth year, if on record.

    Returns:
        True when a 4-digit group equals an account's last 4 or the birth year.
    """
    accepted = {s.strip() for s in last4s if len(s.strip()) == 4 and s.strip().isascii() and s.strip().isdigit()}
    if birth_year is not None and 1000 <= birth_year <= 9999:
        accepted.add(str(birth_year))
    if not accepted:
        return False
    return any(group in accepted for group in _FOUR_DIGITS.findall(given))
