"""Benchmark: the conversation engine's CPU per turn (what the action server
spends on the ledger for each debtor message).

Migrates a temporary SQLite ledger (or `--postgres URL`: a scratch database
cobrador_bench_engine there), loads the demo portfolio, then runs the same
five-turn conversation (greeting, who is this, are you a bot, an off-topic
question, thanks) again and again, for a demo debtor (whose accounts, plans
and creditor are read every turn) and for an unknown number, and prints the
CPU time per turn (process time, so a busy machine slows it less than the
wall clock) and the statements executed per turn. Run with `make bench` or
`.venv/bin/python bench/conversation.py [--conversations N] [--postgres URL]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TURNS = [
    ("hola", "greet"),
    ("quien habla?", "ask_identity"),
    ("eres un robot?", "bot_challenge"),
    ("que clima hace", "nlu_fallback"),
    ("gracias", "thank"),
]


def conversation(engine, turn_type, phone: str) -> None:  # noqa: ANN001
    state, language = None, None
    for text, intent in TURNS:
        turn = turn_type(sender=phone, text=text, intent=intent, confidence=0.9, message_sid=None, media=())
        reply = engine.handle(turn, state, language)
        state, language = reply.state, reply.language


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100, help="conversations per debtor and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.postgres:
            from cobrador.devstack import scratch_postgres

            url = scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench_engine")
        else:
            url = f"sqlite:///{Path(folder) / 'ledger.db'}"
        os.environ["DATABASE_URL"] = url
        for command in (["migrate"], ["demo", "load"]):
            subprocess.run([sys.executable, "-m", "cobrador", *command], cwd=ROOT, check=True, capture_output=True)

        from sqlalchemy import event, select

        from cobrador.conversation.engine import Conversation, Turn
        from cobrador.ledger.db import get_engine, session_scope
        from cobrador.ledger.models import Debtor

        with session_scope() as session:
            known = session.execute(select(Debtor.phone).order_by(Debtor.id).limit(1)).scalar_one()
        statements = 0

        def count(*_: object) -> None:
            nonlocal statements
            statements += 1

        event.listen(get_engine(), "before_cursor_execute", count)
        engine = Conversation()
        print(f"ledger: {'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)
        for label, phone in (("demo debtor", known), ("unknown number", "+525591000001")):
            conversation(engine, Turn, phone)  # warm-up: connections, compiled statements
            per_turn = []
            statements = 0
            for _ in range(args.rounds):
                started = time.process_time()
                for _ in range(args.conversations):
                    conversation(engine, Turn, phone)
                per_turn.append((time.process_time() - started) / (args.conversations * len(TURNS)))
            executed = statements / (args.rounds * args.conversations * len(TURNS))
            print(
                f"{label}: {statistics.median(per_turn) * 1000:.2f} ms CPU/turn (median of {args.rounds} rounds; "
                f"{', '.join(f'{t * 1000:.2f}' for t in per_turn)}), {executed:.1f} statements/turn",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
