"""Payment-plan options: what is offered, and that it always fits the policy."""

import math
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, Optional

import pytest

from cobrador.policy.plan_options import (
    BIWEEKLY,
    INSTALLMENTS,
    LUMP_SUM_DISCOUNT,
    MONTHLY,
    WEEKLY,
    PlanOption,
    PlanPolicy,
    fits_policy,
    lump_sum_discount,
    plan_options,
    schedule,
)
from cobrador.policy.plans import split_evenly

TODAY = date(2026, 11, 16)
NEXT_WEEK = date(2026, 11, 23)

FULL = PlanPolicy(12, Decimal("200.00"), (WEEKLY, BIWEEKLY, MONTHLY), Decimal("10"))
NO_DISCOUNT = PlanPolicy(6, Decimal("500.00"), (BIWEEKLY, MONTHLY))
WEEKLY_ONLY = PlanPolicy(8, Decimal("100.00"), (WEEKLY,))
TIGHT = PlanPolicy(4, Decimal("1000.00"), (MONTHLY,), Decimal("5"))
NO_MINIMUM = PlanPolicy(24, Decimal("0"), (MONTHLY, WEEKLY), Decimal("12.5"))
POLICIES = [FULL, NO_DISCOUNT, WEEKLY_ONLY, TIGHT, NO_MINIMUM]

LUMP = ("lump", None, 1)
_PERIODS_PER_YEAR = {WEEKLY: 52, BIWEEKLY: 26, MONTHLY: 12}


def summary(options: list[PlanOption]) -> list[tuple[str, Optional[str], int]]:
    return [("lump" if o.kind == LUMP_SUM_DISCOUNT else "plan", o.frequency, o.count) for o in options]


@pytest.mark.parametrize(
    ("first", "frequency", "count", "expected"),
    [
        (date(2026, 11, 23), WEEKLY, 3, ["2026-11-23", "2026-11-30", "2026-12-07"]),
        (date(2026, 12, 28), WEEKLY, 2, ["2026-12-28", "2027-01-04"]),
        (date(2026, 11, 23), BIWEEKLY, 3, ["2026-11-23", "2026-12-07", "2026-12-21"]),
        (date(2026, 2, 20), BIWEEKLY, 2, ["2026-02-20", "2026-03-06"]),
        (date(2026, 11, 23), MONTHLY, 3, ["2026-11-23", "2026-12-23", "2027-01-23"]),
        (date(2027, 1, 31), MONTHLY, 4, ["2027-01-31", "2027-02-28", "2027-03-31", "2027-04-30"]),
        (date(2028, 1, 31), MONTHLY, 2, ["2028-01-31", "2028-02-29"]),
        (date(2026, 8, 31), MONTHLY, 3, ["2026-08-31", "2026-09-30", "2026-10-31"]),
        (date(2026, 11, 30), MONTHLY, 4, ["2026-11-30", "2026-12-30", "2027-01-30", "2027-02-28"]),
        (date(2026, 11, 23), MONTHLY, 1, ["2026-11-23"]),
        (date(2026, 11, 23), WEEKLY, 0, []),
    ],
)
def test_schedule(first: date, frequency: str, count: int, expected: list[str]) -> None:
    assert [d.isoformat() for d in schedule(first, frequency, count)] == expected


@pytest.mark.parametrize(("frequency", "count"), [("daily", 3), ("", 1), (MONTHLY, -1)])
def test_schedule_refuses_unknown_frequencies_and_negative_counts(frequency: str, count: int) -> None:
    with pytest.raises(ValueError):
        schedule(TODAY, frequency, count)


