"""Splitting a balance into instalments that sum to it exactly."""

from decimal import Decimal

import pytest

from cobrador.policy.plans import split_evenly


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [
        ("1000.00", 1, ["1000.00"]),
        ("1000.00", 2, ["500.00", "500.00"]),
        ("1000.00", 3, ["333.33", "333.33", "333.34"]),
        ("100.00", 3, ["33.33", "33.33", "33.34"]),
        ("9870.25", 4, ["2467.56", "2467.56", "2467.56", "2467.57"]),
        ("0.03", 3, ["0.01", "0.01", "0.01"]),
        ("0.05", 2, ["0.02", "0.03"]),
        ("1375.40", 3, ["458.46", "458.46", "458.48"]),
        ("4850.50", 6, ["808.41", "808.41", "808.41", "808.41", "808.41", "808.45"]),
        ("17450.00", 12, ["1454.16"] * 11 + ["1454.24"]),
    ],
)
def test_split_sums_to_total_with_cents_on_the_last(total: str, count: int, expected: list[str]) -> None:
    amounts = split_evenly(Decimal(total), count)
    assert [str(a) for a in amounts] == expected
    assert sum(amounts) == Decimal(total)


@pytest.mark.parametrize(
    ("total", "count"),
    [("100.00", 0), ("0.00", 2), ("-5.00", 2), ("0.02", 3), ("10.005", 2)],
)
def test_impossible_splits_are_refused(total: str, count: int) -> None:
    with pytest.raises(ValueError):
        split_evenly(Decimal(total), count)
