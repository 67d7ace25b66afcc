"""Text folding shared by the normalisers: what WhatsApp spelling varies in."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def strip_accents(text: str) -> str:
    """`text` without combining marks: "mañana" -> "manana", "próximo" -> "proximo"."""
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize("NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn"))


def fold(text: str) -> str:
    """Lower case, no accents, one space between words, no outer spaces.

    Character positions are not preserved; use it for matching, never for
    display.
    """
    return _SPACES.sub(" ", strip_accents(text).casefold()).strip()