@pytest.mark.parametrize(
    ("balance", "policy", "said", "expected"),
    [
        # Nothing said: the frequency closest to monthly, 3 and 6 instalments, clipped.
        ("4850.50", FULL, {}, [LUMP, ("plan", MONTHLY, 3), ("plan", MONTHLY, 6)]),
        ("4850.50", NO_DISCOUNT, {}, [("plan", MONTHLY, 2), ("plan", MONTHLY, 3), ("plan", MONTHLY, 6)]),
        ("4850.50", WEEKLY_ONLY, {}, [("plan", WEEKLY, 2), ("plan", WEEKLY, 3), ("plan", WEEKLY, 6)]),
        ("4850.50", TIGHT, {}, [LUMP, ("plan", MONTHLY, 3), ("plan", MONTHLY, 4)]),
        ("2500.00", TIGHT, {}, [LUMP, ("plan", MONTHLY, 2)]),
        ("1200.00", NO_DISCOUNT, {}, [("plan", BIWEEKLY, 2), ("plan", MONTHLY, 2)]),
        # What they can afford per period: centred on ceil(balance / affordable).
        (
            "4850.50",
            NO_DISCOUNT,
            {"affordable": "1000", "frequency": MONTHLY},
            [("plan", MONTHLY, 5), ("plan", MONTHLY, 6)],
        ),
        (
            "6000.00",
            FULL,
            {"affordable": "1000", "frequency": BIWEEKLY},
            [LUMP, ("plan", BIWEEKLY, 6), ("plan", BIWEEKLY, 7)],
        ),
        ("6000.00", FULL, {"affordable": "1000"}, [LUMP, ("plan", MONTHLY, 6), ("plan", MONTHLY, 7)]),
        (
            "6000.00",
            FULL,
            {"affordable": "999.99", "frequency": MONTHLY},
            [LUMP, ("plan", MONTHLY, 7), ("plan", MONTHLY, 8)],
        ),
        # ... and the same rhythm at another allowed frequency.
        (
            "6000.00",
            NO_DISCOUNT,
            {"affordable": "2500", "frequency": MONTHLY},
            [("plan", MONTHLY, 3), ("plan", MONTHLY, 4), ("plan", BIWEEKLY, 6)],
        ),
        # 500 a week is 26,000 a year: 7 fortnights or 3 months for 6,500 (13 weeks exceeds the policy).
        (
            "6500.00",
            FULL,
            {"affordable": "500", "frequency": WEEKLY},
            [LUMP, ("plan", MONTHLY, 3), ("plan", BIWEEKLY, 7)],
        ),
        # Weekly is not allowed: 300 a week becomes 1,300 a month.
        (
            "4850.50",
            NO_DISCOUNT,
            {"affordable": "300", "frequency": WEEKLY},
            [("plan", MONTHLY, 4), ("plan", MONTHLY, 5)],
        ),
        # They can pay it all in one period: still a plan of two.
        (
            "6000.00",
            NO_DISCOUNT,
            {"affordable": "10000", "frequency": MONTHLY},
            [("plan", BIWEEKLY, 2), ("plan", MONTHLY, 2), ("plan", MONTHLY, 3)],
        ),
        # So little that every count exceeds the policy: hardship, even with a discount on offer.
        ("4850.50", NO_DISCOUNT, {"affordable": "100", "frequency": MONTHLY}, []),
        ("20000.00", FULL, {"affordable": "150", "frequency": WEEKLY}, []),
        ("4850.50", FULL, {"affordable": "0", "frequency": MONTHLY}, []),
        # A requested count or frequency is honoured when the policy allows it.
        (
            "4850.50",
            NO_DISCOUNT,
            {"installments": 4},
            [("plan", MONTHLY, 3), ("plan", MONTHLY, 4), ("plan", MONTHLY, 6)],
        ),
        (
            "4850.50",
            FULL,
            {"installments": 4, "frequency": BIWEEKLY},
            [LUMP, ("plan", BIWEEKLY, 3), ("plan", BIWEEKLY, 4)],
        ),
        ("4850.50", FULL, {"installments": 10}, [LUMP, ("plan", MONTHLY, 3), ("plan", MONTHLY, 10)]),
        ("4850.50", FULL, {"frequency": WEEKLY}, [LUMP, ("plan", WEEKLY, 3), ("plan", WEEKLY, 6)]),
        ("4850.50", FULL, {"frequency": BIWEEKLY}, [LUMP, ("plan", BIWEEKLY, 3), ("plan", BIWEEKLY, 6)]),
        # ... and clipped or replaced when it does not.
        ("4850.50", FULL, {"installments": 24}, [LUMP, ("plan", MONTHLY, 3), ("plan", MONTHLY, 12)]),
        (
            "4850.50",
            NO_DISCOUNT,
            {"installments": 24},
            [("plan", MONTHLY, 3), ("plan", MONTHLY, 5), ("plan", MONTHLY, 6)],
        ),
        (
            "4850.50",
            NO_DISCOUNT,
            {"frequency": WEEKLY},
            [("plan", MONTHLY, 2), ("plan", MONTHLY, 3), ("plan", MONTHLY, 6)],
        ),
        ("4850.50", TIGHT, {"installments": 1}, [LUMP, ("plan", MONTHLY, 2), ("plan", MONTHLY, 3)]),
        # Nothing fits.
        ("900.00", NO_DISCOUNT, {}, []),
        ("1500.00", TIGHT, {}, []),
        ("0.00", FULL, {}, []),
        ("100.00", replace(FULL, frequencies=()), {}, []),
        ("4850.50", replace(FULL, max_installments=1), {}, []),
    ],
)
def test_plan_options(
    balance: str, policy: PlanPolicy, said: dict[str, Any], expected: list[tuple[str, Optional[str], int]]
) -> None:
    kwargs = {k: Decimal(v) if k == "affordable" else v for k, v in said.items()}
    assert summary(plan_options(Decimal(balance), TODAY, policy, **kwargs)) == expected


