"""Whether the bot may start a contact with a debtor now, and if not, when.

Business-initiated messages (reminders, campaign templates) must respect the
debtor's standing blocks (opt-out, wrong number, missing WhatsApp opt-in, an
open dispute, a human escalation, a payment claim being checked), the contact
window in the debtor's own time zone (CONDUSEF 07:00-22:00, Regulation F
08:00-21:00) and the frequency cap (Regulation F presumption: 7 attempts in
7 days per debt, which we apply to every attempt). Figures are configuration;
this module only applies them. Pure: no database, no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional
from zoneinfo import ZoneInfo

ALLOWED = "allowed"
OPTED_OUT = "opted_out"
WRONG_NUMBER = "wrong_number"
NO_OPT_IN = "no_opt_in"
DISPUTED = "disputed"
OPEN_ESCALATION = "open_escalation"
CLAIM_PENDING = "claim_pending"
OUTSIDE_WINDOW = "outside_window"
CAP_REACHED = "cap_reached"

# In the order they are checked: a debtor blocked for several reasons reports the first.
BLOCK_REASONS = (
    OPTED_OUT,
    WRONG_NUMBER,
    NO_OPT_IN,
    DISPUTED,
    OPEN_ESCALATION,
    CLAIM_PENDING,
    OUTSIDE_WINDOW,
    CAP_REACHED,
)

# Blocks that only a change in the debtor's state lifts, so they carry no "next allowed" time.
PERMANENT_REASONS = frozenset({OPTED_OUT, WRONG_NUMBER, NO_OPT_IN, DISPUTED, OPEN_ESCALATION, CLAIM_PENDING})

_UTC = dt.timezone.utc


@dataclass(frozen=True)
class ContactRules:
    """A portfolio's contact rules.

    Attributes:
        window_start: first local wall-clock time a contact may start (inclusive).
        window_end: local wall-clock time from which contact stops (exclusive).
            Windows that cross midnight are not supported.
        max_attempts: business-initiated attempts allowed per `period`.
        period: the sliding period the cap counts over.
    """

    window_start: dt.time
    window_end: dt.time
    max_attempts: int = 7
    period: dt.timedelta = dt.timedelta(days=7)

    def __post_init__(self) -> None:
        if self.window_start.tzinfo is not None or self.window_end.tzinfo is not None:
            raise ValueError("window times are local wall-clock times and must be naive")
        if self.window_start >= self.window_end:
            raise ValueError(f"window_start {self.window_start} must be before window_end {self.window_end}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.period <= dt.timedelta(0):
            raise ValueError(f"period must be positive, got {self.period}")

    @classmethod
    def from_strings(cls, start: str, end: str, max_attempts: int) -> ContactRules:
        """Build rules from configuration strings.

        Args:
            start: window start as "HH:MM", e.g. "07:00".
            end: window end as "HH:MM", e.g. "22:00".
            max_attempts: attempts allowed per (default, 7-day) period.

        Returns:
            The rules, with the default period.

        Raises:
            ValueError: if a time is not "HH:MM" or the rules are inconsistent.
        """
        return cls(window_start=_parse_hhmm(start), window_end=_parse_hhmm(end), max_attempts=max_attempts)


@dataclass(frozen=True)
class DebtorState:
    """What the contact rules need to know about a debtor and the account.

    Attributes:
        timezone: the debtor's IANA time zone, e.g. "America/Mexico_City".
        opted_out: the debtor asked us to stop writing on this channel.
        wrong_number: the number belongs to someone else.
        disputed: the debt is disputed and not yet verified.
        open_escalation: a human has the case; the bot stays quiet.
        opt_in: the debtor gave the WhatsApp opt-in business messages need.
        payment_claim_pending: the debtor says they paid and we are checking.
        attempts: UTC-aware times of previous business-initiated attempts on
            the account (replies to the debtor's own messages are not attempts).
    """

    timezone: str
    opted_out: bool = False
    wrong_number: bool = False
    disputed: bool = False
    open_escalation: bool = False
    opt_in: bool = True
    payment_claim_pending: bool = False
    attempts: tuple[dt.datetime, ...] = ()


@dataclass(frozen=True)
class Decision:
    """The answer to "may we contact this debtor now?".

    Attributes:
        allowed: whether a business-initiated contact may start now.
        reason: `ALLOWED` or the first failing reason in `BLOCK_REASONS`.
        next_allowed_at: UTC moment when the block lifts by itself (outside
            the window, cap reached); None when allowed or when only a change
            in the debtor's state lifts the block.
    """

    allowed: bool
    reason: str
    next_allowed_at: Optional[dt.datetime]


def decide(now: dt.datetime, debtor: DebtorState, rules: ContactRules) -> Decision:
    """Whether a business-initiated contact may start now.

    Checks, in order: opt-out, wrong number, no opt-in, dispute, open
    escalation, pending payment claim, the contact window in the debtor's
    zone, and the cap (attempts `t` with `now - period < t <= now`; an attempt
    stops counting exactly one period after it was made).

    Args:
        now: the current moment, timezone-aware (any zone; UTC expected).
        debtor: the debtor's state and previous attempts.
        rules: the portfolio's contact rules.

    Returns:
        The decision. For `OUTSIDE_WINDOW`, `next_allowed_at` is the next
        window start; for `CAP_REACHED`, the moment enough attempts have left
        the period (the oldest one's expiry when exactly at the cap), moved to
        the next window start if it falls outside the window. Both in UTC.

    Raises:
        ValueError: if `now` or an attempt is naive.
        zoneinfo.ZoneInfoNotFoundError: if the debtor's zone is unknown.
    """
    now = _as_utc(now, "now")
    for blocked, reason in (
        (debtor.opted_out, OPTED_OUT),
        (debtor.wrong_number, WRONG_NUMBER),
        (not debtor.opt_in, NO_OPT_IN),
        (debtor.disputed, DISPUTED),
        (debtor.open_escalation, OPEN_ESCALATION),
        (debtor.payment_claim_pending, CLAIM_PENDING),
    ):
        if blocked:
            return Decision(allowed=False, reason=reason, next_allowed_at=None)

    zone = ZoneInfo(debtor.timezone)
    if not in_window(now, debtor.timezone, rules):
        return Decision(allowed=False, reason=OUTSIDE_WINDOW, next_allowed_at=_next_start(now, zone, rules))

    attempts = sorted(_as_utc(t, "attempt") for t in debtor.attempts)
    recent = [t for t in attempts if now - rules.period < t <= now]
    if len(recent) >= rules.max_attempts:
        # Enough attempts must leave the period to bring the count below the cap;
        # with exactly max_attempts that is the oldest one.
        freed_at = recent[len(recent) - rules.max_attempts] + rules.period
        if not in_window(freed_at, debtor.timezone, rules):
            freed_at = _next_start(freed_at, zone, rules)
        return Decision(allowed=False, reason=CAP_REACHED, next_allowed_at=freed_at)

    return Decision(allowed=True, reason=ALLOWED, next_allowed_at=None)


def in_window(moment: dt.datetime, timezone: str, rules: ContactRules) -> bool:
    """Whether a moment falls in the contact window, [start, end) local wall clock.

    Args:
        moment: a timezone-aware moment.
        timezone: the debtor's IANA time zone.
        rules: the contact rules.

    Returns:
        True when the local wall-clock time is at or after the start and before the end.

    Raises:
        ValueError: if `moment` is naive.
    """
    local = _as_utc(moment, "moment").astimezone(ZoneInfo(timezone)).time()
    return rules.window_start <= local < rules.window_end


def next_window_start(now: dt.datetime, timezone: str, rules: ContactRules) -> dt.datetime:
    """The next start of the contact window in the debtor's zone, in UTC.

    Today's start if the local wall clock has not reached it yet (`now` itself
    when exactly at the start), otherwise tomorrow's. A start that falls in a
    DST repeated hour resolves to the first occurrence still at or after `now`;
    one that falls in a skipped hour resolves as zoneinfo does (the wall time
    read with the pre-transition offset, i.e. shifted later by the gap).

    Args:
        now: the current moment, timezone-aware.
        timezone: the debtor's IANA time zone.
        rules: the contact rules.

    Returns:
        A UTC-aware datetime at or after `now`.

    Raises:
        ValueError: if `now` is naive.
    """
    return _next_start(_as_utc(now, "now"), ZoneInfo(timezone), rules)


def _next_start(now: dt.datetime, zone: ZoneInfo, rules: ContactRules) -> dt.datetime:
    local = now.astimezone(zone)
    day = local.date() if local.time() <= rules.window_start else local.date() + dt.timedelta(days=1)
    # Aware datetimes in the same zone compare by wall clock, ignoring fold: compare in UTC.
    candidates = [
        dt.datetime.combine(day, rules.window_start, tzinfo=zone).replace(fold=fold).astimezone(_UTC) for fold in (0, 1)
    ]
    return next((c for c in candidates if c >= now), max(candidates))


def _as_utc(moment: dt.datetime, name: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment.isoformat()}")
    return moment.astimezone(_UTC)


def _parse_hhmm(text: str) -> dt.time:
    try:
        return dt.datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise ValueError(f"expected a time as HH:MM, got {text!r}") from None
