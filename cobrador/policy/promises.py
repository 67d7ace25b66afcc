"""Whether a promise to pay can be accepted: amount and date against the rules."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Optional

AMOUNT_NOT_POSITIVE = "amount_not_positive"
AMOUNT_ABOVE_BALANCE = "amount_above_balance"
DATE_IN_PAST = "date_in_past"
BEYOND_HORIZON = "beyond_horizon"

# In the order they are checked: the debtor hears about the first one only.
REASONS = (AMOUNT_NOT_POSITIVE, AMOUNT_ABOVE_BALANCE, DATE_IN_PAST, BEYOND_HORIZON)


def check_promise(amount: Decimal, day: date, today: date, balance: Decimal, horizon_days: int) -> Optional[str]:
    """The reason a promise to pay cannot be accepted, or None if it can.

    A partial promise is fine; paying today is fine; the last acceptable day
    is `today + horizon_days`.

    Args:
        amount: what the debtor promises to pay.
        day: the day they promise to pay it.
        today: the debtor's local date.
        balance: what they owe on the account.
        horizon_days: how many days ahead a promise may fall (portfolio setting).

    Returns:
        None when acceptable, else the first failing reason among
        `AMOUNT_NOT_POSITIVE`, `AMOUNT_ABOVE_BALANCE`, `DATE_IN_PAST` and
        `BEYOND_HORIZON`.
    """
    if amount <= 0:
        return AMOUNT_NOT_POSITIVE
    if amount > balance:
        return AMOUNT_ABOVE_BALANCE
    if day < today:
        return DATE_IN_PAST
    if day > today + timedelta(days=horizon_days):
        return BEYOND_HORIZON
    return None
