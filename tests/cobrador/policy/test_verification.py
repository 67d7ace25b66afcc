"""Right-party verification: the name on record and a partial identifier."""

from typing import Optional, Sequence

import pytest

from cobrador.policy.verification import MAX_ATTEMPTS, identifier_matches, name_matches

MARIA = "María López Hernández"


@pytest.mark.parametrize(
    ("given", "expected", "matches"),
    [
        # First name and one surname, any case, accents or not.
        ("maria lopez", MARIA, True),
        ("María López", MARIA, True),
        ("MARIA HERNANDEZ", MARIA, True),
        ("María López Hernández", MARIA, True),
        ("lopez maria", MARIA, True),
        ("Maria Lopez H.", MARIA, True),
        # Greetings and fillers are ignored.
        ("soy maria lopez", MARIA, True),
        ("Hola, me llamo María López", MARIA, True),
        ("mi nombre es maria hernandez", MARIA, True),
        ("Buenas tardes, soy yo, María López", MARIA, True),
        ("I'm Maria Lopez", MARIA, True),
        ("my name is maria lopez", MARIA, True),
        ("this is María Hernández", MARIA, True),
        # One typo in a word of five letters or more.
        ("marai lopez", MARIA, True),
        ("maria hernandes", MARIA, True),
        ("maria hernadez", MARIA, True),
        ("mariaa lopez", MARIA, True),
        ("maria lopes", MARIA, True),
        ("mara lopez", MARIA, True),
        ("maria lopz", MARIA, True),
        # Two typos in one word are too many.
        ("maria hrenandes", MARIA, False),
        ("maria lpz", MARIA, False),
        ("mro lopez", MARIA, False),
        # Short words must be exact.
        ("ana ruiz", "Ana Ruiz Soto", True),
        ("ama ruiz", "Ana Ruiz Soto", False),
        ("ana ruis", "Ana Ruiz Soto", False),
        # A first name alone, a surname alone, or someone else: no.
        ("maria", MARIA, False),
        ("soy maria", MARIA, False),
        ("lopez hernandez", MARIA, False),
        ("señora lopez", MARIA, False),
        ("juan lopez", MARIA, False),
        ("maria garcia", MARIA, False),
        ("maria maria", MARIA, False),
        ("", MARIA, False),
        ("   ", MARIA, False),
        ("hola", MARIA, False),
        ("1985", MARIA, False),
        # Fillers are not names: "me llamo" must not pass for the surname "Llama".
        ("me llamo juan", "Juan Llama Ruiz", False),
        ("juan llama", "Juan Llama Ruiz", True),
        # Compound names and particles.
        ("juan perez", "Juan Carlos Pérez Gómez", True),
        ("juan gomez", "Juan Carlos Pérez Gómez", True),
        ("juan carlos", "Juan Carlos Pérez Gómez", False),
        ("maria garza", "María de la Garza", True),
        ("maria de la garza", "María de la Garza", True),
        ("maria de la", "María de la Garza", False),
        ("luz del rio", "Luz del Río Salas", True),
        # English names.
        ("John Smith", "John Smith", True),
        ("Hi, this is john smith", "John Smith", True),
        ("john", "John Smith", False),
        ("jon smith", "John Smith", False),
        ("john smiht", "John Smith", True),
        ("O'Brien Patrick", "Patrick O'Brien", True),
        # A record without a surname can never be verified by name.
        ("maria", "María", False),
        ("maria", "", False),
    ],
)
def test_name_matches(given: str, expected: str, matches: bool) -> None:
    assert name_matches(given, expected) is matches


@pytest.mark.parametrize(
    ("given", "last4s", "birth_year", "matches"),
    [
        ("4821", ["4821"], None, True),
        ("termina en 4821", ["4821"], 1985, True),
        ("1985", ["4821"], 1985, True),
        ("nací en 1985", [], 1985, True),
        ("mi cuenta termina 4821 y naci en 1985", ["4821"], 1985, True),
        ("mi cuenta termina 4821 y naci en 1985", ["0000"], 1985, True),
        ("mi cuenta termina 4821 y naci en 1985", ["4821"], 1990, True),
        ("ends in 0042", ["9999", "0042"], None, True),
        ("****4821", ["4821"], None, True),
        ("x4821.", ["4821"], None, True),
        ("15/03/1985", [], 1985, True),
        ("the last four are 4821!", ["4821"], None, True),
        # Wrong digits.
        ("4822", ["4821"], 1985, False),
        ("1986", ["4821"], 1985, False),
        ("482", ["4821"], None, False),
        ("48 21", ["4821"], None, False),
        # Inside a longer number.
        ("54821", ["4821"], None, False),
        ("48210", ["4821"], None, False),
        ("4111111111114821", ["4821"], None, False),
        ("19850", [], 1985, False),
        ("85", [], 1985, False),
        # Nothing to compare or nothing given.
        ("", ["4821"], 1985, False),
        ("   ", ["4821"], 1985, False),
        ("4821", [], None, False),
        ("4821", [""], None, False),
        ("no sé", ["4821"], 1985, False),
    ],
)
def test_identifier_matches(given: str, last4s: Sequence[str], birth_year: Optional[int], matches: bool) -> None:
    assert identifier_matches(given, last4s, birth_year) is matches


def test_three_attempts() -> None:
    assert MAX_ATTEMPTS == 3
