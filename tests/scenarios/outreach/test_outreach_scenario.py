"""Outreach acceptance: a portfolio walked through 15 days on a fixed clock.

The scenario (scenario.yml, portfolio.csv, creditors.yml) is set up only
through public parts: the creditor and portfolio loaders, the ledger
commands, the payments import and `cobrador.outreach.run_once`. The ledger
commands stamp records with the real clock, so the runner re-stamps the
creation time of what an event creates with the scenario's clock. Checked on
SQLite and PostgreSQL (where the two-worker days are real concurrency):

* every expected message is sent exactly once, on its local date;
* nothing else is sent (so nothing to blocked debtors);
* nothing outside the debtor's local window, never more than the creditor's
  cap in any sliding 7 days;
* across a worker restart and with two workers at once.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from sqlalchemy import select

from cobrador.ledger import commands, messages
from cobrador.ledger.creditors import load_creditors
from cobrador.ledger.db import dispose_engines, session_scope
from cobrador.ledger.importer import import_portfolio
from cobrador.ledger.migrate import upgrade
from cobrador.ledger.models import Account, Creditor, Debtor, Escalation, PaymentPlan, Promise
from cobrador.ledger.payments import import_payments
from cobrador.outreach import decisions, run_once, sent_messages
from cobrador.outreach.config import DEFAULT_PATH

HERE = Path(__file__).resolve().parent
SCENARIO = yaml.safe_load((HERE / "scenario.yml").read_text(encoding="utf-8"))


def moment(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc)


def config_file(tmp_path: Path) -> Path:
    """The shipped templates with the scenario's cadences and no throttle."""
    data = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["default"]["rate_per_minute"] = 100_000
    data["creditors"] = {code: {"reminders": days} for code, days in SCENARIO["cadence"].items()}
    path = tmp_path / "outreach.yml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


class Ledger:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.escalations: dict[str, int] = {}

    def account(self, session, reference: str) -> tuple[Account, str]:  # noqa: ANN001
        account = session.execute(select(Account).where(Account.reference == reference)).scalar_one()
        return account, session.get(Debtor, account.debtor_id).phone

    def apply(self, event: dict[str, Any]) -> None:
        now = moment(event["at"])
        with session_scope(self.url) as session:
            if event["do"] == "payments":
                path = self.tmp_path / f"payments-{now:%Y%m%d%H%M}.csv"
                header = "creditor,account_reference,amount,paid_on,external_reference,method\n"
                path.write_text(header + "\n".join(event["rows"]) + "\n", encoding="utf-8")
                report = import_payments(session, path, today=dt.date.fromisoformat(event["today"]), now=now)
                assert report.errors == [], report.errors
                return
            account, phone = self.account(session, event["account"])
            do = event["do"]
            if do == "promise":
                promise_id = commands.record_promise(
                    session, account.id, Decimal(event["amount"]), dt.date.fromisoformat(event["date"])
                )
                session.get(Promise, promise_id).created_at = now
            elif do == "plan":
                plan_id = commands.record_plan(
                    session, account.id, event["frequency"], [Decimal(a) for a in event["amounts"]],
                    [dt.date.fromisoformat(d) for d in event["dates"]],
                )  # fmt: skip
                session.get(PaymentPlan, plan_id).created_at = now
            elif do == "claim":
                commands.record_payment_claim(session, account.id, amount=Decimal(event["amount"]))
            elif do == "escalate":
                escalation_id, _ = commands.escalate(session, phone, event["reason"], "scenario", account_id=account.id)
                session.get(Escalation, escalation_id).created_at = now
                self.escalations[event["account"]] = escalation_id
            elif do == "resolve":
                commands.resolve_escalation(session, self.escalations[event["account"]])
            elif do == "opt_out":
                commands.record_opt_out(session, phone, keyword="STOP")
            elif do == "wrong_number":
                commands.mark_wrong_number(session, phone)
            elif do == "inbound":
                messages.record_inbound(session, f"SM{now:%Y%m%d%H%M%S}{'0' * 18}", phone, event["text"], [])
            else:  # pragma: no cover - a typo in the scenario
                raise AssertionError(f"unknown event {do}")


