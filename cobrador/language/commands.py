"""Debtor text must never act as a Rasa command."""

from __future__ import annotations

import re

# Rasa treats text starting with "/" as an intent command ("/restart",
# '/promise_to_pay{"amount": 1}'), skipping NLU. Debtors cannot be allowed to
# do that, so the leading slashes are dropped and the rest goes through NLU.
_LEADING_SLASHES = re.compile(r"^\s*/+\s*")


def neutralize_command(text: str) -> str:
    """`text` without leading slashes, so Rasa runs NLU on it.

    Args:
        text: what the debtor wrote.

    Returns:
        The same text, or the text after its leading "/" characters.
    """
    return _LEADING_SLASHES.sub("", text, count=1) if text.lstrip().startswith("/") else text
