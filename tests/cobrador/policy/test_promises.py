"""Which promises to pay are accepted, and the reason for the others."""

from datetime import date
from decimal import Decimal
from typing import Optional

import pytest

from cobrador.policy.promises import (
    AMOUNT_ABOVE_BALANCE,
    AMOUNT_NOT_POSITIVE,
    BEYOND_HORIZON,
    DATE_IN_PAST,
    check_promise,
)

TODAY = date(2026, 11, 16)


@pytest.mark.parametrize(
    ("amount", "day", "balance", "horizon", "expected"),
    [
        # Acceptable: full, partial, today, the last day of the horizon.
        ("1500.00", date(2026, 11, 20), "1500.00", 30, None),
        ("500.00", date(2026, 11, 20), "1500.00", 30, None),
        ("0.01", date(2026, 11, 20), "1500.00", 30, None),
        ("1500.00", TODAY, "1500.00", 30, None),
        ("1500.00", date(2026, 12, 16), "1500.00", 30, None),
        ("100.00", TODAY, "100.00", 0, None),
        # One reason each.
        ("0", date(2026, 11, 20), "1500.00", 30, AMOUNT_NOT_POSITIVE),
        ("0.00", date(2026, 11, 20), "1500.00", 30, AMOUNT_NOT_POSITIVE),
        ("-10.00", date(2026, 11, 20), "1500.00", 30, AMOUNT_NOT_POSITIVE),
        ("1500.01", date(2026, 11, 20), "1500.00", 30, AMOUNT_ABOVE_BALANCE),
        ("9999.00", date(2026, 11, 20), "1500.00", 30, AMOUNT_ABOVE_BALANCE),
        ("500.00", date(2026, 11, 15), "1500.00", 30, DATE_IN_PAST),
        ("500.00", date(2025, 12, 31), "1500.00", 30, DATE_IN_PAST),
        ("500.00", date(2026, 12, 17), "1500.00", 30, BEYOND_HORIZON),
        ("500.00", date(2026, 11, 17), "1500.00", 0, BEYOND_HORIZON),
        ("500.00", date(2027, 6, 1), "1500.00", 30, BEYOND_HORIZON),
        # Several failing: the first in order wins.
        ("0", date(2026, 11, 1), "1500.00", 30, AMOUNT_NOT_POSITIVE),
        ("-1", date(2027, 6, 1), "1500.00", 30, AMOUNT_NOT_POSITIVE),
        ("2000.00", date(2026, 11, 1), "1500.00", 30, AMOUNT_ABOVE_BALANCE),
        ("2000.00", date(2027, 6, 1), "1500.00", 30, AMOUNT_ABOVE_BALANCE),
        ("10.00", date(2026, 11, 1), "0.00", 30, AMOUNT_ABOVE_BALANCE),
    ],
)
def test_check_promise(amount: str, day: date, balance: str, horizon: int, expected: Optional[str]) -> None:
    assert check_promise(Decimal(amount), day, TODAY, Decimal(balance), horizon) == expected


def test_reason_strings_are_stable() -> None:
    assert (AMOUNT_NOT_POSITIVE, AMOUNT_ABOVE_BALANCE, DATE_IN_PAST, BEYOND_HORIZON) == (
        "amount_not_positive",
        "amount_above_balance",
        "date_in_past",
        "beyond_horizon",
    )
