"""extract_entities: the contract's entities of whole debtor messages."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from cobrador.language import extract_entities

TODAY = dt.date(2026, 11, 18)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        ("ahorita no tengo pero el 30 le abono 200", "es", {"date": dt.date(2026, 11, 30), "amount": Decimal("200")}),
        ("el 15 deposito 500", "es", {"date": dt.date(2026, 12, 15), "amount": Decimal("500")}),
        ("te pago mil quinientos pesos el viernes", "es",
         {"date": dt.date(2026, 11, 20), "amount": Decimal("1500"), "currency": "MXN"}),
        ("puedo dar 300 cada quincena", "es", {"amount": Decimal("300"), "frequency": "biweekly"}),
        ("en 3 pagos", "es", {"installments": 3}),
        ("can I split it in 3?", "en", {"installments": 3}),
        ("I'll send $200 next friday", "en", {"date": dt.date(2026, 11, 27), "amount": Decimal("200"), "currency": "USD"}),
        ("two grand by the end of the month", "en", {"date": dt.date(2026, 11, 30), "amount": Decimal("2000")}),
        ("nel no tengo ni un peso", "es", {}),
        ("selling my ps5, interested?", "en", {}),
        ("what's 15 times 8", "en", {}),
        ("g2g", "en", {}),
        ("puedo pagar en un 7 eleven?", "es", {}),
        ("cuando pueda", "es", {}),
    ],
)  # fmt: skip
def test_whole_messages(text: str, lang: str, expected: dict[str, Any]) -> None:
    assert extract_entities(text, lang, TODAY) == expected
