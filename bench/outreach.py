"""Benchmark: planning a day of outreach for a large portfolio.

Creates N debtors with one account each (default 100,000; bulk inserts into
a scratch SQLite file, or `--postgres URL`), spread over Mexican and US time
zones and due dates around the day, with a third of them already past their
first notice; then times `plan()` for one day (the planning pass the worker
runs before sending) and, separately, judging a sample of the due jobs
against the contact rules. Prints the figures. Bar: planning a day for
100,000 debtors in under 2 minutes.

    .venv/bin/python bench/outreach.py [--debtors 100000] [--postgres URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from sqlalchemy import insert, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobrador.devstack import scratch_postgres  # noqa: E402
from cobrador.ledger.db import dispose_engines, session_scope  # noqa: E402
from cobrador.ledger.migrate import upgrade  # noqa: E402
from cobrador.ledger.models import Account, Creditor, Debtor  # noqa: E402
from cobrador.ledger.models_outreach import OutreachJob  # noqa: E402
from cobrador.outreach.config import load_config  # noqa: E402
from cobrador.outreach.planner import plan  # noqa: E402
from cobrador.outreach.worker import judge  # noqa: E402

NOW = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.timezone.utc)  # 09:00 in Mexico City
ZONES = ["America/Mexico_City"] * 6 + ["America/Tijuana", "America/Cancun", "America/New_York", "America/Los_Angeles"]


def populate(url: str, count: int) -> None:
    rng = random.Random(7)
    opted_in = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    with session_scope(url) as session:
        creditor = Creditor(
            code="BENCH", legal_name="Bench S.A.", display_name="Bench", collector_name="Cobrador",
            complaints_contact="800 000 0000", payment_link_template="https://pay.example/{reference}",
        )  # fmt: skip
        session.add(creditor)
        session.flush()
        creditor_id = creditor.id
    for start in range(0, count, 10_000):
        size = min(10_000, count - start)
        with session_scope(url) as session:
            debtors = [
                {"phone": f"+5255{start + n:08d}", "name": f"Deudor {start + n}", "language": "es",
                 "timezone": rng.choice(ZONES), "whatsapp_opt_in_at": opted_in, "created_at": NOW, "updated_at": NOW}
                for n in range(size)
            ]  # fmt: skip
            session.execute(insert(Debtor), debtors)
            ids = session.execute(
                select(Debtor.id).where(Debtor.phone >= f"+5255{start:08d}").order_by(Debtor.id).limit(size)
            ).scalars()
            accounts = []
            for n, debtor_id in enumerate(ids):
                due = NOW.date() + dt.timedelta(days=rng.randint(-20, 20))
                accounts.append(
                    {"creditor_id": creditor_id, "debtor_id": debtor_id, "reference": f"B-{start + n:07d}",
                     "last4": f"{(start + n) % 10000:04d}", "original_amount": Decimal("1500.00"),
                     "balance": Decimal("1500.00"), "currency": "MXN", "due_date": due,
                     "balance_as_of": due - dt.timedelta(days=3), "status": "active",
                     "created_at": NOW, "updated_at": NOW}
                )  # fmt: skip
            session.execute(insert(Account), accounts)


def mark_first_notices_sent(url: str, share: float) -> None:
    """A share of the portfolio already had its first notice two weeks ago."""
    sent_at = NOW - dt.timedelta(days=14)
    with session_scope(url) as session:
        jobs = session.execute(select(OutreachJob).where(OutreachJob.kind == "first_notice")).scalars().all()
        for job in jobs[: int(len(jobs) * share)]:
            job.status, job.sent_at = "sent", sent_at


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=100_000)
    parser.add_argument("--postgres", metavar="URL", help="e.g. postgresql://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    config = load_config()
    with tempfile.TemporaryDirectory() as folder:
        url = (
            scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench_outreach")
            if args.postgres
            else f"sqlite:///{folder}/ledger.db"
        )
        upgrade(url)
        started = time.perf_counter()
        populate(url, args.debtors)
        print(f"ledger: {'PostgreSQL' if args.postgres else 'SQLite'}; {args.debtors:,} debtors and accounts "
              f"created in {time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
        # Day 0: every account gets its first notice planned.
        started = time.perf_counter()
        with session_scope(url) as session:
            first = plan(session, NOW - dt.timedelta(days=14), config)
        print(f"plan (first notices): {first:,} jobs in {time.perf_counter() - started:.1f} s", flush=True)
        mark_first_notices_sent(url, 1.0)
        # Two weeks later: the reminders of the last few days (a pass after a
        # pause plans what is still within reach; the worker then sends the
        # newest and cancels the superseded ones).
        started = time.perf_counter()
        with session_scope(url) as session:
            day = plan(session, NOW, config)
        elapsed = time.perf_counter() - started
        print(f"plan (a day, {args.debtors:,} debtors): {day:,} reminder jobs in {elapsed:.1f} s "
              f"({args.debtors / elapsed:,.0f} debtors/s); bar: under 120 s", flush=True)  # fmt: skip
        started = time.perf_counter()
        with session_scope(url) as session:
            again = plan(session, NOW, config)
        print(f"plan again (idempotent): {again} new jobs in {time.perf_counter() - started:.1f} s", flush=True)
        with session_scope(url) as session:
            due = select(OutreachJob).where(OutreachJob.status == "pending", OutreachJob.kind != "first_notice")
            jobs = session.execute(due.limit(1000)).scalars().all()
            started = time.perf_counter()
            outcomes: dict[str, int] = {}
            for job in jobs:
                verdict = judge(session, job, NOW, config)
                outcomes[verdict.outcome] = outcomes.get(verdict.outcome, 0) + 1
            elapsed = time.perf_counter() - started
        print(f"judge {len(jobs)} due jobs against the contact rules: {elapsed * 1000 / max(1, len(jobs)):.1f} ms each "
              f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})", flush=True)  # fmt: skip
        dispose_engines()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