def walk(url: str, tmp_path: Path) -> None:
    ledger = Ledger(url, tmp_path)
    config = str(config_file(tmp_path))
    events = sorted(SCENARIO["events"], key=lambda e: moment(e["at"]))
    now, end = moment(SCENARIO["start"]), moment(SCENARIO["end"])
    tick = dt.timedelta(minutes=SCENARIO["tick_minutes"])
    restart = moment(SCENARIO["restart_at"])
    pair = [moment(t) for t in SCENARIO["two_workers"]]
    restarted = False
    while now < end:
        while events and moment(events[0]["at"]) <= now:
            ledger.apply(events.pop(0))
        if not restarted and now >= restart:
            dispose_engines()  # a new worker process: nothing carried over
            restarted = True
        if pair[0] <= now < pair[1]:
            errors: list[BaseException] = []

            def work(name: str, at: dt.datetime = now, errors: list[BaseException] = errors) -> None:
                try:
                    run_once(at, database_url=url, config_path=config, sender="local", worker_id=name)
                except BaseException as exc:  # noqa: BLE001 - reported below
                    errors.append(exc)

            threads = [threading.Thread(target=work, args=(f"worker-{n}",)) for n in (1, 2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == [], errors
        else:
            run_once(now, database_url=url, config_path=config, sender="local", worker_id="worker-1")
        now += tick
    assert not events, f"events after the end: {events}"


@pytest.fixture
def scenario_db(db_url: str, tmp_path: Path) -> str:
    upgrade(db_url)
    with session_scope(db_url) as session:
        load_creditors(session, HERE / "creditors.yml")
    with session_scope(db_url) as session:
        report = import_portfolio(session, HERE / "portfolio.csv")
        assert report.errors == [], report.errors
    return db_url


def test_the_outreach_scenario(scenario_db: str, tmp_path: Path) -> None:
    walk(scenario_db, tmp_path)
    sent = sent_messages(scenario_db)
    with session_scope(scenario_db) as session:
        zones = dict(session.execute(select(Debtor.phone, Debtor.timezone)).all())
        rules = {
            code: (dt.time.fromisoformat(start), dt.time.fromisoformat(end), cap)
            for code, start, end, cap in session.execute(
                select(Creditor.code, Creditor.contact_window_start, Creditor.contact_window_end,
                       Creditor.max_attempts_per_7_days)
            )
        }  # fmt: skip
    got: dict[str, Counter] = {ref: Counter() for ref in SCENARIO["expected"]}
    problems = []
    by_account: dict[str, list[dt.datetime]] = {}
    for record in sent:
        local = record.sent_at.astimezone(ZoneInfo(zones[record.phone]))
        got.setdefault(record.account_reference, Counter())[(record.kind, local.date().isoformat())] += 1
        start, end, _ = rules[record.creditor]
        if not start <= local.time() < end:
            problems.append(f"{record.account_reference} {record.kind} sent at {local:%Y-%m-%d %H:%M %Z}: outside")
        by_account.setdefault(record.account_reference, []).append(record.sent_at)
    for reference, times in by_account.items():
        cap = rules[next(r.creditor for r in sent if r.account_reference == reference)][2]
        for t in times:
            in_week = [u for u in times if t - dt.timedelta(days=7) < u <= t]
            if len(in_week) > cap:
                problems.append(f"{reference}: {len(in_week)} messages in the 7 days up to {t:%Y-%m-%d %H:%M}Z")
    for reference, expected in SCENARIO["expected"].items():
        want = Counter((kind, str(day)) for kind, day in expected)
        if got[reference] != want:
            problems.append(
                f"{reference}: expected {sorted(want.elements())}\n{' ' * len(reference)}  sent     "
                f"{sorted(got[reference].elements())}"
            )
    unexpected = set(got) - set(SCENARIO["expected"])
    problems += [f"{ref}: not in the scenario but sent {sorted(got[ref].elements())}" for ref in unexpected]
    if problems:
        log = [
            f"{d.account_reference} {d.kind} {d.at:%m-%d %H:%M} {d.outcome} {d.reason}" for d in decisions(scenario_db)
        ]
        pytest.fail("\n".join(problems) + "\n\ndecisions:\n" + "\n".join(log[-200:]))
    assert sum(sum(c.values()) for c in got.values()) == sum(len(v) for v in SCENARIO["expected"].values())