def test_options_carry_exact_amounts_and_dates() -> None:
    lump, three, six = plan_options(Decimal("4850.50"), TODAY, FULL)
    assert lump == PlanOption(LUMP_SUM_DISCOUNT, None, (Decimal("4365.45"),), (NEXT_WEEK,), Decimal("485.05"))
    assert three == PlanOption(
        INSTALLMENTS,
        MONTHLY,
        (Decimal("1616.83"), Decimal("1616.83"), Decimal("1616.84")),
        (date(2026, 11, 23), date(2026, 12, 23), date(2027, 1, 23)),
        Decimal("0"),
    )
    assert (three.count, three.installment, three.total) == (3, Decimal("1616.83"), Decimal("4850.50"))
    assert (six.count, six.installment, six.total) == (6, Decimal("808.41"), Decimal("4850.50"))
    assert six.amounts[-1] == Decimal("808.45")
    assert (lump.count, lump.installment, lump.total) == (1, Decimal("4365.45"), Decimal("4365.45"))


def test_first_payment_day_starts_the_schedule_but_not_the_lump_sum() -> None:
    options = plan_options(Decimal("3000.00"), TODAY, FULL, first_payment=date(2027, 1, 31))
    lump, three, six = options
    assert lump.dates == (NEXT_WEEK,)
    assert three.dates == (date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31))
    assert six.dates[-1] == date(2027, 6, 30)
    assert plan_options(Decimal("3000.00"), TODAY, FULL, first_payment=TODAY)[1].dates[0] == TODAY


@pytest.mark.parametrize(
    ("balance", "pct", "discount"),
    [
        ("4850.50", "10", "485.05"),
        ("1234.55", "10", "123.46"),  # 123.455 rounds half up
        ("1234.45", "10", "123.45"),  # 123.445 rounds half up
        ("100.00", "12.5", "12.50"),
        ("0.10", "5", "0.01"),  # 0.005 rounds half up
        ("0.09", "5", "0.00"),
        ("17450.00", "33.33", "5816.09"),
    ],
)
def test_lump_sum_discount_rounds_half_up(balance: str, pct: str, discount: str) -> None:
    assert str(lump_sum_discount(Decimal(balance), Decimal(pct))) == discount


@pytest.mark.parametrize(
    ("balance", "kwargs"),
    [
        (Decimal("100.005"), {}),
        (Decimal("4850.50"), {"first_payment": TODAY - timedelta(days=1)}),
        (Decimal("4850.50"), {"frequency": "daily"}),
    ],
)
def test_invalid_requests_are_refused(balance: Decimal, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        plan_options(balance, TODAY, FULL, **kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frequencies": ("daily",)},
        {"min_installment": Decimal("-1")},
        {"discount_pct": Decimal("0")},
        {"discount_pct": Decimal("100")},
        {"discount_pct": Decimal("-5")},
    ],
)
def test_invalid_policies_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        replace(FULL, **kwargs)


def _plan(balance: str, frequency: str, count: int, first: date = NEXT_WEEK) -> PlanOption:
    amounts = tuple(split_evenly(Decimal(balance), count))
    return PlanOption(INSTALLMENTS, frequency, amounts, tuple(schedule(first, frequency, count)), Decimal("0"))


GOOD = _plan("4850.50", MONTHLY, 3)


