"""When the bot may start a contact: standing blocks, the local window, the 7-in-7 cap.

Every `now` is an explicit UTC instant (the injected clock); the comment on
each row gives the debtor's local time, so a zone or DST mistake fails a row.
US DST in 2026: clocks go forward on 2026-03-08 and back on 2026-11-01.
Mexico City keeps UTC-6 all year; Tijuana follows the US changes (UTC-8/-7).
"""

import dataclasses
import datetime as dt
import itertools
from typing import Any, Optional
from zoneinfo import ZoneInfoNotFoundError

import pytest

from cobrador.policy.contact import (
    ALLOWED,
    BLOCK_REASONS,
    CAP_REACHED,
    CLAIM_PENDING,
    DISPUTED,
    NO_OPT_IN,
    OPEN_ESCALATION,
    OPTED_OUT,
    OUTSIDE_WINDOW,
    PERMANENT_REASONS,
    WRONG_NUMBER,
    ContactRules,
    DebtorState,
    Decision,
    decide,
    in_window,
    next_window_start,
)

MX = ContactRules.from_strings("07:00", "22:00", 7)
US = ContactRules.from_strings("08:00", "21:00", 7)

CDMX = "America/Mexico_City"
TIJUANA = "America/Tijuana"
NEW_YORK = "America/New_York"
LOS_ANGELES = "America/Los_Angeles"

RULES = {"MX": MX, "US": US}


