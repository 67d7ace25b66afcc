"""Benchmark: Rasa's SQL tracker store as Rasa 3.6.21 ships it and with
Cobrador's fix (cobrador.rasa_fixes: the events' JSON read, not whole rows).

A debtor's conversation of `--turns` turns (each: the message, a custom
action, a bot message, slots, action_listen, as Rasa stores them) is saved
turn by turn; each turn Rasa reads the tracker back and then saves it (one
`retrieve` and one `save`, which counts what is stored). Prints the CPU
milliseconds per turn of those two, and their wall-clock time (the round
trips to the database: behind `bench/slow_link.py`, those of a database on
another host), stock and fixed, in alternating rounds,
on a SQLite file or `--postgres URL` (a scratch database there). Run with
`.venv/bin/python bench/tracker_store.py [--postgres URL]`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rasa.core.tracker_store import SQLTrackerStore  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

STOCK = (SQLTrackerStore._retrieve, SQLTrackerStore._additional_events, SQLTrackerStore.save)
from cobrador import rasa_fixes  # noqa: E402
from cobrador.devstack import open_tracker_store, scratch_postgres, sql_trackers  # noqa: E402

rasa_fixes.apply()
FIXED = (SQLTrackerStore._retrieve, SQLTrackerStore._additional_events, SQLTrackerStore.save)


def use(functions: tuple) -> None:
    SQLTrackerStore._retrieve, SQLTrackerStore._additional_events, SQLTrackerStore.save = functions


def turn_events(n: int, at: float) -> list:
    return [
        UserUttered(f"mensaje {n}", {"name": "inform", "confidence": 0.9}, message_id=f"SM{n:032d}", timestamp=at),
        ActionExecuted("action_cobrador_turn", timestamp=at + 0.1),
        BotUttered(f"respuesta {n} " + "x" * 120, {"elements": None}, timestamp=at + 0.2),
        SlotSet("dialogue", {"state": "verified", "turn": n}, timestamp=at + 0.3),
        SlotSet("language", "es", timestamp=at + 0.4),
        ActionExecuted("action_listen", timestamp=at + 0.5),
    ]


async def conversation(store: SQLTrackerStore, phone: str, turns: int) -> tuple[float, float]:
    """CPU and wall-clock seconds of `retrieve` + `save` over a conversation of `turns` turns."""
    tracker = DialogueStateTracker(phone, store.domain.slots)
    for event in [ActionExecuted("action_session_start", timestamp=1.0), SessionStarted(timestamp=1.1),
                  ActionExecuted("action_listen", timestamp=1.2)]:  # fmt: skip
        tracker.update(event)
    await store.save(tracker)
    spent = took = 0.0
    for n in range(turns):
        started, clock = time.process_time(), time.perf_counter()
        tracker = await store.retrieve(phone)
        spent, took = spent + time.process_time() - started, took + time.perf_counter() - clock
        for event in turn_events(n, 2.0 + n):
            tracker.update(event)
        started, clock = time.process_time(), time.perf_counter()
        await store.save(tracker)
        spent, took = spent + time.process_time() - started, took + time.perf_counter() - clock
    return spent, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10, help="turns per conversation")
    parser.add_argument("--conversations", type=int, default=30, help="conversations per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per version, alternating")
    parser.add_argument(
        "--postgres", metavar="URL", help="a PostgreSQL server (scratch database cobrador_bench_trackers)"
    )
    args = parser.parse_args()
    domain = Domain.load(str(ROOT / "domain.yml"))
    with tempfile.TemporaryDirectory() as folder:
        if args.postgres:
            scratch_postgres(args.postgres.rstrip("/"), "cobrador_bench_trackers")  # fresh, empty
        endpoint = sql_trackers(Path(folder) / "trackers.db", args.postgres, "cobrador_bench_trackers")
        store = open_tracker_store(endpoint, domain)
        costs: dict[str, list[float]] = {"stock": [], "fixed": []}
        waits: dict[str, list[float]] = {"stock": [], "fixed": []}
        for round_ in range(args.rounds):
            for name in ("stock", "fixed") if round_ % 2 == 0 else ("fixed", "stock"):
                use(STOCK if name == "stock" else FIXED)
                measured = [
                    asyncio.run(conversation(store, f"+52{name}{round_}{c:04d}", args.turns))
                    for c in range(args.conversations)
                ]
                costs[name].append(sum(m[0] for m in measured) / (args.conversations * args.turns) * 1000)
                waits[name].append(sum(m[1] for m in measured) / (args.conversations * args.turns) * 1000)
        for name, values in costs.items():
            print(f"{name}: retrieve + save {statistics.median(values):.2f} ms CPU a turn "
                  f"(rounds {', '.join(f'{v:.2f}' for v in values)}), "
                  f"{statistics.median(waits[name]):.2f} ms wall-clock")  # fmt: skip
        print(f"fixed / stock: {statistics.median(costs['fixed']) / statistics.median(costs['stock']):.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