@pytest.mark.parametrize(
    ("option", "balance", "policy", "fits"),
    [
        (GOOD, "4850.50", FULL, True),
        (_plan("4850.50", WEEKLY, 12), "4850.50", FULL, True),
        (_plan("4850.50", BIWEEKLY, 2, date(2027, 1, 31)), "4850.50", FULL, True),
        (
            PlanOption(LUMP_SUM_DISCOUNT, None, (Decimal("4365.45"),), (NEXT_WEEK,), Decimal("485.05")),
            "4850.50",
            FULL,
            True,
        ),
        # Not the balance, or not an even split.
        (GOOD, "4850.51", FULL, False),
        (replace(GOOD, amounts=(Decimal("1616.84"), Decimal("1616.83"), Decimal("1616.83"))), "4850.50", FULL, False),
        (replace(GOOD, amounts=(Decimal("1000.00"), Decimal("1000.00"), Decimal("2850.50"))), "4850.50", FULL, False),
        # Outside the policy.
        (_plan("4850.50", WEEKLY, 3), "4850.50", NO_DISCOUNT, False),
        (_plan("4850.50", MONTHLY, 13), "4850.50", FULL, False),
        (_plan("4850.50", MONTHLY, 7), "4850.50", NO_DISCOUNT, False),
        (_plan("4850.50", MONTHLY, 1), "4850.50", FULL, False),
        (_plan("1000.00", MONTHLY, 6), "1000.00", FULL, False),  # 166.66 < 200
        (_plan("1200.00", MONTHLY, 6), "1200.00", FULL, True),  # exactly 200
        (replace(GOOD, discount=Decimal("10.00")), "4850.50", FULL, False),
        (replace(GOOD, kind="other"), "4850.50", FULL, False),
        (replace(GOOD, frequency=None), "4850.50", FULL, False),
        # Dates that do not follow the schedule, or do not match the amounts.
        (replace(GOOD, dates=(NEXT_WEEK, date(2026, 12, 21), date(2027, 1, 23))), "4850.50", FULL, False),
        (replace(GOOD, dates=(NEXT_WEEK, date(2026, 12, 23))), "4850.50", FULL, False),
        # Lump sums: only with a discount, and exactly it.
        (
            PlanOption(LUMP_SUM_DISCOUNT, None, (Decimal("4365.45"),), (NEXT_WEEK,), Decimal("485.05")),
            "4850.50",
            NO_DISCOUNT,
            False,
        ),
        (
            PlanOption(LUMP_SUM_DISCOUNT, None, (Decimal("4000.00"),), (NEXT_WEEK,), Decimal("850.50")),
            "4850.50",
            FULL,
            False,
        ),
        (
            PlanOption(LUMP_SUM_DISCOUNT, None, (Decimal("4365.44"),), (NEXT_WEEK,), Decimal("485.05")),
            "4850.50",
            FULL,
            False,
        ),
        (
            PlanOption(LUMP_SUM_DISCOUNT, MONTHLY, (Decimal("4365.45"),), (NEXT_WEEK,), Decimal("485.05")),
            "4850.50",
            FULL,
            False,
        ),
        (PlanOption(LUMP_SUM_DISCOUNT, None, (), (), Decimal("485.05")), "4850.50", FULL, False),
    ],
)
def test_fits_policy(option: PlanOption, balance: str, policy: PlanPolicy, fits: bool) -> None:
    assert fits_policy(option, Decimal(balance), policy) is fits


# Property-style checks: many balances, policies and requests, deterministic.
BALANCES = [Decimal(cents) / 100 for cents in [1, 99, 40000, 99999, 100000, 120000, 250001, 485050, 999999]] + [
    Decimal((i * 7919 + 13) % 5_000_000 + 1) / 100 for i in range(60)
]
AFFORDABLE = [Decimal(a) for a in ["0.01", "99.99", "150", "333.33", "500", "1000", "2500.50", "10000", "1000000"]]


def _feasible(balance: Decimal, policy: PlanPolicy) -> list[tuple[str, int]]:
    """Every (frequency, count) the policy allows for `balance`, by brute force."""
    pairs = []
    for count in range(2, policy.max_installments + 1):
        if Decimal(count) * Decimal("0.01") > balance:
            continue
        if min(split_evenly(balance, count)) >= policy.min_installment:
            pairs += [(frequency, count) for frequency in policy.frequencies]
    return pairs