def utc(text: str) -> dt.datetime:
    """A UTC instant from "YYYY-MM-DD HH:MM[:SS]"."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


# A moment well inside the Mexico City window: 2026-07-15 12:00 local.
NOON_CDMX = utc("2026-07-15 18:00")


# --- The contact window -------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "rules", "now", "allowed"),
    [
        # Mexico City, UTC-6 in winter and summer alike (no DST since 2022).
        (CDMX, "MX", "2026-01-15 13:00", True),  # 07:00 local: the start is allowed
        (CDMX, "MX", "2026-01-15 12:59:59", False),  # 06:59:59
        (CDMX, "MX", "2026-01-16 03:59:59", True),  # 21:59:59
        (CDMX, "MX", "2026-01-16 04:00", False),  # 22:00: the end is blocked
        (CDMX, "MX", "2026-07-15 13:00", True),  # 07:00 in summer, still UTC-6
        (CDMX, "MX", "2026-07-15 12:30", False),  # 06:30 (07:30 if it had kept DST)
        (CDMX, "MX", "2026-07-16 03:30", True),  # 21:30 (22:30 if it had kept DST)
        (CDMX, "MX", "2026-07-16 04:00", False),  # 22:00
        (CDMX, "MX", "2026-03-08 13:00", True),  # 07:00 on the US change day: nothing changes here
        (CDMX, "MX", "2026-11-01 12:59", False),  # 06:59 on the US fall-back day
        # Tijuana: Mexican window, US clock changes (UTC-8 winter, UTC-7 summer).
        (TIJUANA, "MX", "2026-01-15 15:00", True),  # 07:00 PST
        (TIJUANA, "MX", "2026-01-15 14:59", False),  # 06:59 PST
        (TIJUANA, "MX", "2026-01-16 05:59", True),  # 21:59 PST
        (TIJUANA, "MX", "2026-01-16 06:00", False),  # 22:00 PST
        (TIJUANA, "MX", "2026-07-15 14:00", True),  # 07:00 PDT
        (TIJUANA, "MX", "2026-07-15 13:59", False),  # 06:59 PDT (07:59 in Mexico City)
        (TIJUANA, "MX", "2026-07-16 05:00", False),  # 22:00 PDT (23:00 in Mexico City)
        (TIJUANA, "MX", "2026-07-16 04:59", True),  # 21:59 PDT
        (TIJUANA, "MX", "2026-03-08 14:00", True),  # 07:00 PDT on the spring-forward day
        (TIJUANA, "MX", "2026-03-08 13:30", False),  # 06:30 PDT
        (TIJUANA, "MX", "2026-11-01 15:00", True),  # 07:00 PST on the fall-back day
        (TIJUANA, "MX", "2026-11-01 14:30", False),  # 06:30 PST (07:30 if still PDT)
        # New York, 08:00-21:00: EST UTC-5, EDT UTC-4.
        (NEW_YORK, "US", "2026-03-07 13:00", True),  # Sat 08:00 EST
        (NEW_YORK, "US", "2026-03-07 12:59", False),  # 07:59 EST
        (NEW_YORK, "US", "2026-03-08 01:59", True),  # Sat 20:59 EST
        (NEW_YORK, "US", "2026-03-08 02:00", False),  # Sat 21:00 EST
        (NEW_YORK, "US", "2026-03-08 12:00", True),  # Sun 08:00 EDT, the spring-forward day
        (NEW_YORK, "US", "2026-03-08 11:59", False),  # Sun 07:59 EDT (06:59 in EST: blocked either way)
        (NEW_YORK, "US", "2026-03-08 12:30", True),  # 08:30 EDT (07:30 if still EST)
        (NEW_YORK, "US", "2026-03-09 00:59", True),  # Sun 20:59 EDT
        (NEW_YORK, "US", "2026-03-09 01:00", False),  # Sun 21:00 EDT (20:00 if still EST)
        (NEW_YORK, "US", "2026-07-15 12:00", True),  # 08:00 EDT
        (NEW_YORK, "US", "2026-10-31 12:00", True),  # Sat 08:00 EDT
        (NEW_YORK, "US", "2026-11-01 00:59", True),  # Sat 20:59 EDT
        (NEW_YORK, "US", "2026-11-01 01:00", False),  # Sat 21:00 EDT
        (NEW_YORK, "US", "2026-11-01 12:00", False),  # Sun 07:00 EST, the fall-back day (08:00 if still EDT)
        (NEW_YORK, "US", "2026-11-01 13:00", True),  # Sun 08:00 EST
        (NEW_YORK, "US", "2026-11-02 01:59", True),  # Sun 20:59 EST
        (NEW_YORK, "US", "2026-11-02 02:00", False),  # Sun 21:00 EST
        # Los Angeles, 08:00-21:00: PST UTC-8, PDT UTC-7.
        (LOS_ANGELES, "US", "2026-03-07 16:00", True),  # 08:00 PST
        (LOS_ANGELES, "US", "2026-03-07 15:59", False),  # 07:59 PST
        (LOS_ANGELES, "US", "2026-03-08 15:00", True),  # 08:00 PDT on the spring-forward day
        (LOS_ANGELES, "US", "2026-03-08 14:59", False),  # 07:59 PDT
        (LOS_ANGELES, "US", "2026-03-09 03:59", True),  # Sun 20:59 PDT
        (LOS_ANGELES, "US", "2026-03-09 04:00", False),  # Sun 21:00 PDT (20:00 if still PST)
        (LOS_ANGELES, "US", "2026-11-01 16:00", True),  # 08:00 PST on the fall-back day
        (LOS_ANGELES, "US", "2026-11-01 15:30", False),  # 07:30 PST (08:30 if still PDT)
        (LOS_ANGELES, "US", "2026-11-02 04:59", True),  # Sun 20:59 PST
        (LOS_ANGELES, "US", "2026-11-02 05:00", False),  # Sun 21:00 PST
        # The same instant is inside one debtor's window and outside another's.
        (NEW_YORK, "US", "2026-07-15 13:30", True),  # 09:30 EDT
        (LOS_ANGELES, "US", "2026-07-15 13:30", False),  # 06:30 PDT
    ],
)
def test_window(zone: str, rules: str, now: str, allowed: bool) -> None:
    decision = decide(utc(now), DebtorState(timezone=zone), RULES[rules])
    assert decision.allowed is allowed
    assert decision.reason == (ALLOWED if allowed else OUTSIDE_WINDOW)
    assert in_window(utc(now), zone, RULES[rules]) is allowed


@pytest.mark.parametrize(
    ("zone", "rules", "now", "next_start"),
    [
        # Before the start: today's start.
        (CDMX, "MX", "2026-07-15 12:00", "2026-07-15 13:00"),  # 06:00 -> 07:00
        (CDMX, "MX", "2026-07-15 06:00", "2026-07-15 13:00"),  # 00:00 -> 07:00
        # At or after the end: tomorrow's start.
        (CDMX, "MX", "2026-07-16 04:00", "2026-07-16 13:00"),  # 22:00 -> 07:00 next day
        (CDMX, "MX", "2026-07-16 05:59", "2026-07-16 13:00"),  # 23:59 -> 07:00 next day
        (CDMX, "MX", "2026-12-31 05:00", "2026-12-31 13:00"),  # 23:00 on Dec 30 -> Dec 31
        (CDMX, "MX", "2027-01-01 04:30", "2027-01-01 13:00"),  # 22:30 on Dec 31 -> Jan 1
        # Tijuana crosses the US changes.
        (TIJUANA, "MX", "2026-03-08 06:00", "2026-03-08 14:00"),  # Sat 22:00 PST -> Sun 07:00 PDT
        (TIJUANA, "MX", "2026-11-01 06:00", "2026-11-01 15:00"),  # Sat 23:00 PDT -> Sun 07:00 PST
        # New York across the changes.
        (NEW_YORK, "US", "2026-03-08 02:00", "2026-03-08 12:00"),  # Sat 21:00 EST -> Sun 08:00 EDT
        (NEW_YORK, "US", "2026-03-08 07:30", "2026-03-08 12:00"),  # Sun 03:30 EDT -> 08:00 EDT
        (NEW_YORK, "US", "2026-11-01 01:00", "2026-11-01 13:00"),  # Sat 21:00 EDT -> Sun 08:00 EST
        (NEW_YORK, "US", "2026-11-01 05:30", "2026-11-01 13:00"),  # Sun 01:30 EDT -> 08:00 EST
        (NEW_YORK, "US", "2026-11-01 06:30", "2026-11-01 13:00"),  # Sun 01:30 EST (repeated hour) -> 08:00 EST
        # Los Angeles across the changes.
        (LOS_ANGELES, "US", "2026-03-08 05:00", "2026-03-08 15:00"),  # Sat 21:00 PST -> Sun 08:00 PDT
        (LOS_ANGELES, "US", "2026-11-01 04:00", "2026-11-01 16:00"),  # Sat 21:00 PDT -> Sun 08:00 PST
    ],
)
def test_outside_window_says_when_it_opens(zone: str, rules: str, now: str, next_start: str) -> None:
    assert decide(utc(now), DebtorState(timezone=zone), RULES[rules]) == Decision(
        allowed=False, reason=OUTSIDE_WINDOW, next_allowed_at=utc(next_start)
    )


# An unusual window starting at 01:30, which New York's fall-back day repeats
# (01:30 EDT = 05:30 UTC, then 01:30 EST = 06:30 UTC).
NIGHT = ContactRules.from_strings("01:30", "05:00", 7)


@pytest.mark.parametrize(
    ("zone", "rules", "now", "next_start"),
    [
        # Exactly at the start: now.
        (CDMX, MX, "2026-07-15 13:00", "2026-07-15 13:00"),
        (NEW_YORK, US, "2026-03-08 12:00", "2026-03-08 12:00"),
        # Inside the window: tomorrow's start.
        (CDMX, MX, "2026-07-15 13:00:01", "2026-07-16 13:00"),
        (CDMX, MX, "2026-07-15 18:00", "2026-07-16 13:00"),
        (NEW_YORK, US, "2026-03-07 20:00", "2026-03-08 12:00"),  # Sat 15:00 EST -> Sun 08:00 EDT
        (NEW_YORK, US, "2026-10-31 20:00", "2026-11-01 13:00"),  # Sat 16:00 EDT -> Sun 08:00 EST
        # Before the start: today's.
        (LOS_ANGELES, US, "2026-07-15 10:00", "2026-07-15 15:00"),  # 03:00 PDT -> 08:00 PDT
        # A start in the repeated hour: the first occurrence not yet passed.
        (NEW_YORK, NIGHT, "2026-11-01 05:10", "2026-11-01 05:30"),  # 01:10 EDT -> 01:30 EDT
        (NEW_YORK, NIGHT, "2026-11-01 06:10", "2026-11-01 06:30"),  # 01:10 EST -> 01:30 EST
        (NEW_YORK, NIGHT, "2026-11-01 05:30", "2026-11-01 05:30"),  # exactly 01:30 EDT: now, not 01:30 EST
        (NEW_YORK, NIGHT, "2026-11-01 05:40", "2026-11-02 06:30"),  # 01:40 EDT is in the window -> tomorrow
    ],
)
def test_next_window_start(zone: str, rules: ContactRules, now: str, next_start: str) -> None:
    result = next_window_start(utc(now), zone, rules)
    assert result == utc(next_start)
    assert result.utcoffset() == dt.timedelta(0)
    assert result >= utc(now)


def test_now_in_another_zone_is_the_same_instant() -> None:
    now = utc("2026-07-15 12:30").astimezone(dt.timezone(dt.timedelta(hours=9)))  # 06:30 in Mexico City
    decision = decide(now, DebtorState(timezone=CDMX), MX)
    assert decision == Decision(allowed=False, reason=OUTSIDE_WINDOW, next_allowed_at=utc("2026-07-15 13:00"))
    assert decision.next_allowed_at is not None and decision.next_allowed_at.utcoffset() == dt.timedelta(0)


# --- The 7-in-7 cap ------------------------------------------------------------


def days_before(now: dt.datetime, *offsets: dt.timedelta) -> tuple[dt.datetime, ...]:
    return tuple(now - offset for offset in offsets)


D = dt.timedelta(days=1)
H = dt.timedelta(hours=1)
S = dt.timedelta(seconds=1)
WEEK = dt.timedelta(days=7)


@pytest.mark.parametrize(
    ("attempts", "reason", "next_allowed_at"),
    [
        # Nothing sent yet, or fewer than 7 in the period.
        ((), ALLOWED, None),
        ((D,), ALLOWED, None),
        ((6 * D, 5 * D, 4 * D, 3 * D, 2 * D, D), ALLOWED, None),  # 6 sent: the 7th is allowed
        # 7 in the period: the 8th waits until the oldest expires.
        ((6 * D, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-16 18:00"),
        ((6 * D + 2 * H, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-16 16:00"),
        ((H, 2 * H, 3 * H, 4 * H, 5 * H, 6 * H, 7 * H), CAP_REACHED, "2026-07-22 13:00"),  # all today; 05:00 -> 07:00
        ((D, H, 6 * D, 3 * D, 2 * D, 5 * D, 4 * D), CAP_REACHED, "2026-07-16 18:00"),  # order does not matter
        # The period's edges: now - 7 days < t <= now.
        ((WEEK, 5 * D, 4 * D, 3 * D, 2 * D, D, H), ALLOWED, None),  # exactly 7 days ago no longer counts
        ((WEEK - S, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-15 18:00:01"),  # still counts
        ((8 * D, WEEK, 5 * D, 4 * D, 3 * D, 2 * D, D), ALLOWED, None),  # older attempts do not count
        ((0 * D, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-17 18:00"),  # one made exactly now counts
        ((-S, 5 * D, 4 * D, 3 * D, 2 * D, D, H), ALLOWED, None),  # a future one (clock skew) does not
        # More than 7 in the period (e.g. rules tightened): wait until the count drops below 7.
        ((6 * D, 5 * D + H, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-17 17:00"),
        ((6 * D, 5 * D + H, 5 * D, 4 * D, 3 * D, 2 * D, D, 2 * H, H), CAP_REACHED, "2026-07-17 18:00"),
        # The oldest expires outside the window: wait for the next start.
        ((6 * D - 10 * H, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-17 13:00"),  # 22:00 -> 07:00
        ((6 * D - 4 * H, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-16 22:00"),  # 16:00, in window
        ((6 * D - 10 * H + S, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-17 03:59:59"),  # 21:59:59
        ((6 * D - 10 * H - S, 5 * D, 4 * D, 3 * D, 2 * D, D, H), CAP_REACHED, "2026-07-17 13:00"),  # 22:00:01 -> 07:00
    ],
)
def test_cap_in_mexico_city(attempts: tuple[dt.timedelta, ...], reason: str, next_allowed_at: Optional[str]) -> None:
    # now = 2026-07-15 12:00 in Mexico City (18:00 UTC); each offset is "how long ago".
    debtor = DebtorState(timezone=CDMX, attempts=days_before(NOON_CDMX, *attempts))
    expected_at = None if next_allowed_at is None else utc(next_allowed_at)
    assert decide(NOON_CDMX, debtor, MX) == Decision(
        allowed=reason == ALLOWED, reason=reason, next_allowed_at=expected_at
    )


@pytest.mark.parametrize(
    ("max_attempts", "period", "count", "reason"),
    [
        # The cap and period are configuration, not constants.
        (3, WEEK, 2, ALLOWED),
        (3, WEEK, 3, CAP_REACHED),
        (1, WEEK, 1, CAP_REACHED),
        (10, WEEK, 7, ALLOWED),
        (7, dt.timedelta(days=3), 7, ALLOWED),  # only the last 3 days count: 3 attempts
        (3, dt.timedelta(days=3), 7, CAP_REACHED),
    ],
)
def test_cap_is_configurable(max_attempts: int, period: dt.timedelta, count: int, reason: str) -> None:
    rules = dataclasses.replace(MX, max_attempts=max_attempts, period=period)
    # One attempt a day, the latest an hour ago.
    attempts = days_before(NOON_CDMX, *(H + n * D for n in range(count)))
    assert decide(NOON_CDMX, DebtorState(timezone=CDMX, attempts=attempts), rules).reason == reason


def test_cap_expiry_pushed_across_the_spring_change_in_new_york() -> None:
    # The oldest attempt, Mon 2026-03-02 20:30 EST, expires Mon 2026-03-09 21:30 EDT: after the
    # window, so the next start is Tue 08:00 EDT (12:00 UTC, not 13:00 as in EST).
    now = utc("2026-03-09 15:00")  # Mon 11:00 EDT
    attempts = (utc("2026-03-03 01:30"),) + tuple(utc(f"2026-03-0{day} 14:00") for day in range(4, 10))
    decision = decide(now, DebtorState(timezone=NEW_YORK, attempts=attempts), US)
    assert decision == Decision(allowed=False, reason=CAP_REACHED, next_allowed_at=utc("2026-03-10 12:00"))


def test_cap_expiry_in_window_across_the_fall_change_in_los_angeles() -> None:
    # The oldest, Sun 2026-10-25 09:00 PDT (16:00 UTC), expires Sun 2026-11-01 16:00 UTC = 08:00 PST:
    # exactly the window start, so no push; 7 days is 168 hours, not "same wall clock".
    now = utc("2026-10-31 20:00")  # Sat 13:00 PDT
    attempts = (utc("2026-10-25 16:00"),) + tuple(utc(f"2026-10-{day} 17:00") for day in range(26, 32))
    decision = decide(now, DebtorState(timezone=LOS_ANGELES, attempts=attempts), US)
    assert decision == Decision(allowed=False, reason=CAP_REACHED, next_allowed_at=utc("2026-11-01 16:00"))


def test_sending_day_after_day_until_the_cap_then_waiting_for_the_oldest() -> None:
    """Simulate the scheduler: try every 2 hours, record each allowed attempt."""
    clock = utc("2026-07-06 13:00")  # Mon 07:00 in Mexico City
    debtor = DebtorState(timezone=CDMX)
    sent: list[dt.datetime] = []
    first_block: Optional[Decision] = None
    while len(sent) < 7 or first_block is None:
        decision = decide(clock, debtor, MX)
        if decision.allowed:
            assert len(sent) < 7, "an 8th attempt in the period was allowed"
            sent.append(clock)
            debtor = dataclasses.replace(debtor, attempts=(*debtor.attempts, clock))
        elif decision.reason == CAP_REACHED:
            first_block = decision
        clock += 2 * H
    # 07:00 to 19:00 on the first day: seven attempts, the 8th (21:00) blocked.
    assert sent == [utc("2026-07-06 13:00") + n * 2 * H for n in range(7)]
    assert first_block == Decision(allowed=False, reason=CAP_REACHED, next_allowed_at=utc("2026-07-13 13:00"))
    # It expires at 07:00, the window start: blocked a second before (window first), allowed then.
    assert decide(utc("2026-07-13 12:59:59"), debtor, MX).reason == OUTSIDE_WINDOW
    assert decide(utc("2026-07-13 13:00"), debtor, MX).reason == ALLOWED
    # After one more attempt at 07:00 the next one waits for the second oldest (09:00).
    debtor = dataclasses.replace(debtor, attempts=(*debtor.attempts, utc("2026-07-13 13:00")))
    assert decide(utc("2026-07-13 14:00"), debtor, MX) == Decision(
        allowed=False, reason=CAP_REACHED, next_allowed_at=utc("2026-07-13 15:00")
    )


# --- Standing blocks and the order of checks -----------------------------------

# Each block as the state that causes it, in the order the checks run.
BLOCKS: list[tuple[str, dict[str, Any]]] = [
    (OPTED_OUT, {"opted_out": True}),
    (WRONG_NUMBER, {"wrong_number": True}),
    (NO_OPT_IN, {"opt_in": False}),
    (DISPUTED, {"disputed": True}),
    (OPEN_ESCALATION, {"open_escalation": True}),
    (CLAIM_PENDING, {"payment_claim_pending": True}),
]

FULL_WEEK = days_before(NOON_CDMX, *(H + n * D for n in range(7)))  # at the cap
NIGHT_CDMX = utc("2026-07-16 05:00")  # 23:00 in Mexico City


@pytest.mark.parametrize(("reason", "state"), BLOCKS, ids=[reason for reason, _ in BLOCKS])
@pytest.mark.parametrize(
    "now", [NOON_CDMX, NIGHT_CDMX, utc("2026-07-15 13:00")], ids=["in_window", "outside_window", "window_start"]
)
@pytest.mark.parametrize("attempts", [(), FULL_WEEK], ids=["no_attempts", "at_cap"])
def test_each_standing_block(
    reason: str, state: dict[str, Any], now: dt.datetime, attempts: tuple[dt.datetime, ...]
) -> None:
    # Takes precedence over the window and the cap, and never lifts by itself.
    debtor = DebtorState(timezone=CDMX, attempts=attempts, **state)
    assert decide(now, debtor, MX) == Decision(allowed=False, reason=reason, next_allowed_at=None)


@pytest.mark.parametrize(
    ("first", "second"),
    list(itertools.combinations(BLOCKS, 2)),
    ids=[f"{a[0]}-over-{b[0]}" for a, b in itertools.combinations(BLOCKS, 2)],
)
def test_earlier_block_wins(first: tuple[str, dict[str, Any]], second: tuple[str, dict[str, Any]]) -> None:
    debtor = DebtorState(timezone=CDMX, **first[1], **second[1])
    assert decide(NOON_CDMX, debtor, MX).reason == first[0]


def test_every_block_at_once_reports_opt_out() -> None:
    state = {key: value for _, block in BLOCKS for key, value in block.items()}
    debtor = DebtorState(timezone=CDMX, attempts=FULL_WEEK, **state)
    assert decide(NIGHT_CDMX, debtor, MX) == Decision(allowed=False, reason=OPTED_OUT, next_allowed_at=None)


@pytest.mark.parametrize(
    ("now", "attempts", "expected"),
    [
        (NIGHT_CDMX, FULL_WEEK, Decision(False, OUTSIDE_WINDOW, utc("2026-07-16 13:00"))),  # window before cap
        (NIGHT_CDMX, (), Decision(False, OUTSIDE_WINDOW, utc("2026-07-16 13:00"))),
        (NOON_CDMX, FULL_WEEK, Decision(False, CAP_REACHED, utc("2026-07-16 17:00"))),  # oldest 09-Jul 11:00 local
        (NOON_CDMX, (), Decision(True, ALLOWED, None)),
    ],
)
def test_window_is_checked_before_cap(now: dt.datetime, attempts: tuple[dt.datetime, ...], expected: Decision) -> None:
    assert decide(now, DebtorState(timezone=CDMX, attempts=attempts), MX) == expected


def test_reason_constants() -> None:
    assert BLOCK_REASONS == (
        OPTED_OUT,
        WRONG_NUMBER,
        NO_OPT_IN,
        DISPUTED,
        OPEN_ESCALATION,
        CLAIM_PENDING,
        OUTSIDE_WINDOW,
        CAP_REACHED,
    )
    assert len(set(BLOCK_REASONS) | {ALLOWED}) == 9
    assert PERMANENT_REASONS == {reason for reason, _ in BLOCKS}


# --- Rules and inputs ----------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "max_attempts", "expected"),
    [
        ("07:00", "22:00", 7, ContactRules(dt.time(7), dt.time(22), 7, WEEK)),
        ("08:00", "21:00", 7, ContactRules(dt.time(8), dt.time(21))),
        ("08:30", "20:45", 3, ContactRules(dt.time(8, 30), dt.time(20, 45), 3)),
        (" 7:00", "21:00 ", 7, ContactRules(dt.time(7), dt.time(21))),
    ],
)
def test_rules_from_strings(start: str, end: str, max_attempts: int, expected: ContactRules) -> None:
    assert ContactRules.from_strings(start, end, max_attempts) == expected


@pytest.mark.parametrize(
    ("start", "end", "max_attempts"),
    [
        ("7", "22:00", 7),
        ("07:00", "24:00", 7),
        ("07:00", "22:00:00", 7),
        ("siete", "22:00", 7),
        ("", "22:00", 7),
        ("22:00", "07:00", 7),  # crossing midnight is not supported
        ("07:00", "07:00", 7),  # empty window
        ("07:00", "22:00", 0),
        ("07:00", "22:00", -1),
    ],
)
def test_bad_rules_are_rejected(start: str, end: str, max_attempts: int) -> None:
    with pytest.raises(ValueError):
        ContactRules.from_strings(start, end, max_attempts)


@pytest.mark.parametrize("period", [dt.timedelta(0), -D])
def test_bad_period_is_rejected(period: dt.timedelta) -> None:
    with pytest.raises(ValueError):
        ContactRules(dt.time(7), dt.time(22), 7, period)


def test_window_times_must_be_naive() -> None:
    with pytest.raises(ValueError):
        ContactRules(dt.time(7, tzinfo=dt.timezone.utc), dt.time(22))


def test_naive_now_is_rejected() -> None:
    with pytest.raises(ValueError, match="now"):
        decide(dt.datetime(2026, 7, 15, 12), DebtorState(timezone=CDMX), MX)
    with pytest.raises(ValueError, match="now"):
        next_window_start(dt.datetime(2026, 7, 15, 12), CDMX, MX)


def test_naive_attempt_is_rejected() -> None:
    debtor = DebtorState(timezone=CDMX, attempts=(dt.datetime(2026, 7, 15, 11),))
    with pytest.raises(ValueError, match="attempt"):
        decide(NOON_CDMX, debtor, MX)


def test_unknown_zone_is_an_error() -> None:
    with pytest.raises(ZoneInfoNotFoundError):
        decide(NOON_CDMX, DebtorState(timezone="America/Atlantis"), MX)


def test_values_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        MX.max_attempts = 8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DebtorState(timezone=CDMX).opted_out = True  # type: ignore[misc]
