"""Benchmark: the message log's units of work on every WhatsApp message's
path, run through an ORM session (`session_scope`), on the DB-API
connection itself (`direct_unit`), and as the ingest runs the store and the
end of a turn, the outcomes of sends and the callbacks (`batch`: one round
trip each on PostgreSQL, `direct_unit(one_round_trip=True)`; on SQLite the
statements of `direct`).

Per round and unit kind, for `--messages` debtors' messages: the store of an
inbound message claimed for its turn (the acknowledgement's transaction), the
end of its turn in local mode (two replies logged with the "processed" mark),
the outcome of the two sends (Twilio mode), and three delivery callbacks per
reply (sent, delivered, read: what Twilio posts for each message it sends).
Rounds alternate the order of the kinds. Prints the CPU and wall-clock milliseconds
per unit of each (and on PostgreSQL the CPU of its server's processes on
this machine, from /proc), on a SQLite file or `--postgres URL` (a scratch
database there). Run with `.venv/bin/python bench/message_log.py [--postgres URL]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402

from bench.whatsapp import CpuMeter  # noqa: E402
from cobrador.devstack import scratch_postgres  # noqa: E402
from cobrador.ledger import messages  # noqa: E402
from cobrador.ledger.db import direct_unit, dispose_engines, session_scope  # noqa: E402
from cobrador.ledger.models import Message  # noqa: E402

UNITS = {"session": session_scope, "direct": direct_unit, "batch": partial(direct_unit, one_round_trip=True)}
REPLIES = ["Hola, Ana. Le escribe Cobrador de parte de Banco Ejemplo.", "¿Me confirma su nombre completo, por favor?"]


def timed(work, count: int, into: dict, name: str) -> None:  # noqa: ANN001
    cpu, wall, server = time.process_time(), time.perf_counter(), CpuMeter.postgres_seconds()
    work()
    into.setdefault(name, []).append(
        (
            (time.process_time() - cpu) / count * 1000,
            (time.perf_counter() - wall) / count * 1000,
            (CpuMeter.postgres_seconds() - server) / count * 1000,
        )
    )


def one_round(unit, tag: str, count: int, into: dict, batch: bool = False) -> None:  # noqa: ANN001
    """`batch`: each unit as the ingest runs it, in one round trip on
    PostgreSQL (`direct_unit(one_round_trip=True)`): the store and the end of
    a turn one statement each (`messages.store_inbound_many`,
    `finish_turns_many`), the outcomes and a callback held and sent at the
    end (`record_status_callback`: not read back); on SQLite the statements
    of `direct`."""
    sids = [f"SM{tag}{n:030d}" for n in range(count)]
    phones = [f"+5255{n % 50:08d}" for n in range(count)]

    def store() -> None:
        for sid, phone in zip(sids, phones, strict=True):
            if batch:
                with messages.batch_unit(1) as session:
                    messages.store_inbound_many(session, [(sid, phone, "te pago el viernes", [], "processing")], [sid])
                continue
            with unit() as session:
                messages.record_inbound(session, sid, phone, "te pago el viernes", [], "processing")
                messages.languages(session, [phone])

    ids: list[list[int]] = []

    def finish() -> None:
        for sid, phone in zip(sids, phones, strict=True):
            if batch:
                with messages.batch_unit(1) as session:
                    turn = [(phone, body, [], "bot") for body in REPLIES]
                    ids.extend(messages.finish_turns_many(session, [(sid, turn)], "sending"))
                continue
            with unit() as session:
                ids.append([messages.record_outbound(session, phone, body, status="sending") for body in REPLIES])
                messages.set_inbound_status(session, sid, "processed")

    def outcomes() -> None:
        for n, pair in enumerate(ids):
            with unit() as session:
                for k, message_id in enumerate(pair):
                    messages.mark_outbound(session, message_id, "queued", provider_sid=f"SO{tag}{n:028d}{k}")

    def callbacks() -> None:
        for status in ("sent", "delivered", "read"):
            for n, pair in enumerate(ids):
                for k in range(len(pair)):
                    with unit() as session:
                        if batch:  # as the ingest applies it: nothing read back
                            messages.record_status_callback(session, f"SO{tag}{n:028d}{k}", status)
                        else:
                            messages.apply_status_callback(session, f"SO{tag}{n:028d}{k}", status)

    timed(store, count, into, "store (acknowledgement)")
    timed(finish, count, into, "end of turn, 2 replies")
    timed(outcomes, count, into, "outcomes of 2 sends")
    timed(callbacks, count * len(REPLIES) * 3, into, "delivery callback")
    if unit is session_scope:  # the callback as it was before it became one statement, for comparison

        def row_callbacks() -> None:
            for n, pair in enumerate(ids):
                for k in range(len(pair)):
                    with unit() as session:
                        orm_status_callback(session, f"SO{tag}{n:028d}{k}", "failed", "30008")

        timed(row_callbacks, count * len(REPLIES), into, "callback, ORM row (before)")


def orm_status_callback(session, provider_sid: str, status: str, error_code: str | None) -> bool:  # noqa: ANN001
    """Cobrador's callback before 2026-12-04: the row loaded, changed and flushed by the ORM."""
    row = session.execute(select(Message).where(Message.provider_sid == provider_sid)).scalar_one_or_none()
    if row is None:
        return False
    row.status = status
    if error_code:
        row.error_code = error_code
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500, help="messages per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per unit kind, alternating")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server; a scratch database is made there")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/ledger.db"
        if args.postgres:
            url = scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench_messages")
        os.environ["DATABASE_URL"] = url
        subprocess.run([sys.executable, "-m", "cobrador", "migrate"], check=True, capture_output=True, cwd=ROOT)
        subprocess.run([sys.executable, "-m", "cobrador", "demo", "load"], check=True, capture_output=True, cwd=ROOT)
        one_round(direct_unit, "w0", 50, {})  # warm-up: connections, statements
        one_round(session_scope, "w1", 50, {})
        figures: dict[str, dict] = {kind: {} for kind in UNITS}
        for round_ in range(args.rounds):
            order = list(UNITS) if round_ % 2 == 0 else list(reversed(UNITS))
            for kind in order:
                one_round(UNITS[kind], f"{kind[0]}{round_:02d}", args.messages, figures[kind], kind == "batch")
        dispose_engines()
    server = " / the server's CPU" if args.postgres else ""
    print(
        f"{'PostgreSQL' if args.postgres else 'SQLite'}: ms per unit of work, CPU / wall-clock{server} "
        "(median of rounds)"
    )
    for name in figures["session"]:
        line = [f"{name:>26}:"]
        for kind in UNITS:
            if name not in figures[kind]:
                continue
            cpu, wall, by_server = (statistics.median(f[n] for f in figures[kind][name]) for n in range(3))
            line.append(f"{kind} {cpu:.3f} / {wall:.3f}" + (f" / {by_server:.3f}" if args.postgres else ""))
        print("  ".join(line), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