def _check_invariants(options: list[PlanOption], balance: Decimal, policy: PlanPolicy, start: date) -> None:
    assert len(options) <= 3
    keys = [(o.kind, o.frequency, o.count) for o in options]
    assert len(set(keys)) == len(keys)
    assert [o.count for o in options] == sorted(o.count for o in options)
    plans = [o for o in options if o.kind == INSTALLMENTS]
    if options:
        assert plans
    for option in options:
        assert fits_policy(option, balance, policy)
        assert len(option.dates) == option.count
        assert all(amount == amount.quantize(Decimal("0.01")) for amount in option.amounts)
    for plan in plans:
        assert plan.total == balance
        assert 2 <= plan.count <= policy.max_installments
        assert plan.frequency in policy.frequencies
        assert all(amount >= policy.min_installment for amount in plan.amounts)
        assert plan.amounts[:-1] == (plan.installment,) * (plan.count - 1)
        assert plan.dates[0] == start
        assert list(plan.dates) == sorted(set(plan.dates))
    lumps = [o for o in options if o.kind == LUMP_SUM_DISCOUNT]
    if policy.discount_pct is not None and options:
        assert options[0] == lumps[0]
        assert lumps[0].total == balance - lumps[0].discount
        assert lumps[0].discount == (balance * policy.discount_pct / 100).quantize(
            Decimal("0.01"), rounding="ROUND_HALF_UP"
        )
        assert lumps[0].dates == (TODAY + timedelta(days=7),)
    else:
        assert not lumps


@pytest.mark.parametrize("policy", POLICIES)
def test_defaults_always_fit_and_offer_two_options_when_possible(policy: PlanPolicy) -> None:
    for balance in BALANCES:
        options = plan_options(balance, TODAY, policy)
        _check_invariants(options, balance, policy, NEXT_WEEK)
        feasible = _feasible(balance, policy)
        plans = [o for o in options if o.kind == INSTALLMENTS]
        assert len(plans) == min(len(feasible), 2 if policy.discount_pct is not None else 3), balance


@pytest.mark.parametrize("policy", POLICIES)
def test_requested_counts_and_frequencies_are_honoured_when_they_fit(policy: PlanPolicy) -> None:
    first = date(2027, 1, 31)
    for balance in BALANCES[::3]:
        feasible = _feasible(balance, policy)
        for frequency in (None, WEEKLY, BIWEEKLY, MONTHLY):
            for installments in (None, 1, 2, 3, 4, 5, 7, 9, 12, 18, 24, 36):
                options = plan_options(
                    balance, TODAY, policy, frequency=frequency, installments=installments, first_payment=first
                )
                _check_invariants(options, balance, policy, first)
                assert bool(options) == bool(feasible)
                if frequency is not None and installments is not None and (frequency, installments) in feasible:
                    assert any((o.frequency, o.count) == (frequency, installments) for o in options)
                if frequency in policy.frequencies:
                    at_frequency = [pair for pair in feasible if pair[0] == frequency]
                    room = 2 if policy.discount_pct is not None else 3
                    plans = [o for o in options if o.kind == INSTALLMENTS]
                    assert bool(at_frequency) == any(o.frequency == frequency for o in plans)
                    if len(at_frequency) >= room:
                        assert all(o.frequency == frequency for o in plans)


@pytest.mark.parametrize("policy", POLICIES)
def test_affordable_options_never_ask_more_than_the_debtor_can_pay(policy: PlanPolicy) -> None:
    for balance in BALANCES[::2]:
        feasible = _feasible(balance, policy)
        for affordable in AFFORDABLE:
            for frequency in (WEEKLY, BIWEEKLY, MONTHLY):
                options = plan_options(balance, TODAY, policy, affordable=affordable, frequency=frequency)
                _check_invariants(options, balance, policy, NEXT_WEEK)
                per_year = Fraction(affordable) * _PERIODS_PER_YEAR[frequency]
                reachable = [(g, c) for g, c in feasible if Fraction(balance) / c * _PERIODS_PER_YEAR[g] <= per_year]
                # Hardship ([]) exactly when no allowed plan is within their means.
                assert bool(options) == bool(reachable), (balance, affordable, frequency)
                for option in options:
                    if option.kind == INSTALLMENTS:
                        assert option.frequency is not None
                        assert option.installment * _PERIODS_PER_YEAR[option.frequency] <= per_year
                centre = max(2, math.ceil(Fraction(balance) / Fraction(affordable)))
                if (frequency, centre) in feasible:
                    assert any((o.frequency, o.count) == (frequency, centre) for o in options)
