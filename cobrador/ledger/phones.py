"""Phone numbers as the ledger keys them: E.164, validated with `phonenumbers`."""

from __future__ import annotations

from functools import lru_cache
from typing import Optional

import phonenumbers

WHATSAPP_PREFIX = "whatsapp:"


class InvalidPhone(ValueError):
    """The text is not a valid phone number."""


@lru_cache(maxsize=65536)
def to_e164(raw: str, default_region: Optional[str] = "MX") -> str:
    """Normalises a phone number to E.164.

    Accepts `whatsapp:+52...`, spaces, dashes and national formats (read in
    `default_region`). Mexican mobiles that WhatsApp still reports with the
    old `+52 1` mobile prefix are folded to the 12-digit form Mexico has used
    since 2019, so one person has one key whichever form arrives.

    Args:
        raw: the number as written.
        default_region: ISO country for numbers without a `+` country code.

    Returns:
        The E.164 form, e.g. `+525512345678`.

    Raises:
        InvalidPhone: if the number cannot be parsed or is not valid.
    """
    text = (raw or "").strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX) :].strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("+") and digits.startswith("521") and len(digits) == 13:
        text = "+52" + digits[3:]
    try:
        number = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r}") from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def try_e164(raw: str, default_region: Optional[str] = "MX") -> Optional[str]:
    """Like `to_e164`, but `None` instead of an exception."""
    try:
        return to_e164(raw, default_region)
    except InvalidPhone:
        return None
