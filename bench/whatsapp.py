"""Benchmark: the WhatsApp channel against Rasa's stock REST channel.

Starts the action server and one Rasa server (trained model, demo ledger in a
temporary SQLite file, local mode) with both channels, then, for 1, 10 and 30
concurrent conversations, drives the same turns through

* the WhatsApp webhook (signed with twilio's RequestValidator): the
  acknowledgement latency (POST until Twilio would get its 200) and the
  end-to-end turn latency (inbound stored until it is `processed`, its
  replies recorded in the outbox, by the server's timestamps);
* the REST channel: POST until the replies come back (its turn latency).

Prints p50/p95 per measure and turns per second per channel. Run with
`make bench` or `.venv/bin/python bench/whatsapp.py [--turns N]`.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cobrador.devstack import MODEL, local_stack  # noqa: E402
from cobrador.whatsapp.simulator import signed_form, twilio_fields  # noqa: E402

TOKEN = "bench-local-token"
TURNS = ["hola", "quien habla?", "eres un robot?", "que clima hace", "gracias"]


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


class Ledger:
    """Read-only polling of the message log (plain sqlite3: never takes the write lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()

    def turn(self, sid: str) -> float | None:
        """Seconds from storing the inbound message to finishing its turn, once processed."""
        if not hasattr(self.local, "db"):
            self.local.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        row = self.local.db.execute(
            "SELECT status, julianday(updated_at) - julianday(created_at) FROM messages WHERE provider_sid = ?",
            (sid,),
        ).fetchone()
        return row[1] * 86400 if row and row[0] == "processed" else None

    def window(self, sids: list[str]) -> float:
        """Seconds from the first message stored to the last turn finished (server clock)."""
        marks = ",".join("?" * len(sids))
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
        first, last = db.execute(
            f"SELECT min(julianday(created_at)), max(julianday(updated_at)) FROM messages "  # noqa: S608
            f"WHERE provider_sid IN ({marks})",
            sids,
        ).fetchone()
        return (last - first) * 86400


def scratch_postgres(server: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT", future=True)
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS cobrador_bench"))
        connection.execute(text("CREATE DATABASE cobrador_bench"))
    admin.dispose()
    return f"{server}/cobrador_bench"


class PostgresLedger:
    """The same query on PostgreSQL, one connection per client thread."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine

        self.engine = create_engine(url, future=True, pool_size=32)

    def turn(self, sid: str) -> float | None:
        from sqlalchemy import text

        with self.engine.connect() as connection:
            row = connection.execute(
                text(
                    "SELECT status, EXTRACT(EPOCH FROM updated_at - created_at) FROM messages WHERE provider_sid = :sid"
                ),
                {"sid": sid},
            ).first()
        return float(row[1]) if row and row[0] == "processed" else None

    def window(self, sids: list[str]) -> float:
        """Seconds from the first message stored to the last turn finished (server clock)."""
        from sqlalchemy import bindparam, text

        statement = text(
            "SELECT EXTRACT(EPOCH FROM max(updated_at) - min(created_at)) FROM messages WHERE provider_sid IN :sids"
        ).bindparams(bindparam("sids", expanding=True))
        with self.engine.connect() as connection:
            return float(connection.execute(statement, {"sids": sids}).scalar_one())


def webhook_conversation(base: str, ledger, phone: str, turns: int) -> tuple[list[float], list[float], list[str]]:
    acks, e2e, sids = [], [], []
    url = base + "/webhooks/whatsapp/webhook"
    for n in range(turns):
        fields, signature = signed_form(TOKEN, url, twilio_fields(phone, TURNS[n % len(TURNS)], []))
        started = time.perf_counter()
        answer = requests.post(url, data=fields, headers={"X-Twilio-Signature": signature}, timeout=30)
        acks.append(time.perf_counter() - started)
        assert answer.status_code == 200, answer.text
        # The turn is timed by the server (stored -> processed, its replies
        # recorded); the client only waits for it before the next turn.
        while (took := ledger.turn(fields["MessageSid"])) is None:
            if time.perf_counter() - started > 120:
                raise SystemExit(f"turn {fields['MessageSid']} never processed")
            time.sleep(0.05)
        e2e.append(took)
        sids.append(fields["MessageSid"])
    return acks, e2e, sids


def rest_conversation(base: str, phone: str, turns: int) -> list[float]:
    latencies = []
    for n in range(turns):
        started = time.perf_counter()
        answer = requests.post(
            base + "/webhooks/rest/webhook", json={"sender": phone, "message": TURNS[n % len(TURNS)]}, timeout=120
        )
        latencies.append(time.perf_counter() - started)
        assert answer.status_code == 200
    return latencies


def ms(values: list[float]) -> str:
    return f"p50={statistics.median(values) * 1000:.0f} ms p95={percentile(values, 95) * 1000:.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5, help="turns per conversation")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="run the ledger on this PostgreSQL server (e.g. postgresql://postgres@127.0.0.1:5432); "
        "a scratch database cobrador_bench is created there",
    )
    args = parser.parse_args()
    if not MODEL.exists():
        print("no model: run `make train`", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder:
        ledger_path = Path(folder) / "ledger.db"
        database_url = f"sqlite:///{ledger_path}"
        if args.postgres:
            database_url = scratch_postgres(args.postgres.rstrip("/"))
        with local_stack(Path(folder), database_url, token=TOKEN) as stack:
            base = stack.rasa_url
            ledger = PostgresLedger(database_url) if args.postgres else Ledger(ledger_path)
            print(f"ledger: {'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)
            rest_conversation(base, "+525590000000", 2)  # warm-up
            for concurrency in (1, 10, 30):
                phones = [f"+5255{91000000 + concurrency * 100 + i:08d}" for i in range(concurrency)]
                with ThreadPoolExecutor(concurrency) as pool:
                    results = list(pool.map(lambda p: webhook_conversation(base, ledger, p, args.turns), phones))
                acks = [a for r in results for a in r[0]]
                e2e = [e for r in results for e in r[1]]
                # Throughput by the server's clock (the client's polling adds latency, not work).
                webhook_wall = ledger.window([sid for r in results for sid in r[2]])
                phones = [f"+5255{92000000 + concurrency * 100 + i:08d}" for i in range(concurrency)]
                started = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    rest = [x for r in pool.map(lambda p: rest_conversation(base, p, args.turns), phones) for x in r]
                rest_wall = time.perf_counter() - started
                print(
                    f"{concurrency:>2} concurrent: webhook ack {ms(acks)}; webhook turn {ms(e2e)}; "
                    f"{len(e2e) / webhook_wall:.1f} turns/s (server clock) | "
                    f"REST turn {ms(rest)}; {len(rest) / rest_wall:.1f} turns/s",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
