"""Payment-plan arithmetic: pure functions on `Decimal` money."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

CENT = Decimal("0.01")


def split_evenly(total: Decimal, count: int) -> list[Decimal]:
    """Splits `total` into `count` instalments that sum to it exactly.

    Every instalment is the total divided by the count, rounded down to the
    cent; the cents left over go on the last one, so the debtor sees equal
    amounts and the plan still sums to the balance.

    Args:
        total: the amount to split, at most two decimals, positive.
        count: number of instalments, at least 1.

    Returns:
        `count` amounts quantized to cents.

    Raises:
        ValueError: if `count` < 1, `total` <= 0 or `total` has sub-cent digits,
            or if `total` is too small to give every instalment at least a cent.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    if total <= 0 or total != total.quantize(CENT):
        raise ValueError("total must be a positive amount in cents")
    base = (total / count).quantize(CENT, rounding=ROUND_DOWN)
    if base <= 0:
        raise ValueError("total is too small for that many instalments")
    amounts = [base] * count
    amounts[-1] = total - base * (count - 1)
    return amounts
