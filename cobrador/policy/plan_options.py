"""Payment-plan options to offer a debtor, inside the portfolio's plan policy.

Pure functions on `Decimal` money: the caller passes the balance, the
debtor's local "today", the policy and whatever the debtor said (what they can
afford per period, a number of instalments, a frequency, a first payment day),
and gets back a short list of concrete plans, each with its amounts and dates,
to offer as buttons. Every instalment plan sums exactly to the balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Optional

from dateutil.relativedelta import relativedelta

from cobrador.policy.plans import CENT, split_evenly

WEEKLY = "weekly"
BIWEEKLY = "biweekly"
MONTHLY = "monthly"
FREQUENCIES = (WEEKLY, BIWEEKLY, MONTHLY)

INSTALLMENTS = "installments"
LUMP_SUM_DISCOUNT = "lump_sum_discount"

MIN_INSTALLMENTS = 2
# With nothing said, offer these counts (clipped to what the policy allows).
DEFAULT_COUNTS = (3, 6)
# The first instalment, when the debtor names no day, falls a week from today.
FIRST_PAYMENT_DAYS = 7
# The discounted lump sum must be paid within this many days.
LUMP_SUM_DAYS = 7
# At most this many options are offered (WhatsApp shows up to three buttons).
MAX_OPTIONS = 3

_PERIOD_DAYS = {WEEKLY: 7, BIWEEKLY: 14, MONTHLY: 30}
# Converts a rhythm between frequencies: 500 a week is 26,000 a year, 2,166.67 a month.
_PERIODS_PER_YEAR = {WEEKLY: 52, BIWEEKLY: 26, MONTHLY: 12}
_ZERO = Decimal("0.00")


@dataclass(frozen=True)
class PlanPolicy:
    """What a portfolio allows in a payment plan.

    Attributes:
        max_installments: most instalments a plan may have.
        min_installment: smallest regular instalment allowed.
        frequencies: the allowed frequencies, among `FREQUENCIES`.
        discount_pct: percentage off the balance for paying it all at once
            within `LUMP_SUM_DAYS`; None when the portfolio offers no discount.
    """

    max_installments: int
    min_installment: Decimal
    frequencies: tuple[str, ...]
    discount_pct: Optional[Decimal] = None

    def __post_init__(self) -> None:
        unknown = [f for f in self.frequencies if f not in FREQUENCIES]
        if unknown:
            raise ValueError(f"unknown frequencies: {unknown}")
        if self.min_installment < 0:
            raise ValueError("min_installment must not be negative")
        if self.discount_pct is not None and not Decimal(0) < self.discount_pct < Decimal(100):
            raise ValueError("discount_pct must be between 0 and 100, exclusive")


@dataclass(frozen=True)
class PlanOption:
    """One concrete plan to offer.

    Attributes:
        kind: `INSTALLMENTS` or `LUMP_SUM_DISCOUNT`.
        frequency: how often instalments fall due; None for a lump sum.
        amounts: what is due on each date, in cents.
        dates: the due dates, one per amount.
        discount: what the lump sum takes off the balance; zero for instalments.
    """

    kind: str
    frequency: Optional[str]
    amounts: tuple[Decimal, ...]
    dates: tuple[date, ...]
    discount: Decimal

    @property
    def count(self) -> int:
        """The number of payments."""
        return len(self.amounts)

    @property
    def total(self) -> Decimal:
        """What the debtor pays in all."""
        return sum(self.amounts, _ZERO)

    @property
    def installment(self) -> Decimal:
        """The regular payment (the first one; the last may carry extra cents)."""
        return self.amounts[0]


def schedule(first: date, frequency: str, count: int) -> list[date]:
    """The due dates of `count` instalments starting on `first`.

    Weekly adds 7 days, biweekly 14 days, monthly one calendar month counted
    from `first`, so a plan starting on January 31 falls due on February 28
    (29) and then March 31.

    Args:
        first: the first due date.
        frequency: one of `FREQUENCIES`.
        count: how many dates, not negative.

    Returns:
        `count` dates in increasing order.

    Raises:
        ValueError: for an unknown frequency or a negative count.
    """
    if frequency not in FREQUENCIES:
        raise ValueError(f"unknown frequency: {frequency!r}")
    if count < 0:
        raise ValueError("count must not be negative")
    if frequency == MONTHLY:
        return [first + relativedelta(months=k) for k in range(count)]
    step = _PERIOD_DAYS[frequency]
    return [first + timedelta(days=step * k) for k in range(count)]


def lump_sum_discount(balance: Decimal, discount_pct: Decimal) -> Decimal:
    """The discount for paying `balance` at once: `discount_pct` percent, to the cent (half up).

    Args:
        balance: what the debtor owes.
        discount_pct: the policy's percentage.

    Returns:
        The discount, quantized to cents.
    """
    return (balance * discount_pct / 100).quantize(CENT, rounding=ROUND_HALF_UP)


def _installments_fit(amounts: list[Decimal], count: int, policy: PlanPolicy) -> bool:
    return MIN_INSTALLMENTS <= count <= policy.max_installments and min(amounts) >= policy.min_installment


def _split(balance: Decimal, count: int) -> Optional[list[Decimal]]:
    try:
        return split_evenly(balance, count)
    except ValueError:
        return None


def _max_count(balance: Decimal, policy: PlanPolicy) -> int:
    """The most instalments the policy allows for this balance (0 if fewer than two)."""
    # More instalments only make each one smaller, so the first that fits from the top is the largest.
    for count in range(policy.max_installments, MIN_INSTALLMENTS - 1, -1):
        amounts = _split(balance, count)
        if amounts is not None and _installments_fit(amounts, count, policy):
            return count
    return 0


def _ceil_div(numerator: Decimal, denominator: Decimal) -> int:
    return int((numerator / denominator).to_integral_value(rounding=ROUND_CEILING))


def _by_closeness(frequencies: tuple[str, ...], to: str) -> list[str]:
    return sorted(frequencies, key=lambda f: (abs(_PERIOD_DAYS[f] - _PERIOD_DAYS[to]), _PERIOD_DAYS[f]))


def _around_affordable(
    balance: Decimal, affordable: Decimal, frequency: str, allowed: tuple[str, ...]
) -> list[tuple[str, int]]:
    """Candidates centred on what the debtor can pay per period, in order of preference."""
    centre = max(MIN_INSTALLMENTS, _ceil_div(balance, affordable))
    candidates = [(frequency, centre), (frequency, centre + 1)]
    rhythm = []
    for other in _by_closeness(allowed, frequency):
        if other == frequency:
            continue
        # Same money per year: count = balance / (affordable * periods_per_year[frequency] / periods_per_year[other]).
        count = _ceil_div(balance * _PERIODS_PER_YEAR[other], affordable * _PERIODS_PER_YEAR[frequency])
        rhythm.append((other, max(MIN_INSTALLMENTS, count)))
    return candidates + rhythm + [(other, count + 1) for other, count in rhythm]


def _requested(
    installments: Optional[int], frequency: str, allowed: tuple[str, ...], most: int
) -> list[tuple[str, int]]:
    """Candidates honouring a requested count, else the defaults, in order of preference."""

    def clip(count: int) -> int:
        return min(max(count, MIN_INSTALLMENTS), most)

    candidates: list[tuple[str, int]] = []
    anchor = clip(DEFAULT_COUNTS[0])
    if installments is not None:
        anchor = clip(installments)
        candidates += [(frequency, installments), (frequency, anchor)]
    candidates += [(frequency, clip(count)) for count in DEFAULT_COUNTS]
    # Too few distinct defaults (a tight policy): the nearest other counts, then other frequencies.
    nearest = sorted(range(MIN_INSTALLMENTS, most + 1), key=lambda count: (abs(count - anchor), count))
    candidates += [(frequency, count) for count in nearest]
    for other in _by_closeness(allowed, frequency):
        candidates += [(other, clip(count)) for count in DEFAULT_COUNTS]
    return candidates


def _default_frequency(allowed: tuple[str, ...]) -> str:
    return _by_closeness(allowed, MONTHLY)[0]


def plan_options(
    balance: Decimal,
    today: date,
    policy: PlanPolicy,
    affordable: Optional[Decimal] = None,
    frequency: Optional[str] = None,
    installments: Optional[int] = None,
    first_payment: Optional[date] = None,
) -> list[PlanOption]:
    """Two or three distinct plans inside the policy, for the debtor to choose from.

    Instalment plans split the balance with `split_evenly` (exact sum, extra
    cents on the last instalment) and fall due from `first_payment`, or a
    week from today, at their frequency. Which counts are offered:

    - `affordable` given (per period of `frequency`, or of the default
      frequency when none is said): count = ceil(balance / affordable) at that
      frequency, the next count up, and the same money per year at the other
      allowed frequencies. Nothing is offered above what they can afford.
    - else a requested `installments` and/or `frequency` is honoured when the
      policy allows it (a count beyond the policy is clipped to its limit),
      completed with the defaults.
    - else the defaults: 3 and 6 instalments at the allowed frequency closest
      to monthly, clipped to the policy.

    When the policy has a discount, the lump sum (balance minus the discount,
    due within `LUMP_SUM_DAYS`) is offered too, and then two instalment plans
    at most. Options are sorted by number of payments, so the lump sum comes
    first; equal counts put the shorter period first.

    Args:
        balance: what the debtor owes, positive, in cents.
        today: the debtor's local date.
        policy: the portfolio's plan policy.
        affordable: what the debtor says they can pay per period.
        frequency: the frequency the debtor asked for or paid `affordable` at.
        installments: the number of instalments the debtor asked for.
        first_payment: the day the debtor wants to start paying.

    Returns:
        The options, or [] when no instalment plan fits (no allowed frequency,
        a balance too small for two minimum instalments, or `affordable` so
        low that every count exceeds `max_installments`): the caller escalates
        it as hardship.

    Raises:
        ValueError: if `balance` has sub-cent digits, `first_payment` is
            before `today`, or `frequency` is unknown.
    """
    if balance != balance.quantize(CENT):
        raise ValueError("balance must be in cents")
    if first_payment is not None and first_payment < today:
        raise ValueError("first_payment must not be before today")
    if frequency is not None and frequency not in FREQUENCIES:
        raise ValueError(f"unknown frequency: {frequency!r}")
    allowed = policy.frequencies
    if balance <= 0 or not allowed or (affordable is not None and affordable <= 0):
        return []
    most = _max_count(balance, policy)
    if most < MIN_INSTALLMENTS:
        return []

    if affordable is not None:
        candidates = _around_affordable(balance, affordable, frequency or _default_frequency(allowed), allowed)
    else:
        chosen_frequency = frequency if frequency in allowed else _default_frequency(allowed)
        candidates = _requested(installments, chosen_frequency, allowed, most)

    limit = MAX_OPTIONS - (1 if policy.discount_pct is not None else 0)
    start = first_payment or today + timedelta(days=FIRST_PAYMENT_DAYS)
    options: list[PlanOption] = []
    seen: set[tuple[str, int]] = set()
    for candidate_frequency, count in candidates:
        if len(options) == limit:
            break
        if candidate_frequency not in allowed or (candidate_frequency, count) in seen:
            continue
        amounts = _split(balance, count)
        if amounts is None or not _installments_fit(amounts, count, policy):
            continue
        seen.add((candidate_frequency, count))
        dates = schedule(start, candidate_frequency, count)
        options.append(PlanOption(INSTALLMENTS, candidate_frequency, tuple(amounts), tuple(dates), _ZERO))
    if not options:
        return []

    if policy.discount_pct is not None:
        discount = lump_sum_discount(balance, policy.discount_pct)
        lump_date = today + timedelta(days=LUMP_SUM_DAYS)
        options.append(PlanOption(LUMP_SUM_DISCOUNT, None, (balance - discount,), (lump_date,), discount))
    return sorted(options, key=lambda o: (o.count, _PERIOD_DAYS.get(o.frequency or "", 0)))


def fits_policy(option: PlanOption, balance: Decimal, policy: PlanPolicy) -> bool:
    """Whether `option` is a plan the policy allows for `balance`.

    An instalment plan fits when its frequency is allowed, it has 2 to
    `max_installments` payments, its amounts are exactly `split_evenly(balance,
    count)` with none below `min_installment`, no discount, and its dates
    follow `schedule` from the first one. A lump sum fits when the policy
    offers a discount and the option is one payment of the balance minus
    exactly that discount.

    Args:
        option: the plan to check.
        balance: what the debtor owes.
        policy: the portfolio's plan policy.

    Returns:
        True when the plan is allowed.
    """
    if len(option.amounts) != len(option.dates) or not option.amounts:
        return False
    if option.kind == LUMP_SUM_DISCOUNT:
        if policy.discount_pct is None or option.frequency is not None or option.count != 1:
            return False
        discount = lump_sum_discount(balance, policy.discount_pct)
        return option.discount == discount and option.amounts[0] == balance - discount
    frequency = option.frequency
    if option.kind != INSTALLMENTS or frequency is None or frequency not in policy.frequencies:
        return False
    if option.discount != 0:
        return False
    if not MIN_INSTALLMENTS <= option.count <= policy.max_installments:
        return False
    amounts = _split(balance, option.count)
    if amounts is None or option.amounts != tuple(amounts) or not _installments_fit(amounts, option.count, policy):
        return False
    return option.dates == tuple(schedule(option.dates[0], frequency, option.count))
