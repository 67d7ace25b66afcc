"""Phone normalisation: every form a number arrives in maps to one E.164 key."""

import pytest

from cobrador.ledger.phones import InvalidPhone, to_e164, try_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+525512345678", "MX", "+525512345678"),
        ("whatsapp:+525512345678", "MX", "+525512345678"),
        ("WhatsApp:+52 55 1234 5678", "MX", "+525512345678"),
        # WhatsApp still reports some Mexican mobiles with the old "1".
        ("whatsapp:+5215512345678", "MX", "+525512345678"),
        ("+52 1 55 1234 5678", "MX", "+525512345678"),
        ("55 1234 5678", "MX", "+525512345678"),
        ("55-1234-5678", "MX", "+525512345678"),
        ("(55) 1234 5678", "MX", "+525512345678"),
        ("+52 81 1234 0001", "MX", "+528112340001"),
        ("664 123 0001", "MX", "+526641230001"),
        ("+1 415 555 2671", "MX", "+14155552671"),
        ("(415) 555-2671", "US", "+14155552671"),
        ("415.555.2671", "US", "+14155552671"),
        ("+14155552671", "US", "+14155552671"),
        ("whatsapp:+14155552671", "US", "+14155552671"),
        (" +1 212 555 0147 ", "US", "+12125550147"),
    ],
)
def test_valid_numbers_normalise_to_e164(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "hola", "12345", "+52 55 1234", "+1 000 000 0000", "whatsapp:", "+999 1234 5678", "5512345678901234"],
)
def test_invalid_numbers_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(raw, "MX")
    assert try_e164(raw, "MX") is None
