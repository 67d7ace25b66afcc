"""Reading debtor messages: amounts, currencies, dates, instalment counts and
frequencies, normalised as ../shared/spec/nlu-contract.md says.

Pure functions: the debtor's local "today" is always passed in, nothing here
reads a clock, a database or the network.
"""

from __future__ import annotations

import datetime as dt
from typing import Any


def extract_entities(text: str, lang: str, today: dt.date) -> dict[str, Any]:
    """The contract's entities of one message, keys only for what it expresses.

    Args:
        text: the message as the debtor wrote it.
        lang: "es" or "en".
        today: the debtor's local date, that dates resolve against.

    Returns:
        A dict with any of `amount` (Decimal), `currency` ("MXN"/"USD"),
        `date` (datetime.date), `installments` (int), `frequency`
        ("weekly"/"biweekly"/"monthly").
    """
    from cobrador.language.amounts import find_amounts, find_currency
    from cobrador.language.counts import find_frequency, find_installments
    from cobrador.language.dates import find_dates, pick

    entities: dict[str, Any] = {}
    spans = find_dates(text, lang, today)
    chosen = pick(spans)
    if chosen is not None:
        entities["date"] = chosen.value
    taken = [(s.start, s.end) for s in spans]
    installments = find_installments(text, lang)
    amounts = [
        a
        for a in find_amounts(text, lang)
        if all(a.end <= start or a.start >= end for start, end in taken) and _plausible_amount(a, text, installments)
    ]
    if amounts:
        best = next((a for a in amounts if a.explicit), amounts[0])
        entities["amount"] = best.value
        if best.currency:
            entities["currency"] = best.currency
    # A currency is only news with an amount ("ni un peso" is an idiom, not MXN).
    currency = entities.get("currency") or find_currency(text, lang)
    if currency and "amount" in entities:
        entities["currency"] = currency
    if installments is not None:
        entities["installments"] = installments
    frequency = find_frequency(text, lang)
    if frequency is not None:
        entities["frequency"] = frequency
    return entities


def _plausible_amount(amount: Any, text: str, installments: Any) -> bool:
    """Whether a number found in the text is a money amount the debtor means.

    Not a number glued to letters ("ps5", "g2g"), not a bare single digit
    ("what's 15 times 8", "7 eleven"), not the instalment count ("split it
    in 3").
    """
    before = text[amount.start - 1] if amount.start > 0 else " "
    after = text[amount.end] if amount.end < len(text) else " "
    if before.isalpha() or after.isalpha():
        return False
    if amount.explicit:
        return True
    return amount.value >= 10 and (installments is None or amount.value != installments)
