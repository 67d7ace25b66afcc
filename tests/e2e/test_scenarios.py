"""Acceptance: conversation scenarios written independently of the bot
(tests/scenarios/scenarios.yml), driven through the real Rasa server, the
trained model and the action server, checked against the ledger.

Each scenario starts from a fresh demo ledger and a fresh Rasa conversation.
The bar (issue 4): the right ledger effect in at least 90% of the scenarios
of each language, and no scenario shows an amount before verification.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from cobrador.ledger.db import session_scope
from cobrador.ledger.demo import load_demo
from cobrador.ledger.models import (
    Account,
    Base,
    Debtor,
    Escalation,
    Installment,
    OptOut,
    PaymentClaim,
    PaymentPlan,
    Promise,
)
from tests.e2e.conftest import DEMO_TODAY

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios" / "scenarios.yml"
VERIFIED = ("Ya confirmé tu identidad", "Your identity is confirmed")
BAR = 0.90
DEMO_PROMISES = 1


def reset_ledger(url: str) -> None:
    """Empties every ledger table and loads the demo again."""
    with session_scope(url) as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(table.delete())
    with session_scope(url) as session:
        load_demo(session, dt.date.fromisoformat(DEMO_TODAY))


def check(url: str, phone: str, expect: dict[str, Any]) -> list[str]:
    """What the ledger lacks of `expect` (empty: everything is there)."""
    problems: list[str] = []
    with session_scope(url) as session:

        def account(reference: str) -> Account:
            return session.execute(select(Account).where(Account.reference == reference)).scalar_one()

        if "promise" in expect:
            want = expect["promise"]
            acc = account(want["account"])
            found = [
                (p.amount, p.due_date)
                for p in session.execute(
                    select(Promise).where(Promise.account_id == acc.id, Promise.status == "pending")
                ).scalars()
            ]
            target = (Decimal(str(want["amount"])).quantize(Decimal("0.01")), dt.date.fromisoformat(want["date"]))
            if target not in found:
                problems.append(f"promise {target} not in {found}")
        if "no_promise" in expect:
            # The demo holds exactly one promise (José Luis); any other is new.
            promises = session.execute(select(Promise)).scalars().all()
            if len(promises) != DEMO_PROMISES:
                problems.append(f"unexpected promises {[(p.amount, p.due_date) for p in promises]}")
        if "plan" in expect:
            acc = account(expect["plan"]["account"])
            plans = session.execute(
                select(PaymentPlan).where(PaymentPlan.account_id == acc.id, PaymentPlan.status == "active")
            ).scalars()
            ok = False
            for plan in plans:
                total = sum(
                    (
                        i.amount
                        for i in session.execute(select(Installment).where(Installment.plan_id == plan.id)).scalars()
                    ),
                    Decimal("0"),
                )
                ok = ok or (plan.created_by == "bot" and total + plan.discount_amount == acc.balance)
            if not ok:
                problems.append("no bot plan summing to the balance")
        if "dispute" in expect:
            acc = account(expect["dispute"]["account"])
            escalations = (
                session.execute(
                    select(Escalation).where(Escalation.account_id == acc.id, Escalation.reason == "dispute")
                )
                .scalars()
                .all()
            )
            if acc.status != "disputed" or not escalations:
                problems.append(f"dispute: status {acc.status}, {len(escalations)} escalations")
        if expect.get("opt_out"):
            if not session.execute(select(OptOut).where(OptOut.phone == phone)).scalars().first():
                problems.append("no opt-out")
        if expect.get("wrong_number"):
            debtor = session.execute(select(Debtor).where(Debtor.phone == phone)).scalar_one_or_none()
            if debtor is None or debtor.wrong_number_at is None:
                problems.append("number not marked wrong")
        if "escalation" in expect:
            reason = expect["escalation"]["reason"]
            if (
                not session.execute(select(Escalation).where(Escalation.phone == phone, Escalation.reason == reason))
                .scalars()
                .first()
            ):
                problems.append(f"no {reason} escalation")
        if "claim" in expect:
            want = expect["claim"]
            acc = account(want["account"])
            claims = session.execute(select(PaymentClaim).where(PaymentClaim.account_id == acc.id)).scalars().all()
            if not claims:
                problems.append("no payment claim")
            elif "amount" in want and Decimal(str(want["amount"])) not in [c.amount for c in claims]:
                problems.append(f"claim amounts {[c.amount for c in claims]}")
    return problems


def test_independent_scenarios_reach_the_right_ledger_effect(stack, capsys: pytest.CaptureFixture) -> None:
    scenarios = yaml.safe_load(SCENARIOS.read_text(encoding="utf-8"))["scenarios"]
    results: dict[str, list[bool]] = defaultdict(list)
    failures: list[str] = []
    disclosures: list[str] = []
    for scenario in scenarios:
        reset_ledger(stack.database_url)
        phone = scenario["phone"]
        stack.restart(phone)
        verified = False
        transcript = []
        for text in scenario["turns"]:
            replies = stack.say(phone, text)
            transcript.append(f"> {text}")
            transcript += [f"< {r}" for r in replies]
            for reply in replies:
                verified = verified or any(marker in reply for marker in VERIFIED)
                if "$" in reply and not verified:
                    disclosures.append(f"{scenario['id']}: {reply}")
        problems = check(stack.database_url, phone, scenario["expect"])
        results[scenario["lang"]].append(not problems)
        if problems:
            failures.append(f"{scenario['id']}: {problems}\n    " + "\n    ".join(transcript))
    # Leave the demo as other suites expect it: a fresh ledger, forgotten conversations.
    reset_ledger(stack.database_url)
    for phone in {scenario["phone"] for scenario in scenarios}:
        stack.restart(phone)
    with capsys.disabled():
        for lang, outcomes in sorted(results.items()):
            print(f"\n[{lang}] scenarios with the right ledger effect: {sum(outcomes)}/{len(outcomes)}")
        for failure in failures:
            print("FAILED", failure)
    assert disclosures == []
    for lang, outcomes in results.items():
        assert sum(outcomes) / len(outcomes) >= BAR, f"{lang}: {sum(outcomes)}/{len(outcomes)}"
